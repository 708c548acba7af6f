package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

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

// Answer checks the provider's answer q before its code is exchanged:
// the state of this sign-in, no error, a code.
func (st *WebState) Answer(q url.Values) error {
	switch {
	case st == nil || q.Get("state") == "" || q.Get("state") != st.State:
		return errors.New("sign-in answer with a wrong state: start again")
	case q.Get("error") != "":
		return fmt.Errorf("identity provider refused: %s %s", q.Get("error"), q.Get("error_description"))
	case q.Get("code") == "":
		return errors.New("sign-in answer without a code")
	}
	return nil
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
		return "", fmt.Errorf("identity provider %s: %w", st.Issuer, err)
	}
	conf := &oauth2.Config{ClientID: st.ClientID, Endpoint: gp.Endpoint(), Scopes: st.Scopes, RedirectURL: redirect}
	tok, err := conf.Exchange(octx, q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return "", fmt.Errorf("code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", errors.New("the identity provider returned no ID token (is the openid scope allowed?)")
	}
	idt, err := gp.Verifier(&gooidc.Config{ClientID: st.ClientID}).Verify(octx, raw)
	if err != nil {
		return "", fmt.Errorf("ID token: %w", err)
	}
	if idt.Nonce != st.Nonce {
		return "", errors.New("ID token: nonce does not match this sign-in")
	}
	return raw, nil
}
