package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet is a provider's JWKS, cached and fetched again when a token names
// a key id it does not hold (key rotation), at most once per minRefresh so
// that tokens with made-up key ids cannot make us hammer the provider.
// go-oidc's RemoteKeySet does the same but cannot tell an unknown key from
// a bad signature, which the refusal must say; verification itself is
// go-jose's.
type keySet struct {
	url        string
	client     *http.Client
	algs       []jose.SignatureAlgorithm
	now        func() time.Time
	minRefresh time.Duration

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time
}

const maxJWKSBytes = 1 << 20

// VerifySignature implements go-oidc's KeySet.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, k.algs)
	if err != nil {
		return nil, ErrAlgorithm
	}
	if len(jws.Signatures) != 1 {
		return nil, ErrMalformed
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, err := k.lookup(ctx, kid)
	if err != nil {
		return nil, err
	}
	for i := range keys {
		if payload, err := jws.Verify(&keys[i]); err == nil {
			return payload, nil
		}
	}
	return nil, ErrSignature
}

// lookup returns the keys that may have signed a token naming kid.
func (k *keySet) lookup(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if found := match(k.keys, kid); len(found) > 0 {
		return found, nil
	}
	if !k.fetched.IsZero() && k.now().Sub(k.fetched) < k.minRefresh {
		return nil, ErrUnknownKey
	}
	keys, err := k.fetch(ctx)
	if err != nil {
		return nil, err
	}
	k.keys, k.fetched = keys, k.now()
	if found := match(k.keys, kid); len(found) > 0 {
		return found, nil
	}
	return nil, ErrUnknownKey
}

func match(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, key := range keys {
		if (kid == "" || key.KeyID == kid) && key.Use != "enc" {
			out = append(out, key)
		}
	}
	return out
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProviderUnavailable, err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: jwks: %v", ErrProviderUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: jwks: %v", ErrProviderUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: jwks: %s", ErrProviderUnavailable, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("%w: jwks: %v", ErrProviderUnavailable, err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.Join(ErrProviderUnavailable, errors.New("jwks: no keys"))
	}
	return set.Keys, nil
}
