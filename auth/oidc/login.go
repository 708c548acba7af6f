package oidc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ProviderInfo is what GET /v1/sessions/oidc tells a login client: enough
// to run the authorization-code flow without local configuration.
type ProviderInfo struct {
	Issuer   string   `json:"issuer"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
}

// Providers lists what login clients need of the configured providers.
func (v *Verifier) Providers() []ProviderInfo {
	out := make([]ProviderInfo, 0, len(v.cfg.Providers))
	for _, p := range v.cfg.Providers {
		if p.ClientID != "" {
			out = append(out, ProviderInfo{Issuer: p.Issuer, ClientID: p.ClientID, Scopes: p.Scopes})
		}
	}
	return out
}

// LoginOptions configure Login.
type LoginOptions struct {
	// Service is the ticket service's base URL (http://host:port).
	Service string
	// Issuer picks a provider when the service trusts several ("" = first).
	Issuer string
	// Open shows the sign-in URL to the user: a browser, or printing it.
	Open func(url string) error
	// Client makes every HTTP request (nil: a 30s-timeout client).
	Client *http.Client
	// Timeout bounds waiting for the user to sign in (default 5m).
	Timeout time.Duration
}

// LoginResult is the internal pgwarden session the login produced.
type LoginResult struct {
	SessionToken string `json:"session_token"`
	SessionID    string `json:"session_id"`
	ExpiresAt    string `json:"expires_at"`
	Host         string `json:"host"`
	Port         int    `json:"port"`
	Database     string `json:"database"`
	Subject      string `json:"subject"`
	Role         string `json:"role"`
}

// Login runs the authorization-code flow with PKCE (RFC 7636) and a
// loopback redirect (RFC 8252) against the provider the ticket service
// trusts, verifies the ID token it gets (signature, issuer, audience,
// nonce: go-oidc) and exchanges it at the ticket service for an internal
// pgwarden session.
func Login(ctx context.Context, o LoginOptions) (*LoginResult, error) {
	if o.Open == nil || o.Service == "" {
		return nil, errors.New("oidc: Login: Service and Open are required")
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	service := strings.TrimSuffix(o.Service, "/")
	info, err := pickProvider(ctx, o.Client, service, o.Issuer)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loopback redirect: %w", err)
	}
	defer ln.Close()
	redirect := fmt.Sprintf("http://%s/callback", ln.Addr())
	authURL, st, err := StartWeb(ctx, o.Client, *info, redirect)
	if err != nil {
		return nil, err
	}
	got := make(chan url.Values, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := st.Answer(q); err != nil {
			fmt.Fprintf(w, "<!doctype html><title>pgwarden login</title><p id=\"result\">Sign-in failed: %s</p>", html.EscapeString(err.Error()))
		} else {
			fmt.Fprint(w, "<!doctype html><title>pgwarden login</title><p id=\"result\">Signed in to pgwarden. You can close this window.</p>")
		}
		select {
		case got <- q:
		default:
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	if err := o.Open(authURL); err != nil {
		return nil, err
	}
	var q url.Values
	select {
	case q = <-got:
	case <-time.After(o.Timeout):
		return nil, fmt.Errorf("no sign-in within %s", o.Timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	raw, err := FinishWeb(ctx, o.Client, st, redirect, q)
	if err != nil {
		return nil, err
	}
	return exchange(ctx, o.Client, service, raw)
}

func pickProvider(ctx context.Context, c *http.Client, service, issuer string) (*ProviderInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, service+"/v1/sessions/oidc", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ticket service: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Providers []ProviderInfo `json:"providers"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ticket service: %s (is sign-on configured?)", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("ticket service: %w", err)
	}
	for _, p := range body.Providers {
		if issuer == "" || strings.TrimSuffix(issuer, "/") == p.Issuer {
			return &p, nil
		}
	}
	return nil, fmt.Errorf("ticket service trusts no identity provider %q", issuer)
}

// exchange trades an ID token for an internal session at the ticket service.
func exchange(ctx context.Context, c *http.Client, service, idToken string) (*LoginResult, error) {
	b, _ := json.Marshal(map[string]string{"id_token": idToken})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, service+"/v1/sessions/oidc", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ticket service: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("ticket service: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		var e struct{ Error, Message string }
		json.Unmarshal(data, &e)
		return nil, fmt.Errorf("ticket service refused the sign-in: %s: %s", e.Error, e.Message)
	}
	var out LoginResult
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("ticket service: %w", err)
	}
	return &out, nil
}

func random() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// PGPassLine is a ~/.pgpass line for the session (libpq escapes : and \).
func (r *LoginResult) PGPassLine() string {
	esc := func(s string) string { return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s) }
	host := r.Host
	if host == "" {
		host = "*"
	}
	port := "*"
	if r.Port != 0 {
		port = fmt.Sprint(r.Port)
	}
	db := r.Database
	if db == "" {
		db = "*"
	}
	return esc(host) + ":" + port + ":" + esc(db) + ":*:" + esc(r.SessionToken)
}
