// Package config is pgwarden's configuration file: one YAML document that the
// serve, demo, ticket and explain commands share. It is plain data with
// defaults applied in one place (applyDefaults) and Validate run once before
// anything listens. Relative paths are resolved against the file's directory.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is the whole configuration.
type File struct {
	Proxy      Proxy                `yaml:"proxy"`
	Warehouses map[string]Warehouse `yaml:"warehouses"`
	Auth       Auth                 `yaml:"auth"`
	SSO        SSO                  `yaml:"sso"`
	Metrics    Metrics              `yaml:"metrics"`
	Console    Console              `yaml:"console"`
	Audit      Audit                `yaml:"audit"`
	Log        Log                  `yaml:"log"`

	// Path is the file this was loaded from ("" when built in code).
	Path string `yaml:"-"`
}

// Proxy configures the PostgreSQL listener.
type Proxy struct {
	Listen                string        `yaml:"listen"`
	TLSCertFile           string        `yaml:"tls_cert_file"`
	TLSKeyFile            string        `yaml:"tls_key_file"`
	AllowInsecurePassword bool          `yaml:"allow_insecure_password"`
	MaxMessageBytes       int           `yaml:"max_message_bytes"`
	IdleTimeout           time.Duration `yaml:"idle_timeout"`
	StatementTimeout      time.Duration `yaml:"statement_timeout"`
	MaxClientConns        int           `yaml:"max_client_conns"`
	// EventLoops is how many event loops run the sessions of plain-socket
	// clients in transaction mode: 0 for one per processor less one, -1
	// for none (every session on goroutines of its own).
	EventLoops int `yaml:"event_loops"`
	// LoopIO is how the event loops do their I/O: io_uring (the default,
	// where the kernel allows it) or epoll.
	LoopIO          string        `yaml:"loop_io"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// DrainDelay is how long the proxy keeps accepting connections after
	// SIGTERM, /readyz failing, before it closes its listener: the time a
	// load balancer's readiness check needs to stop sending it clients.
	DrainDelay     time.Duration `yaml:"drain_delay"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// AuthTimeout bounds a client's startup and authentication (default
	// 60s, PostgreSQL's authentication_timeout). Store calls within it are
	// bounded by auth.store_query_timeout.
	AuthTimeout       time.Duration `yaml:"auth_timeout"`
	RewriteCacheBytes int64         `yaml:"rewrite_cache_bytes"`
	// MaxResultMessageBytes caps one message from a warehouse (a row);
	// 0 means the proxy's default of 1 GiB, PostgreSQL's own field limit.
	MaxResultMessageBytes int `yaml:"max_result_message_bytes"`
	// What statement rewrites may use (rewrite.Limits): a statement's time,
	// the statements rewritten at once, and the bytes of statement text
	// being rewritten at once across all sessions, with how long one waits
	// for them.
	RewriteTimeout     time.Duration `yaml:"rewrite_timeout"`
	RewriteConcurrency int           `yaml:"rewrite_concurrency"`
	RewriteMemoryBytes int64         `yaml:"rewrite_memory_bytes"`
	RewriteMemoryWait  time.Duration `yaml:"rewrite_memory_wait"`
	// MaxWorkMemMB caps what a client may SET work_mem to, in megabytes;
	// 0 means 256.
	MaxWorkMemMB int64 `yaml:"max_work_mem_mb"`
	// Replicas behind one address (a load balancer): this replica's id
	// (1 to 255), the others' client addresses by id, and a file with the
	// secret they share (at least 32 bytes) to sign the cancel requests
	// they forward to each other.
	PeerID int `yaml:"peer_id"`
	// PeerIDFromHostname takes the peer id from the host name's ordinal
	// suffix, as a StatefulSet names its pods: pgwarden-proxy-0 is peer 1.
	PeerIDFromHostname bool           `yaml:"peer_id_from_hostname"`
	Peers              map[int]string `yaml:"peers"`
	PeerSecretFile     string         `yaml:"peer_secret_file"`
	// EmbedContext binds embed sessions to their BI backends; off when
	// neither networks nor client_ca_file is set.
	EmbedContext EmbedContext `yaml:"embed_context"`
}

// EmbedContext is where embed sessions may connect from (proxy/embedctx).
type EmbedContext struct {
	// Networks are CIDRs (or addresses) of the BI backends.
	Networks []string `yaml:"networks"`
	// ClientCAFile is a PEM CA: a client certificate it signed (mutual TLS)
	// puts a connection in the embed context from anywhere.
	ClientCAFile string `yaml:"client_ca_file"`
	// DirectAccessGroups may connect from anywhere (groups only).
	DirectAccessGroups []string `yaml:"direct_access_groups"`
}

// Warehouse is one upstream database, selected by the client's database name.
type Warehouse struct {
	// DSN of the least-privilege service account, e.g.
	// postgres://pgwarden_svc:secret@db:5432/analytics?sslmode=require.
	DSN string `yaml:"dsn"`
	// Policy is the policy file for this warehouse.
	Policy string `yaml:"policy"`
	// Pool says how clients share the warehouse's connections; zero fields
	// take the proxy's defaults.
	Pool Pool `yaml:"pool"`
	// Database per tenant (tenantdb.go): each tenant's sessions go to
	// TenantDSNs[tenant], else TenantDSN with {{tenant}} replaced; DSN then
	// only serves the policy's check at start. Pool applies to each tenant
	// database; TenantMaxConns bounds them all together (default 100) and a
	// tenant database unused for TenantIdleTimeout has its pool closed
	// (default 5m).
	TenantDSN         string            `yaml:"tenant_dsn"`
	TenantDSNs        map[string]string `yaml:"tenant_dsns"`
	TenantMaxConns    int               `yaml:"tenant_max_conns"`
	TenantIdleTimeout time.Duration     `yaml:"tenant_idle_timeout"`
}

// tenantSafe are the tenant names a tenant_dsn template takes: nothing that
// could mean something else in a URL or a key=value DSN.
var tenantSafe = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// TenantDatabases reports whether the warehouse has a database per tenant.
func (w Warehouse) TenantDatabases() bool { return w.TenantDSN != "" || len(w.TenantDSNs) > 0 }

// TenantDSNFor returns the DSN of tenant's database: its tenant_dsns entry,
// else tenant_dsn with {{tenant}} replaced (for tenants of letters, digits
// and _ . - only); false when there is none.
func (w Warehouse) TenantDSNFor(tenant string) (string, bool) {
	if dsn, ok := w.TenantDSNs[tenant]; ok {
		return dsn, true
	}
	if w.TenantDSN == "" || !tenantSafe.MatchString(tenant) {
		return "", false
	}
	return strings.ReplaceAll(w.TenantDSN, "{{tenant}}", tenant), true
}

// Pool configures a warehouse's connection pool.
type Pool struct {
	// Mode is "session" (a warehouse connection per client) or
	// "transaction" (connections shared between clients at transaction
	// boundaries).
	Mode string `yaml:"mode"`
	// Size caps the warehouse connections in transaction mode.
	Size             int           `yaml:"size"`
	AcquireTimeout   time.Duration `yaml:"acquire_timeout"`
	IdleTimeout      time.Duration `yaml:"idle_timeout"`
	MaxLifetime      time.Duration `yaml:"max_lifetime"`
	HealthCheckAfter time.Duration `yaml:"health_check_after"`
	// MaxPreparedStatements caps the statements kept prepared on each
	// warehouse connection (least recently used closed first); 0 means 200.
	MaxPreparedStatements int `yaml:"max_prepared_statements"`
	// PrepareSimpleQueries runs simple-protocol statements as prepared
	// statements, constants bound as parameters (default true).
	PrepareSimpleQueries *bool `yaml:"prepare_simple_queries"`
	// Scheduling orders the clients waiting for a connection when the pool
	// is saturated: "fair" (the default: tenants in turn, by weight) or
	// "fifo" (arrival order).
	Scheduling string `yaml:"scheduling"`
	// TenantDefaults are every tenant's limits; Tenants overrides them by
	// tenant (a zero field takes the default).
	TenantDefaults TenantLimits            `yaml:"tenant_defaults"`
	Tenants        map[string]TenantLimits `yaml:"tenants"`
}

// TenantLimits keep one tenant from starving the others; zero means no limit.
type TenantLimits struct {
	// Weight is the tenant's turns per round when the pool is saturated
	// (default 1).
	Weight int `yaml:"weight"`
	// MaxConnections caps the warehouse connections the tenant holds at
	// once: its share of the pool (transaction mode), or its sessions
	// (session mode, where each holds one).
	MaxConnections int `yaml:"max_connections"`
	// MaxQueued caps the tenant's clients waiting for a connection; one
	// more gets 53300.
	MaxQueued int `yaml:"max_queued"`
	// StatementsPerSecond and StatementsBurst are a token bucket: a
	// statement beyond it waits for its token, up to the pool's
	// acquire_timeout, and gets 53300 past that.
	StatementsPerSecond float64 `yaml:"statements_per_second"`
	StatementsBurst     int     `yaml:"statements_burst"`
	// StatementTimeout is the tenant's statement_timeout, and
	// RoleStatementTimeouts the timeout by the session's role on the
	// warehouse (viewer, restricted_querier, querier); clients cannot SET
	// statement_timeout above it.
	StatementTimeout      time.Duration            `yaml:"statement_timeout"`
	RoleStatementTimeouts map[string]time.Duration `yaml:"role_statement_timeouts"`
	// MaxResultRows and MaxResultBytes cap one statement's result: beyond,
	// the statement is cancelled on the warehouse and fails with 54000;
	// the connection stays usable.
	MaxResultRows  int64 `yaml:"max_result_rows"`
	MaxResultBytes int64 `yaml:"max_result_bytes"`
}

// validate reports invalid limits; field names their section.
func (l TenantLimits) validate(field string, bad func(field, format string, args ...any)) {
	if l.Weight < 0 || l.Weight > 1000 {
		bad(field+".weight", "%d is not between 1 and 1000", l.Weight)
	}
	for sub, n := range map[string]int64{"max_connections": int64(l.MaxConnections), "max_queued": int64(l.MaxQueued),
		"statements_burst": int64(l.StatementsBurst), "max_result_rows": l.MaxResultRows, "max_result_bytes": l.MaxResultBytes} {
		if n < 0 {
			bad(field+"."+sub, "must not be negative")
		}
	}
	if !(l.StatementsPerSecond >= 0 && l.StatementsPerSecond < 1e9) {
		bad(field+".statements_per_second", "must be a positive number, or 0 for no limit")
	}
	if l.StatementTimeout < 0 || l.StatementTimeout > 0 && l.StatementTimeout < time.Millisecond {
		bad(field+".statement_timeout", "must be at least 1ms, or 0 for no limit")
	}
	for role, d := range l.RoleStatementTimeouts {
		switch role {
		case "viewer", "restricted_querier", "querier":
		default:
			bad(field+".role_statement_timeouts."+role, "unknown role (want viewer, restricted_querier or querier)")
		}
		if d < time.Millisecond {
			bad(field+".role_statement_timeouts."+role, "must be at least 1ms")
		}
	}
}

// Auth configures the ticket service and token verification.
type Auth struct {
	// Listen is the ticket service's HTTP address; "" runs no ticket service
	// (the proxy still verifies tokens and redeems tickets through the store).
	Listen         string   `yaml:"listen"`
	Issuer         string   `yaml:"issuer"`
	SigningKeyFile string   `yaml:"signing_key_file"`
	VerifyKeyFiles []string `yaml:"verify_key_files"`
	// JWKSURL is the ticket service's key set, for a proxy that runs apart
	// from it without key files (https, or http to a loopback host).
	JWKSURL            string        `yaml:"jwks_url"`
	TicketTTL          time.Duration `yaml:"ticket_ttl"`
	SessionTTL         time.Duration `yaml:"session_ttl"`
	SessionMaxLifetime time.Duration `yaml:"session_max_lifetime"`
	Leeway             time.Duration `yaml:"leeway"`
	StoreDSN           string        `yaml:"store_dsn"`
	StoreSchema        string        `yaml:"store_schema"`
	APIKeys            []APIKey      `yaml:"api_keys"`
	CORSOrigins        []string      `yaml:"cors_origins"`
	BaseRole           string        `yaml:"base_role"`
	// Timeouts on the store and the HTTP API; zero takes the auth
	// package's defaults (see auth.Config).
	StoreConnectTimeout time.Duration `yaml:"store_connect_timeout"`
	StoreQueryTimeout   time.Duration `yaml:"store_query_timeout"`
	StoreMaxConns       int           `yaml:"store_max_conns"`
	ListenPingInterval  time.Duration `yaml:"listen_ping_interval"`
	HTTPReadTimeout     time.Duration `yaml:"http_read_timeout"`
	HTTPWriteTimeout    time.Duration `yaml:"http_write_timeout"`
	HTTPIdleTimeout     time.Duration `yaml:"http_idle_timeout"`
	HTTPRequestTimeout  time.Duration `yaml:"http_request_timeout"`
	RetryAfter          time.Duration `yaml:"retry_after"`
	// Connect is what POST /v1/sessions tells clients to connect to.
	Connect Connect `yaml:"connect"`
}

// SSO configures sign-on for internal users (package auth/oidc validates
// it in full when the ticket service or proxy starts). No providers means
// no sign-on.
type SSO struct {
	Providers []SSOProvider `yaml:"providers"`
	// RoleMapping maps a provider group to owner, administrator, creator,
	// designer or viewer; the highest of a user's groups wins.
	RoleMapping map[string]string `yaml:"role_mapping"`
	// Owners are subjects that are Owners whatever their groups.
	Owners []string `yaml:"owners"`
}

// SSOProvider is one trusted OpenID Connect provider.
type SSOProvider struct {
	Issuer              string        `yaml:"issuer"`
	ClientID            string        `yaml:"client_id"`
	Audiences           []string      `yaml:"audiences"`
	SubjectClaim        string        `yaml:"subject_claim"`
	EmailClaim          string        `yaml:"email_claim"`
	GroupsClaim         string        `yaml:"groups_claim"`
	AllowedEmailDomains []string      `yaml:"allowed_email_domains"`
	Leeway              time.Duration `yaml:"leeway"`
	Algorithms          []string      `yaml:"algorithms"`
	Scopes              []string      `yaml:"scopes"`
}

// APIKey is a named host-application key, stored as the SHA-256 hex of the key.
type APIKey struct {
	Name          string  `yaml:"name"`
	SHA256        string  `yaml:"sha256"`
	RatePerSecond float64 `yaml:"rate_per_second"`
	Burst         int     `yaml:"burst"`
}

// Connect is the proxy address handed to clients.
type Connect struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	Database string `yaml:"database"`
}

// Metrics configures the HTTP listener for /metrics, /healthz and /readyz.
type Metrics struct {
	Listen string `yaml:"listen"`
	// Pprof also serves Go's profiler under /debug/pprof/ on this listener;
	// off by default because profiles reveal query text in stacks and cost
	// CPU while they run.
	Pprof bool `yaml:"pprof"`
}

// Console configures the operator console (served under /console/ on
// auth.listen wherever the admin API is) and the statistics each proxy
// process keeps for its charts. Zero values take the defaults in brackets.
type Console struct {
	// Disabled stops serving the console (the statistics are still kept
	// for GET /v1/admin/stats).
	Disabled bool `yaml:"disabled"`
	// PublicURL is the console's origin as browsers reach it, for the
	// identity provider's redirect to /console/callback (register that URL
	// with the provider); "" takes each request's scheme and host.
	PublicURL string `yaml:"public_url"`
	// StatsBucket is one point of a chart [10s]; StatsWindow how far back
	// points are kept [1h], at most 10000 buckets.
	StatsBucket time.Duration `yaml:"stats_bucket"`
	StatsWindow time.Duration `yaml:"stats_window"`
	// StatsMaxTenants tenants get series of their own, the rest count as
	// "other" [20, at most 1000]; a series idle for StatsIdleEvict [5m] is
	// given to a newcomer.
	StatsMaxTenants int           `yaml:"stats_max_tenants"`
	StatsIdleEvict  time.Duration `yaml:"stats_idle_evict"`
}

// Audit configures the audit log.
type Audit struct {
	// Path is a file to append JSON lines to, "-" for stdout, "" for none.
	Path       string `yaml:"path"`
	IncludeSQL bool   `yaml:"include_sql"`
	// Store copies every record to the control store as well (in the
	// background, in batches; the file stays the primary record), for the
	// admin API's audit reader across processes.
	Store bool `yaml:"store"`
	// StoreRetention: stored records older than this are deleted
	// (default 720h, 30 days).
	StoreRetention time.Duration `yaml:"store_retention"`
	// StoreQueue bounds the records waiting to be stored; past it they
	// are dropped from the store's copy and counted (default 10000).
	StoreQueue int `yaml:"store_queue"`
}

// Log configures the process log.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"` // json or console
}

// Load reads, defaults and validates a configuration file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse decodes a configuration document; path names it in errors and anchors
// relative paths.
func Parse(data []byte, path string) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty document is all defaults (Decode returns io.EOF).
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.Path = path
	f.applyDefaults()
	f.resolvePaths(filepath.Dir(path))
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

func (f *File) applyDefaults() {
	if f.Audit.StoreRetention == 0 {
		f.Audit.StoreRetention = 30 * 24 * time.Hour
	}
	if f.Audit.StoreQueue == 0 {
		f.Audit.StoreQueue = 10000
	}
	p := &f.Proxy
	if p.Listen == "" {
		p.Listen = "127.0.0.1:6432"
	}
	if p.MaxMessageBytes == 0 {
		p.MaxMessageBytes = 16 << 20
	}
	if p.IdleTimeout == 0 {
		p.IdleTimeout = time.Hour
	}
	if p.MaxClientConns == 0 {
		p.MaxClientConns = 1000
	}
	if p.ShutdownTimeout == 0 {
		p.ShutdownTimeout = 30 * time.Second
	}
	if p.ConnectTimeout == 0 {
		p.ConnectTimeout = 10 * time.Second
	}
	if p.RewriteTimeout == 0 {
		p.RewriteTimeout = 10 * time.Second
	}
	if p.RewriteConcurrency == 0 {
		p.RewriteConcurrency = runtime.GOMAXPROCS(0)
	}
	if p.RewriteMemoryBytes == 0 {
		// One statement of the largest size at a time: its rewrite alone
		// peaks at 15 to 35 times its length.
		p.RewriteMemoryBytes = int64(p.MaxMessageBytes)
	}
	if p.RewriteMemoryWait == 0 {
		p.RewriteMemoryWait = 5 * time.Second
	}
	if p.MaxWorkMemMB == 0 {
		p.MaxWorkMemMB = 256
	}
	a := &f.Auth
	if a.Issuer == "" {
		a.Issuer = "pgwarden"
	}
	if a.TicketTTL == 0 {
		a.TicketTTL = 60 * time.Second
	}
	if a.SessionTTL == 0 {
		a.SessionTTL = time.Hour
	}
	if a.SessionMaxLifetime == 0 {
		a.SessionMaxLifetime = 12 * time.Hour
	}
	if a.Leeway == 0 {
		a.Leeway = 30 * time.Second
	}
	if a.StoreSchema == "" {
		a.StoreSchema = "pgwarden"
	}
	if a.BaseRole == "" {
		a.BaseRole = "no_access"
	}
	if a.Connect.Host == "" || a.Connect.Port == 0 {
		host, port, err := net.SplitHostPort(p.Listen)
		if err == nil {
			if a.Connect.Host == "" {
				a.Connect.Host = host
			}
			if a.Connect.Port == 0 {
				fmt.Sscanf(port, "%d", &a.Connect.Port)
			}
		}
	}
	if a.Connect.Database == "" && len(f.Warehouses) == 1 {
		for name := range f.Warehouses {
			a.Connect.Database = name
		}
	}
	if f.Log.Level == "" {
		f.Log.Level = "info"
	}
	if f.Log.Format == "" {
		f.Log.Format = "json"
	}
}

func (f *File) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && *p != "-" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&f.Proxy.TLSCertFile)
	abs(&f.Proxy.TLSKeyFile)
	abs(&f.Proxy.PeerSecretFile)
	abs(&f.Proxy.EmbedContext.ClientCAFile)
	abs(&f.Auth.SigningKeyFile)
	for i := range f.Auth.VerifyKeyFiles {
		abs(&f.Auth.VerifyKeyFiles[i])
	}
	abs(&f.Audit.Path)
	for name, w := range f.Warehouses {
		abs(&w.Policy)
		f.Warehouses[name] = w
	}
}

var (
	warehouseName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	sha256Hex     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate checks the whole file and reports every problem, each naming the
// file and the field.
func (f *File) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", f.Path, field, fmt.Sprintf(format, args...)))
	}
	checkAddr := func(field, addr string) {
		if addr == "" {
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(field, "%q is not host:port", addr)
		}
	}
	checkAddr("proxy.listen", f.Proxy.Listen)
	if f.Audit.StoreRetention < 0 {
		bad("audit.store_retention", "must not be negative")
	}
	if f.Audit.StoreQueue < 0 {
		bad("audit.store_queue", "must not be negative")
	}
	checkAddr("auth.listen", f.Auth.Listen)
	checkAddr("metrics.listen", f.Metrics.Listen)
	if c := f.Console; c.StatsBucket != 0 && c.StatsBucket < time.Second {
		bad("console.stats_bucket", "%s is too short (at least 1s)", c.StatsBucket)
	} else if b := cmp.Or(c.StatsBucket, 10*time.Second); c.StatsWindow < 0 || c.StatsWindow != 0 && (c.StatsWindow < b || c.StatsWindow/b > 10000) {
		bad("console.stats_window", "%s: between one bucket (%s) and 10000 buckets", c.StatsWindow, b)
	}
	if u := f.Console.PublicURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || strings.Trim(pu.Path, "/") != "" {
			bad("console.public_url", "%q: want an origin such as https://pgwarden.example.com", u)
		}
	}
	if n := f.Console.StatsMaxTenants; n < 0 || n > 1000 {
		bad("console.stats_max_tenants", "%d: between 1 and 1000", n)
	}
	if f.Console.StatsIdleEvict < 0 {
		bad("console.stats_idle_evict", "negative")
	}
	if (f.Proxy.TLSCertFile == "") != (f.Proxy.TLSKeyFile == "") {
		bad("proxy.tls_cert_file", "tls_cert_file and tls_key_file go together")
	}
	ec := f.Proxy.EmbedContext
	for i, n := range ec.Networks {
		if _, err := netip.ParsePrefix(n); err != nil {
			if _, err := netip.ParseAddr(n); err != nil {
				bad(fmt.Sprintf("proxy.embed_context.networks[%d]", i), "%q is not a CIDR or an address", n)
			}
		}
	}
	if ec.ClientCAFile != "" && f.Proxy.TLSCertFile == "" {
		bad("proxy.embed_context.client_ca_file", "client certificates need TLS: set proxy.tls_cert_file and tls_key_file")
	}
	if len(ec.DirectAccessGroups) > 0 && len(ec.Networks) == 0 && ec.ClientCAFile == "" {
		bad("proxy.embed_context.direct_access_groups", "set without networks or client_ca_file, it grants nothing")
	}
	for i, g := range ec.DirectAccessGroups {
		if g == "" {
			bad(fmt.Sprintf("proxy.embed_context.direct_access_groups[%d]", i), "empty group")
		}
	}
	if f.Proxy.MaxMessageBytes < 4096 {
		bad("proxy.max_message_bytes", "%d is too small (at least 4096)", f.Proxy.MaxMessageBytes)
	}
	for field, d := range map[string]time.Duration{
		"proxy.idle_timeout": f.Proxy.IdleTimeout, "proxy.statement_timeout": f.Proxy.StatementTimeout,
		"proxy.shutdown_timeout": f.Proxy.ShutdownTimeout, "proxy.drain_delay": f.Proxy.DrainDelay, "proxy.connect_timeout": f.Proxy.ConnectTimeout,
		"proxy.rewrite_timeout": f.Proxy.RewriteTimeout, "proxy.rewrite_memory_wait": f.Proxy.RewriteMemoryWait,
		"auth.ticket_ttl": f.Auth.TicketTTL, "auth.session_ttl": f.Auth.SessionTTL,
		"auth.session_max_lifetime": f.Auth.SessionMaxLifetime, "auth.leeway": f.Auth.Leeway,
		"proxy.auth_timeout":         f.Proxy.AuthTimeout,
		"auth.store_connect_timeout": f.Auth.StoreConnectTimeout, "auth.store_query_timeout": f.Auth.StoreQueryTimeout,
		"auth.http_read_timeout": f.Auth.HTTPReadTimeout, "auth.http_write_timeout": f.Auth.HTTPWriteTimeout,
		"auth.http_idle_timeout": f.Auth.HTTPIdleTimeout, "auth.http_request_timeout": f.Auth.HTTPRequestTimeout,
		"auth.retry_after": f.Auth.RetryAfter, "auth.listen_ping_interval": f.Auth.ListenPingInterval,
	} {
		if d < 0 {
			bad(field, "must not be negative")
		}
	}
	if f.Proxy.MaxResultMessageBytes < 0 || f.Proxy.MaxResultMessageBytes > 1<<31-5 {
		bad("proxy.max_result_message_bytes", "%d is outside 0 (the default, 1 GiB) to 2147483643", f.Proxy.MaxResultMessageBytes)
	}
	if f.Proxy.PeerIDFromHostname && f.Proxy.PeerID != 0 {
		bad("proxy.peer_id_from_hostname", "set either peer_id or peer_id_from_hostname")
	}
	if f.Proxy.MaxWorkMemMB < 0 || f.Proxy.MaxWorkMemMB > 1<<21 {
		bad("proxy.max_work_mem_mb", "%d is not between 1 and 2097151", f.Proxy.MaxWorkMemMB)
	}
	if f.Proxy.EventLoops < -1 {
		bad("proxy.event_loops", "must be -1 (none), 0 (one per processor less one) or a count")
	}
	if l := f.Proxy.LoopIO; l != "" && l != "io_uring" && l != "epoll" {
		bad("proxy.loop_io", "%q: want io_uring or epoll", l)
	}
	if f.Proxy.MaxClientConns < 1 {
		bad("proxy.max_client_conns", "must be at least 1")
	}
	if f.Proxy.RewriteConcurrency < 1 {
		bad("proxy.rewrite_concurrency", "must be at least 1")
	}
	if f.Proxy.RewriteMemoryBytes < 4096 {
		bad("proxy.rewrite_memory_bytes", "%d is too small (at least 4096)", f.Proxy.RewriteMemoryBytes)
	}
	if len(f.Warehouses) == 0 {
		bad("warehouses", "at least one warehouse is needed")
	}
	names := make([]string, 0, len(f.Warehouses))
	for name := range f.Warehouses {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		w := f.Warehouses[name]
		field := "warehouses." + name
		if !warehouseName.MatchString(name) {
			bad(field, "warehouse names are what clients send as the database name: letters, digits, _ . -")
		}
		if w.DSN == "" {
			bad(field+".dsn", "missing")
		} else if _, err := url.Parse(w.DSN); err != nil && strings.Contains(w.DSN, "://") {
			bad(field+".dsn", "not a valid URL")
		}
		if w.Policy == "" {
			bad(field+".policy", "missing: every warehouse needs a policy file (default deny)")
		}
		if w.TenantDSN != "" && !strings.Contains(w.TenantDSN, "{{tenant}}") {
			bad(field+".tenant_dsn", "needs {{tenant}} where the tenant's database name (or host) goes")
		}
		for tenant, dsn := range w.TenantDSNs {
			if _, err := url.Parse(dsn); dsn == "" || err != nil && strings.Contains(dsn, "://") {
				bad(field+".tenant_dsns."+tenant, "not a valid DSN")
			}
		}
		if w.TenantMaxConns < 0 {
			bad(field+".tenant_max_conns", "must not be negative")
		}
		if w.TenantIdleTimeout < 0 {
			bad(field+".tenant_idle_timeout", "must not be negative")
		}
		switch w.Pool.Mode {
		case "", "session", "transaction":
		default:
			bad(field+".pool.mode", "%q is not session or transaction", w.Pool.Mode)
		}
		if w.Pool.Size < 0 {
			bad(field+".pool.size", "must not be negative")
		}
		if w.Pool.MaxPreparedStatements < 0 {
			bad(field+".pool.max_prepared_statements", "must not be negative")
		}
		switch w.Pool.Scheduling {
		case "", "fair", "fifo":
		default:
			bad(field+".pool.scheduling", "%q is not fair or fifo", w.Pool.Scheduling)
		}
		w.Pool.TenantDefaults.validate(field+".pool.tenant_defaults", bad)
		tenants := make([]string, 0, len(w.Pool.Tenants))
		for t := range w.Pool.Tenants {
			tenants = append(tenants, t)
		}
		sort.Strings(tenants)
		for _, t := range tenants {
			if t == "" {
				bad(field+".pool.tenants", "a tenant name is empty")
				continue
			}
			w.Pool.Tenants[t].validate(field+".pool.tenants."+t, bad)
		}
		for sub, d := range map[string]time.Duration{"acquire_timeout": w.Pool.AcquireTimeout, "idle_timeout": w.Pool.IdleTimeout,
			"max_lifetime": w.Pool.MaxLifetime, "health_check_after": w.Pool.HealthCheckAfter} {
			if d < 0 {
				bad(field+".pool."+sub, "must not be negative")
			}
		}
	}
	a := f.Auth
	if a.SigningKeyFile == "" && len(a.VerifyKeyFiles) == 0 && a.JWKSURL == "" {
		bad("auth", "signing_key_file, verify_key_files or jwks_url is needed to verify session tokens")
	}
	if a.JWKSURL != "" {
		if err := checkJWKSURL(a.JWKSURL); err != nil {
			bad("auth.jwks_url", "%v", err)
		}
	}
	if a.Listen != "" && a.SigningKeyFile == "" {
		bad("auth.signing_key_file", "the ticket service (auth.listen) needs a signing key")
	}
	if a.StoreDSN == "" {
		bad("auth.store_dsn", "missing: redeemed tickets and revocations live in PostgreSQL")
	}
	if a.TicketTTL > 10*time.Minute {
		bad("auth.ticket_ttl", "%s is longer than the 10m cap: tickets are meant to be short-lived", a.TicketTTL)
	}
	if a.StoreMaxConns < 0 {
		bad("auth.store_max_conns", "must not be negative")
	}
	if a.HTTPRequestTimeout > 0 && a.HTTPWriteTimeout > 0 && a.HTTPRequestTimeout >= a.HTTPWriteTimeout {
		bad("auth.http_request_timeout", "must be below http_write_timeout (%s), or a timed-out request cannot be answered", a.HTTPWriteTimeout)
	}
	if a.SessionMaxLifetime < a.SessionTTL {
		bad("auth.session_max_lifetime", "must be at least session_ttl (%s)", a.SessionTTL)
	}
	switch a.BaseRole {
	case "no_access", "viewer", "restricted_querier", "querier":
	default:
		bad("auth.base_role", "unknown role %q (want no_access, viewer, restricted_querier or querier)", a.BaseRole)
	}
	seen := map[string]bool{}
	for i, k := range a.APIKeys {
		field := fmt.Sprintf("auth.api_keys[%d]", i)
		if k.Name == "" {
			bad(field+".name", "missing")
		} else if seen[k.Name] {
			bad(field+".name", "duplicate name %q", k.Name)
		}
		seen[k.Name] = true
		if !sha256Hex.MatchString(k.SHA256) {
			bad(field+".sha256", "must be the lowercase hex SHA-256 of the key (64 characters); `pgwarden keygen --api-key` prints one")
		}
		if k.RatePerSecond < 0 || k.Burst < 0 {
			bad(field, "rate_per_second and burst must not be negative")
		}
	}
	if a.Listen != "" && len(a.APIKeys) == 0 {
		bad("auth.api_keys", "the ticket service (auth.listen) needs at least one API key")
	}
	for i, o := range a.CORSOrigins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad(fmt.Sprintf("auth.cors_origins[%d]", i), "%q is not an origin like https://app.example.com", o)
		}
	}
	switch f.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "unknown level %q (want debug, info, warn or error)", f.Log.Level)
	}
	switch f.Log.Format {
	case "json", "console":
	default:
		bad("log.format", "unknown format %q (want json or console)", f.Log.Format)
	}
	return errors.Join(errs...)
}

// checkJWKSURL accepts an https URL, or http to a loopback host: keys fetched
// over plain http from elsewhere could be anyone's, and so could sessions.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%q: use https (http only to a loopback host)", raw)
	}
	return fmt.Errorf("%q is not an http(s) URL", raw)
}

// PeerIDFromHostname is the peer id of a replica whose host name ends in a
// StatefulSet ordinal ("pgwarden-proxy-2" is peer 3).
func PeerIDFromHostname(host string) (int, error) {
	i := strings.LastIndexByte(host, '-')
	n, err := strconv.Atoi(host[i+1:])
	if i < 0 || err != nil || n < 0 || n > 254 {
		return 0, fmt.Errorf("proxy.peer_id_from_hostname: host name %q does not end in -N (0 to 254)", host)
	}
	return n + 1, nil
}
