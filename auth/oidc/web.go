package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// WebState is what a web page keeps between sending the browser to the
// provider (StartWeb) and the provider sending it back (FinishWeb), in a
// cookie of its own.
type WebState struct {
	Issuer   string   `json:"iss"`
	ClientID string   `json:"cid"`
	Scopes   []string `json:"scp,omitempty"`
	State    string   `json:"st"`
	Nonce    string   `json:"n"`
	Verifier string   `json:"v"`
}

// WebError is a sign-in that failed at the provider's answer (Answer,
// FinishWeb): its message for the page, and for the audit log which step
// failed in fixed words (the provider's error code at most; never its
// description or anything else the answer's URL carried).
type WebError struct {
	Reason string
	// Failed: the provider failed (unreachable, no ID token), not the
	// answer the browser brought (outcome error rather than refused).
	Failed bool
	msg    string
	err    error
}

func (e *WebError) Error() string { return e.msg }
func (e *WebError) Unwrap() error { return e.err }

func webError(reason string, failed bool, msg string, err error) *WebError {
	if msg == "" {
		msg = reason
	}
	return &WebError{Reason: reason, Failed: failed, msg: msg, err: err}
}

// Answer checks the provider's answer q before its code is exchanged:
// the state of this sign-in, no error, a code.
func (st *WebState) Answer(q url.Values) error {
	switch {
	case st == nil || q.Get("state") == "" || q.Get("state") != st.State:
		return webError("sign-in answer with a wrong state: start again", false, "", nil)
	case q.Get("error") != "":
		return webError("identity provider refused: "+errorCode(q.Get("error")), false,
			fmt.Sprintf("identity provider refused: %s %s", q.Get("error"), q.Get("error_description")), nil)
	case q.Get("code") == "":
		return webError("sign-in answer without a code", false, "", nil)
	}
	return nil
}

// errorCode keeps an OAuth error code (RFC 6749 4.1.2.1: printable ASCII,
// in practice access_denied and the like) short and plain.
func errorCode(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 0x21 && r <= 0x7e && r != '"' && r != '\\' {
			return r
		}
		return -1
	}, s)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// StartWeb begins the authorization-code flow with PKCE for a page served
// by pgwarden (the operator console) with provider p: it returns the
// provider's URL to send the browser to, and the state to keep until the
// provider redirects to redirect.
func StartWeb(ctx context.Context, c *http.Client, p ProviderInfo, redirect string) (string, *WebState, error) {
	gp, err := gooidc.NewProvider(gooidc.ClientContext(ctx, c), p.Issuer)
	if err != nil {
		return "", nil, fmt.Errorf("identity provider %s: %w", p.Issuer, err)
	}
	st := &WebState{Issuer: p.Issuer, ClientID: p.ClientID, Scopes: p.Scopes, State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier()}
	conf := &oauth2.Config{ClientID: p.ClientID, Endpoint: gp.Endpoint(), Scopes: p.Scopes, RedirectURL: redirect}
	return conf.AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier), gooidc.Nonce(st.Nonce)), st, nil
}

// FinishWeb takes the provider's answer q at redirect: it checks the
// state, exchanges the code with the PKCE verifier, verifies the ID token
// (signature, issuer, audience: go-oidc) and its nonce, and returns the
// raw ID token for the ticket service's exchange (/v1/sessions/oidc),
// which checks it again and maps the user to a role.
func FinishWeb(ctx context.Context, c *http.Client, st *WebState, redirect string, q url.Values) (string, error) {
	if err := st.Answer(q); err != nil {
		return "", err
	}
	octx := gooidc.ClientContext(ctx, c)
	gp, err := gooidc.NewProvider(octx, st.Issuer)
	if err != nil {
		return "", webError(ErrProviderUnavailable.Error(), true, fmt.Sprintf("identity provider %s: %v", st.Issuer, err), err)
	}
	conf := &oauth2.Config{ClientID: st.ClientID, Endpoint: gp.Endpoint(), Scopes: st.Scopes, RedirectURL: redirect}
	tok, err := conf.Exchange(octx, q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		// The provider answered with an OAuth error (a used or forged
		// code, a wrong verifier): the answer's fault; anything else is
		// the provider's.
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return "", webError("code exchange refused by the identity provider: "+errorCode(re.ErrorCode), false, fmt.Sprintf("code exchange: %v", err), err)
		}
		return "", webError(ErrProviderUnavailable.Error(), true, fmt.Sprintf("code exchange: %v", err), err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", webError("the identity provider returned no ID token (is the openid scope allowed?)", true, "", nil)
	}
	idt, err := gp.Verifier(&gooidc.Config{ClientID: st.ClientID}).Verify(octx, raw)
	if err != nil {
		c := classify(err)
		return "", webError("ID token: "+c.Error(), errors.Is(c, ErrProviderUnavailable), fmt.Sprintf("ID token: %v", err), err)
	}
	if idt.Nonce != st.Nonce {
		return "", webError("ID token: nonce does not match this sign-in", false, "", nil)
	}
	return raw, nil
}
