package auth

import (
	"github.com/pgwarden/pgwarden/audit"

	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/policy"
)

// Limits and defaults. A ticket is a bearer secret in a browser, so its
// lifetime is capped no matter what the configuration says.
const (
	DefaultIssuer             = "pgwarden"
	DefaultTicketTTL          = 60 * time.Second
	MaxTicketTTL              = 10 * time.Minute
	DefaultSessionTTL         = time.Hour
	DefaultSessionMaxLifetime = 12 * time.Hour
	DefaultLeeway             = 30 * time.Second
	MaxLeeway                 = 5 * time.Minute
	DefaultSchema             = "pgwarden"
	DefaultConnectPort        = 5432
	DefaultResyncInterval     = 30 * time.Second
	DefaultPurgeInterval      = 10 * time.Minute
	DefaultMaxBodyBytes       = 64 << 10
	// A login or an API request waits on the store at most this long: a few
	// seconds tells a frozen store from a busy one without holding clients.
	DefaultStoreConnectTimeout = 5 * time.Second
	DefaultStoreQueryTimeout   = 5 * time.Second
	// DefaultListenPingInterval: a revocation listener that heard nothing
	// for this long checks that its connection still reaches the store.
	DefaultListenPingInterval = 10 * time.Second
	// DefaultStoreMaxConns sizes the store's connection pool. Every login
	// with a session token checks it, and a call waiting for a pooled
	// connection counts against store_query_timeout, so a burst of logins
	// needs more than pgxpool's default of max(4, CPUs).
	DefaultStoreMaxConns = 16
	// The HTTP API's deadlines. A request's work is bounded by
	// RequestTimeout; the write timeout leaves room to send its 503.
	DefaultHTTPReadTimeout    = 10 * time.Second
	DefaultHTTPWriteTimeout   = 20 * time.Second
	DefaultHTTPIdleTimeout    = 2 * time.Minute
	DefaultHTTPRequestTimeout = 10 * time.Second
	// DefaultRetryAfter is what a 503 tells clients to wait before retrying.
	DefaultRetryAfter = 5 * time.Second
)

// Audiences keep tickets and session tokens apart: a ticket can never be used
// as a session token and vice versa.
const (
	AudienceTicket  = "pgwarden-ticket"
	AudienceSession = "pgwarden-session"
)

// Config configures the ticket service and the verifier. The zero value of a
// field means its default; WithDefaults applies them all in one place.
type Config struct {
	// Issuer is the iss claim minted and required.
	Issuer string `yaml:"issuer"`
	// TicketTTL is how long a web-ticket lives (default 60s, at most 10m).
	TicketTTL time.Duration `yaml:"ticket_ttl"`
	// SessionTTL is how long a session token lives before it must be renewed.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// SessionMaxLifetime bounds renewals, counted from the first minting.
	SessionMaxLifetime time.Duration `yaml:"session_max_lifetime"`
	// Leeway tolerates clock skew on exp, nbf and iat (default 30s; zero
	// means the default, so the strictest setting is 1s).
	Leeway time.Duration `yaml:"leeway"`
	// SigningKeyFile is the PKCS#8 PEM Ed25519 private key that signs tokens.
	// Needed by the service, not by a proxy that only verifies.
	SigningKeyFile string `yaml:"signing_key_file"`
	// VerifyKeyFiles are PKIX PEM public keys still accepted (key rotation).
	VerifyKeyFiles []string `yaml:"verify_key_files"`
	// JWKSURL is the ticket service's /.well-known/jwks.json, for a proxy
	// that verifies sessions without key files (see VerificationKeys).
	JWKSURL string `yaml:"jwks_url"`
	// APIKeys are the host-application backends allowed to mint tickets.
	APIKeys []APIKey `yaml:"api_keys"`
	// CORSOrigins are the exact origins (scheme://host[:port]) of pages that
	// embed dashboards and may exchange tickets from the browser.
	CORSOrigins []string `yaml:"cors_origins"`
	// StoreDSN is the PostgreSQL that holds redeemed tickets and sessions.
	StoreDSN string `yaml:"store_dsn"`
	// Schema is the control schema in that database (default pgwarden).
	Schema string `yaml:"schema"`
	// ConnectHost, ConnectPort and ConnectDatabase are returned by
	// POST /v1/sessions so that a BI tool knows where the proxy listens.
	ConnectHost     string `yaml:"connect_host"`
	ConnectPort     int    `yaml:"connect_port"`
	ConnectDatabase string `yaml:"connect_database"`
	// Warehouses are the database names clients may connect with: when
	// ConnectDatabase is empty, POST /v1/sessions answers the one the
	// session's connection roles open (the first by name if several).
	Warehouses []string `yaml:"-"`
	// BaseRole is the role on a warehouse a ticket does not name.
	BaseRole policy.Role `yaml:"base_role"`
	// ResyncInterval is how often a verifier re-reads all revocations, in
	// case a notification was lost.
	ResyncInterval time.Duration `yaml:"resync_interval"`
	// PurgeInterval is how often expired tickets and sessions are deleted.
	PurgeInterval time.Duration `yaml:"purge_interval"`
	// MaxBodyBytes caps request bodies (default 64 KiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// StoreConnectTimeout bounds opening a connection to the store, the
	// revocation listener's included (default 5s).
	StoreConnectTimeout time.Duration `yaml:"store_connect_timeout"`
	// StoreQueryTimeout bounds each store call (a query or a transaction),
	// waiting for a pooled connection included (default 5s). Past it the
	// store counts as unavailable: HTTP 503, or FATAL 57P03 at login.
	StoreQueryTimeout time.Duration `yaml:"store_query_timeout"`
	// ListenPingInterval is how often a quiet revocation listener pings the
	// store (default 10s), so that a LISTEN connection to a host that
	// vanished without closing it is replaced within about this long
	// plus store_query_timeout.
	ListenPingInterval time.Duration `yaml:"listen_ping_interval"`
	// StoreMaxConns caps the store connections of this process (default
	// 16; a pool_max_conns in store_dsn wins).
	StoreMaxConns int `yaml:"store_max_conns"`
	// HTTPReadTimeout bounds reading a request, headers and body (default
	// 10s); HTTPWriteTimeout bounds handling and writing it (default 20s);
	// HTTPIdleTimeout closes idle keep-alive connections (default 2m).
	HTTPReadTimeout  time.Duration `yaml:"http_read_timeout"`
	HTTPWriteTimeout time.Duration `yaml:"http_write_timeout"`
	HTTPIdleTimeout  time.Duration `yaml:"http_idle_timeout"`
	// HTTPRequestTimeout is each request's deadline (default 10s); it must
	// be below HTTPWriteTimeout so that the answer can still be written.
	HTTPRequestTimeout time.Duration `yaml:"http_request_timeout"`
	// RetryAfter is the Retry-After of a 503 (default 5s).
	RetryAfter time.Duration `yaml:"retry_after"`
	// Now is the clock; nil means time.Now.
	Now func() time.Time `yaml:"-"`
	// Audit, if set, records the service's session events (exchange,
	// renewal, revocation, acting as a test tenant).
	Audit *audit.Log `yaml:"-"`
}

// APIKey is one host-application credential. Only the SHA-256 of the key is
// configured; the key itself never is.
type APIKey struct {
	Name string `yaml:"name"`
	// SHA256 is the lowercase hex SHA-256 of the key (see HashAPIKey).
	SHA256 string `yaml:"sha256"`
	// RatePerSecond and Burst configure the key's token bucket on
	// POST /v1/tickets; zero RatePerSecond means unlimited.
	RatePerSecond float64 `yaml:"rate_per_second"`
	Burst         int     `yaml:"burst"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.TicketTTL == 0 {
		c.TicketTTL = DefaultTicketTTL
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.SessionMaxLifetime == 0 {
		c.SessionMaxLifetime = DefaultSessionMaxLifetime
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.ConnectPort == 0 {
		c.ConnectPort = DefaultConnectPort
	}
	if c.BaseRole == "" {
		c.BaseRole = policy.RoleNoAccess
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.PurgeInterval == 0 {
		c.PurgeInterval = DefaultPurgeInterval
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.StoreConnectTimeout == 0 {
		c.StoreConnectTimeout = DefaultStoreConnectTimeout
	}
	if c.StoreQueryTimeout == 0 {
		c.StoreQueryTimeout = DefaultStoreQueryTimeout
	}
	if c.ListenPingInterval == 0 {
		c.ListenPingInterval = DefaultListenPingInterval
	}
	if c.StoreMaxConns == 0 {
		c.StoreMaxConns = DefaultStoreMaxConns
	}
	if c.HTTPReadTimeout == 0 {
		c.HTTPReadTimeout = DefaultHTTPReadTimeout
	}
	if c.HTTPWriteTimeout == 0 {
		c.HTTPWriteTimeout = DefaultHTTPWriteTimeout
	}
	if c.HTTPIdleTimeout == 0 {
		c.HTTPIdleTimeout = DefaultHTTPIdleTimeout
	}
	if c.HTTPRequestTimeout == 0 {
		c.HTTPRequestTimeout = DefaultHTTPRequestTimeout
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	keys := make([]APIKey, len(c.APIKeys))
	for i, k := range c.APIKeys {
		k.SHA256 = strings.ToLower(k.SHA256)
		if k.RatePerSecond > 0 && k.Burst == 0 {
			k.Burst = max(1, int(k.RatePerSecond))
		}
		keys[i] = k
	}
	c.APIKeys = keys
	return c
}

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports every invalid field of c (after defaults), each named.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("auth config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.StoreDSN == "" {
		bad("store_dsn", "required: the PostgreSQL that holds redeemed tickets and sessions")
	}
	if c.TicketTTL < time.Second || c.TicketTTL > MaxTicketTTL {
		bad("ticket_ttl", "must be between 1s and %s", MaxTicketTTL)
	}
	if c.SessionTTL < time.Second {
		bad("session_ttl", "must be at least 1s")
	}
	if c.SessionMaxLifetime < c.SessionTTL {
		bad("session_max_lifetime", "must be at least session_ttl (%s)", c.SessionTTL)
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		bad("leeway", "must be between 0 and %s", MaxLeeway)
	}
	if !schemaRE.MatchString(c.Schema) {
		bad("schema", "%q is not a plain lowercase identifier", c.Schema)
	}
	if c.ConnectPort < 1 || c.ConnectPort > 65535 {
		bad("connect_port", "%d is not a TCP port", c.ConnectPort)
	}
	if !c.BaseRole.Valid() {
		bad("base_role", "unknown role %q", c.BaseRole)
	}
	if c.ResyncInterval < 0 || c.PurgeInterval < 0 || c.MaxBodyBytes < 0 {
		bad("resync_interval/purge_interval/max_body_bytes", "must not be negative")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"store_connect_timeout", c.StoreConnectTimeout},
		{"store_query_timeout", c.StoreQueryTimeout},
		{"listen_ping_interval", c.ListenPingInterval},
		{"http_read_timeout", c.HTTPReadTimeout},
		{"http_write_timeout", c.HTTPWriteTimeout},
		{"http_idle_timeout", c.HTTPIdleTimeout},
		{"http_request_timeout", c.HTTPRequestTimeout},
		{"retry_after", c.RetryAfter},
	} {
		if d.v < time.Millisecond {
			bad(d.field, "must be at least 1ms")
		}
	}
	if c.StoreMaxConns < 1 {
		bad("store_max_conns", "must be at least 1")
	}
	if c.HTTPRequestTimeout >= c.HTTPWriteTimeout {
		bad("http_request_timeout", "must be below http_write_timeout (%s), or a timed-out request cannot be answered", c.HTTPWriteTimeout)
	}
	seen := map[string]bool{}
	for i, k := range c.APIKeys {
		field := fmt.Sprintf("api_keys[%d]", i)
		switch {
		case k.Name == "":
			bad(field+".name", "required")
		case seen[k.Name]:
			bad(field+".name", "duplicate key name %q", k.Name)
		}
		seen[k.Name] = true
		if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != 32 {
			bad(field+".sha256", "must be the 64-digit hex SHA-256 of the key")
		}
		if k.RatePerSecond < 0 || k.Burst < 0 {
			bad(field+".rate_per_second", "must not be negative")
		}
	}
	for i, o := range c.CORSOrigins {
		if _, err := normalizeOrigin(o); err != nil {
			bad(fmt.Sprintf("cors_origins[%d]", i), "%v", err)
		}
	}
	return errors.Join(errs...)
}

// normalizeOrigin returns the canonical form of an origin as browsers send
// it: scheme://host[:port], lowercase, no path.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q is not an origin like https://app.example.com", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}
