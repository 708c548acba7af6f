// Package oidctest runs a real OpenID Connect provider on loopback for
// tests: zitadel/oidc's op package with the in-memory storage and login page
// of its example server, plus users that carry groups. Tests sign in through
// its login page (over HTTP, or in headless Chromium) and get ID tokens the
// provider signed, exactly as from Okta or Keycloak.
package oidctest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
)

// ClientID is the native (public, PKCE) client every provider registers,
// with loopback redirects on any port (RFC 8252): `pgwarden login`'s and
// the operator console's.
const ClientID = "pgwarden-cli"

// Password is every test user's password.
const Password = "correct horse battery staple"

// User is a test user. A nil Groups means the token has no groups claim.
type User struct {
	ID     string
	Email  string
	Groups []string
}

// Provider is a running provider.
type Provider struct {
	Issuer string
	users  map[string]User
}

// Start runs a provider on a free loopback port until the test ends.
func Start(t testing.TB, users ...User) *Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	p := &Provider{Issuer: issuer, users: map[string]User{}}
	us := userStore{users: map[string]*storage.User{}}
	for _, u := range users {
		p.users[u.ID] = u
		us.users[u.ID] = &storage.User{ID: u.ID, Username: u.ID, Password: Password, FirstName: u.ID, LastName: "Test",
			Email: u.Email, EmailVerified: true}
	}
	clients := map[string]*storage.Client{ClientID: storage.NativeClient(ClientID, "http://127.0.0.1/callback", "http://127.0.0.1/console/callback")}
	st := &groupStorage{Storage: storage.NewStorageWithClients(us, clients), users: p.users}
	// The example server logs every request through slog's default
	// logger; keep the test output to its warnings.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	router := exampleop.SetupServer(issuer, st, nil, false)
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// userStore is the example storage's UserStore over our users.
type userStore struct{ users map[string]*storage.User }

func (s userStore) GetUserByID(id string) *storage.User { return s.users[id] }
func (s userStore) GetUserByUsername(name string) *storage.User {
	for _, u := range s.users {
		if u.Username == name {
			return u
		}
	}
	return nil
}
func (s userStore) ExampleClientID() string { return "service" }

// groupStorage puts email and groups into ID tokens, as providers do for a
// client configured to receive them.
type groupStorage struct {
	*storage.Storage
	users map[string]User
}

func (s *groupStorage) SetUserinfoFromRequest(ctx context.Context, ui *zoidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	u, ok := s.users[req.GetSubject()]
	if !ok {
		return errors.New("no such user")
	}
	ui.Email = u.Email
	if u.Groups != nil {
		ui.AppendClaims("groups", u.Groups)
	}
	return nil
}

// Config is an oauth2 config for the provider's native client.
func (p *Provider) Config(redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: ClientID, RedirectURL: redirect, Scopes: []string{"openid", "email", "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: p.Issuer + "/auth", TokenURL: p.Issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

// SignIn runs the authorization-code flow with PKCE over plain HTTP —
// the provider's own login form, posted as a browser would — and returns
// the ID token the provider issued to user.
func (p *Provider) SignIn(t testing.TB, user string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tok, err := p.signIn(ctx, user)
	if err != nil {
		t.Fatalf("sign in as %s: %v", user, err)
	}
	return tok
}

func (p *Provider) signIn(ctx context.Context, user string) (string, error) {
	const redirect = "http://127.0.0.1:1/callback"
	conf := p.Config(redirect)
	jar, _ := cookiejar.New(nil)
	var code string
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirect) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	verifier := oauth2.GenerateVerifier()
	resp, err := c.Get(conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if id == "" {
		return "", fmt.Errorf("no login page after /auth (at %s, %s)", resp.Request.URL, resp.Status)
	}
	resp, err = c.PostForm(p.Issuer+"/login/username", url.Values{"id": {id}, "username": {user}, "password": {Password}})
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code == "" {
		return "", fmt.Errorf("no code after login (%s): %.300s", resp.Status, body)
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, c), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return "", err
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", errors.New("no id_token")
	}
	return raw, nil
}
