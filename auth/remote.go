package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Refresh policy of a RemoteKeySet: keys are re-fetched when older than
// remoteMaxAge or when a token names an unknown kid, but never more often
// than remoteMinRefresh, so that tokens with made-up kids cannot turn a
// proxy into a JWKS flooder.
const (
	remoteMinRefresh = 5 * time.Second
	remoteMaxAge     = 5 * time.Minute
	remoteMaxBody    = 1 << 20
)

// RemoteKeySet is a KeySource that fetches the ticket service's JWKS, for
// proxies that run apart from it.
type RemoteKeySet struct {
	url    string
	client *http.Client
	now    func() time.Time

	fetchMu sync.Mutex // one fetch at a time; waiters reuse its result

	mu          sync.Mutex
	keys        map[string]ed25519.PublicKey
	fetched     time.Time // last successful fetch
	lastAttempt time.Time
}

// NewRemoteKeySet returns a key set fetched from jwksURL (e.g.
// https://tickets.example.com/.well-known/jwks.json) with client. It fetches
// lazily, on first use.
func NewRemoteKeySet(jwksURL string, client *http.Client, now func() time.Time) (*RemoteKeySet, error) {
	if client == nil || now == nil {
		return nil, errors.New("auth: NewRemoteKeySet: nil dependency")
	}
	u, err := url.Parse(jwksURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("auth: jwks url %q is not an http(s) URL", jwksURL)
	}
	return &RemoteKeySet{url: jwksURL, client: client, now: now, keys: map[string]ed25519.PublicKey{}}, nil
}

// PublicKey implements KeySource.
func (r *RemoteKeySet) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	if k, fresh, ok := r.lookup(kid); ok && fresh {
		return k, nil
	}
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	// Someone else may have fetched while we waited.
	k, fresh, ok := r.lookup(kid)
	if ok && fresh {
		return k, nil
	}
	r.mu.Lock()
	tooSoon := r.now().Sub(r.lastAttempt) < remoteMinRefresh
	if !tooSoon {
		r.lastAttempt = r.now()
	}
	r.mu.Unlock()
	if tooSoon {
		if ok {
			return k, nil
		}
		return nil, errUnknownKID
	}
	if err := r.fetch(ctx); err != nil {
		if ok {
			// Serve the stale key rather than fail every connection while
			// the service is briefly unreachable.
			return k, nil
		}
		return nil, err
	}
	if k, _, ok := r.lookup(kid); ok {
		return k, nil
	}
	return nil, errUnknownKID
}

func (r *RemoteKeySet) lookup(kid string) (k ed25519.PublicKey, fresh, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok = r.keys[kid]
	return k, r.now().Sub(r.fetched) < remoteMaxAge, ok
}

func (r *RemoteKeySet) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch jwks: %s answered %s", r.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, remoteMaxBody+1))
	if err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	if len(body) > remoteMaxBody {
		return fmt.Errorf("fetch jwks: %s: larger than %d bytes", r.url, remoteMaxBody)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("fetch jwks: %s: %w", r.url, err)
	}
	r.mu.Lock()
	r.keys = keys
	r.fetched = r.now()
	r.mu.Unlock()
	return nil
}

// parseJWKS keeps the Ed25519 signing keys of a JWKS and skips the rest.
func parseJWKS(body []byte) (map[string]ed25519.PublicKey, error) {
	var set JWKS
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, errors.New("not a JWKS document")
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.KTY != "OKP" || k.CRV != "Ed25519" || k.KID == "" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "EdDSA") {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("key %q: bad x", k.KID)
		}
		keys[k.KID] = ed25519.PublicKey(x)
	}
	if len(keys) == 0 {
		return nil, errors.New("no Ed25519 keys")
	}
	return keys, nil
}
