package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
)

// KeySource finds the public key that verifies a token with a given kid.
// *KeySet holds keys loaded from files; *RemoteKeySet fetches a JWKS.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

var errUnknownKID = errors.New("unknown key id")

// KeyID is the RFC 7638 JWK thumbprint of an Ed25519 public key, so that the
// same key gets the same kid wherever it is loaded.
func KeyID(pub ed25519.PublicKey) string {
	x := base64.RawURLEncoding.EncodeToString(pub)
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SigningKey is the one active private key and its kid.
type SigningKey struct {
	KID     string
	Private ed25519.PrivateKey
}

// Public returns the public half of k.
func (k *SigningKey) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// KeySet is a fixed set of verification keys, looked up by kid.
type KeySet struct {
	keys map[string]ed25519.PublicKey
}

// NewKeySet returns a set holding pubs.
func NewKeySet(pubs ...ed25519.PublicKey) *KeySet {
	s := &KeySet{keys: make(map[string]ed25519.PublicKey, len(pubs))}
	for _, p := range pubs {
		s.keys[KeyID(p)] = p
	}
	return s
}

// PublicKey implements KeySource.
func (s *KeySet) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if p, ok := s.keys[kid]; ok {
		return p, nil
	}
	return nil, errUnknownKID
}

// JWKS returns the set as a JSON Web Key Set, sorted by kid.
func (s *KeySet) JWKS() JWKS {
	var out JWKS
	for kid, p := range s.keys {
		out.Keys = append(out.Keys, JWK{
			KTY: "OKP", CRV: "Ed25519", X: base64.RawURLEncoding.EncodeToString(p),
			KID: kid, Alg: "EdDSA", Use: "sig",
		})
	}
	sort.Slice(out.Keys, func(i, j int) bool { return out.Keys[i].KID < out.Keys[j].KID })
	if out.Keys == nil {
		out.Keys = []JWK{}
	}
	return out
}

// JWKS is a JSON Web Key Set (RFC 7517) of OKP keys (RFC 8037).
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWK is one public key.
type JWK struct {
	KTY string `json:"kty"`
	CRV string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	KID string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// GeneratedKey names the files GenerateKey wrote.
type GeneratedKey struct {
	KID            string
	PrivateKeyFile string // PKCS#8 PEM, mode 0600
	PublicKeyFile  string // PKIX PEM, mode 0644
}

// GenerateKey writes a new Ed25519 key pair into dir as
// signing-<kid prefix>.key and .pub. It never overwrites a file.
func GenerateKey(dir string) (*GeneratedKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	kid := KeyID(pub)
	g := &GeneratedKey{
		KID:            kid,
		PrivateKeyFile: filepath.Join(dir, "signing-"+kid[:12]+".key"),
		PublicKeyFile:  filepath.Join(dir, "signing-"+kid[:12]+".pub"),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	if err := writeNew(g.PrivateKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(g.PublicKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		os.Remove(g.PrivateKeyFile)
		return nil, err
	}
	return g, nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return nil
}

// LoadSigningKey reads a PKCS#8 PEM Ed25519 private key.
func LoadSigningKey(path string) (*SigningKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: not a PKCS#8 private key", path)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not an Ed25519 key", path)
	}
	return &SigningKey{KID: KeyID(priv.Public().(ed25519.PublicKey)), Private: priv}, nil
}

// LoadPublicKey reads a PKIX PEM Ed25519 public key.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("public key %s: not a PKIX public key", path)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key %s: not an Ed25519 key", path)
	}
	return pub, nil
}

// VerificationKeys returns what verifies session tokens under cfg: the
// keys of its files, then, with JWKSURL set, the ticket service's key set
// fetched with client (a replica without the signing key; keys the service
// adds when it rotates are fetched when a token names them).
func VerificationKeys(cfg Config, client *http.Client) (KeySource, error) {
	if cfg.JWKSURL == "" {
		return LoadKeySet(cfg)
	}
	remote, err := NewRemoteKeySet(cfg.JWKSURL, client, cfg.WithDefaults().Now)
	if err != nil {
		return nil, err
	}
	if cfg.SigningKeyFile == "" && len(cfg.VerifyKeyFiles) == 0 {
		return remote, nil
	}
	local, err := LoadKeySet(cfg)
	if err != nil {
		return nil, err
	}
	return keySources{local, remote}, nil
}

// keySources tries each source in turn.
type keySources []KeySource

func (ks keySources) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	var err error
	for _, k := range ks {
		var pub ed25519.PublicKey
		if pub, err = k.PublicKey(ctx, kid); err == nil {
			return pub, nil
		}
	}
	return nil, err
}

// LoadKeySet builds the verification set of cfg: the public half of the
// signing key (if configured) plus every VerifyKeyFiles entry.
func LoadKeySet(cfg Config) (*KeySet, error) {
	var pubs []ed25519.PublicKey
	if cfg.SigningKeyFile != "" {
		k, err := LoadSigningKey(cfg.SigningKeyFile)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, k.Public())
	}
	for _, f := range cfg.VerifyKeyFiles {
		p, err := LoadPublicKey(f)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, p)
	}
	if len(pubs) == 0 {
		return nil, errors.New("auth config: signing_key_file or verify_key_files: no verification key configured")
	}
	return NewKeySet(pubs...), nil
}

func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != typ {
		// Never echo the file content: it may be a key.
		return nil, fmt.Errorf("key %s: no %q PEM block", path, typ)
	}
	return b.Bytes, nil
}
