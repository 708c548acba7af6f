package oidc

import "errors"

// Refusals of a provider's token. Each says which check failed so that an
// operator can fix the provider or the config; none ever contains the token
// or a claim value an attacker chose.
var (
	ErrMalformed           = errors.New("sign-on token malformed: not a signed JWT")
	ErrIssuer              = errors.New("sign-on token refused: issuer is not a trusted identity provider")
	ErrAudience            = errors.New("sign-on token refused: audience is not this deployment's client id")
	ErrSignature           = errors.New("sign-on token refused: signature does not verify")
	ErrAlgorithm           = errors.New("sign-on token refused: signature algorithm not allowed")
	ErrUnknownKey          = errors.New("sign-on token refused: signed with a key the provider does not publish")
	ErrExpired             = errors.New("sign-on token expired: sign in again")
	ErrNotYetValid         = errors.New("sign-on token not yet valid: check the clocks")
	ErrNoSubject           = errors.New("sign-on token refused: no subject claim")
	ErrNoGroups            = errors.New("sign-on token refused: no groups claim")
	ErrEmailDomain         = errors.New("sign-on token refused: email domain not allowed")
	ErrNoRole              = errors.New("sign-on refused: none of the user's groups maps to a role")
	ErrProviderUnavailable = errors.New("cannot verify sign-on token now: identity provider unreachable")
)
