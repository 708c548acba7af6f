package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/audit"
	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/auth/oidc"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/opstats"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy"
	"github.com/pgwarden/pgwarden/proxy/embedctx"
	"github.com/pgwarden/pgwarden/proxy/fairq"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

var (
	_ proxy.Authenticator       = (*auth.Verifier)(nil)
	_ proxy.RevocationCallbacks = (*auth.Verifier)(nil)
	_ proxy.Rewriter            = (*rewrite.Rewriter)(nil)
	_ auth.PolicyChecker        = (*policySet)(nil)
)

// migrateTimeout bounds the control schema's migration at start.
const migrateTimeout = time.Minute

// app is one running pgwarden: the proxy, the ticket service, or both.
type app struct {
	cfg  *config.File
	log  *zap.Logger
	only string

	reg      *prometheus.Registry
	store    *auth.Store
	verifier *auth.Verifier
	// sso wraps verifier when sign-on is configured (sso.providers).
	sso     *oidc.Authenticator
	service *auth.Service
	handler *auth.Handler
	proxy   *proxy.Server
	// fleet answers the admin API's requests to every replica; nil
	// without the proxy.
	fleet *auth.Fleet
	// stats are this process's statistics for the console's charts.
	stats      *opstats.Recorder
	warehouses map[string]*proxy.Warehouse
	policies   *policySet
	audit      *os.File
	// auditLog writes the audit file (nil without one) and feeds
	// auditStore, the store's copy (nil unless audit.store).
	auditLog   *audit.Log
	auditStore *audit.Batcher
	// draining is set at shutdown: /readyz fails from then on.
	draining atomic.Bool
	// gate bounds the rewrites of every warehouse, across policy reloads.
	gate *rewrite.Gate
}

// policySet answers the ticket service's questions over every warehouse's
// policy: a tenant or group is known when any policy knows it.
type policySet struct {
	byWarehouse atomic.Pointer[map[string]*policy.Policy]
}

func (s *policySet) any(f func(*policy.Policy) bool) bool {
	for _, p := range *s.byWarehouse.Load() {
		if f(p) {
			return true
		}
	}
	return false
}

func (s *policySet) KnowsTenant(t string) bool {
	return s.any(func(p *policy.Policy) bool { return p.KnowsTenant(t) })
}

func (s *policySet) KnowsGroup(g string) bool {
	return s.any(func(p *policy.Policy) bool { return p.KnowsGroup(g) })
}

// authConfig maps the file's auth section onto the auth package's config.
func authConfig(c *config.File) auth.Config {
	a := c.Auth
	keys := make([]auth.APIKey, len(a.APIKeys))
	for i, k := range a.APIKeys {
		keys[i] = auth.APIKey{Name: k.Name, SHA256: k.SHA256, RatePerSecond: k.RatePerSecond, Burst: k.Burst}
	}
	return auth.Config{
		Issuer:             a.Issuer,
		TicketTTL:          a.TicketTTL,
		SessionTTL:         a.SessionTTL,
		SessionMaxLifetime: a.SessionMaxLifetime,
		Leeway:             a.Leeway,
		SigningKeyFile:     a.SigningKeyFile,
		VerifyKeyFiles:     a.VerifyKeyFiles,
		JWKSURL:            a.JWKSURL,
		APIKeys:            keys,
		CORSOrigins:        a.CORSOrigins,
		StoreDSN:           a.StoreDSN,
		Schema:             a.StoreSchema,
		ConnectHost:        a.Connect.Host,
		ConnectPort:        a.Connect.Port,
		ConnectDatabase:    a.Connect.Database,
		Warehouses:         warehouseNames(c),
		BaseRole:           policy.Role(a.BaseRole),

		StoreConnectTimeout: a.StoreConnectTimeout,
		StoreQueryTimeout:   a.StoreQueryTimeout,
		StoreMaxConns:       a.StoreMaxConns,
		ListenPingInterval:  a.ListenPingInterval,
		HTTPReadTimeout:     a.HTTPReadTimeout,
		HTTPWriteTimeout:    a.HTTPWriteTimeout,
		HTTPIdleTimeout:     a.HTTPIdleTimeout,
		HTTPRequestTimeout:  a.HTTPRequestTimeout,
		RetryAfter:          a.RetryAfter,
	}
}

// Open connections outlive their token's expiry when the session is renewed.
var _ proxy.Renewer = (*auth.Verifier)(nil)

func proxyConfig(c *config.File) proxy.Config {
	p := c.Proxy
	return proxy.Config{
		Listen:                p.Listen,
		TLSCertFile:           p.TLSCertFile,
		TLSKeyFile:            p.TLSKeyFile,
		AllowInsecurePassword: p.AllowInsecurePassword,
		MaxMessageBytes:       p.MaxMessageBytes,
		IdleTimeout:           p.IdleTimeout,
		StatementTimeout:      p.StatementTimeout,
		MaxClientConns:        p.MaxClientConns,
		EventLoops:            p.EventLoops,
		LoopIO:                p.LoopIO,
		ShutdownTimeout:       p.ShutdownTimeout,
		ConnectTimeout:        p.ConnectTimeout,
		AuthTimeout:           p.AuthTimeout,
		MaxResultMessageBytes: p.MaxResultMessageBytes,
		PeerID:                p.PeerID,
		Peers:                 p.Peers,
		EmbedContext: embedctx.Config{
			Networks:           p.EmbedContext.Networks,
			ClientCAFile:       p.EmbedContext.ClientCAFile,
			DirectAccessGroups: p.EmbedContext.DirectAccessGroups,
		},
	}
}

// rewriteLimits is what the configuration allows statement rewrites.
func rewriteLimits(c *config.File) rewrite.Limits {
	return rewrite.Limits{
		Concurrency: c.Proxy.RewriteConcurrency,
		MemoryBytes: c.Proxy.RewriteMemoryBytes,
		MemoryWait:  c.Proxy.RewriteMemoryWait,
		Timeout:     c.Proxy.RewriteTimeout,
	}
}

// registerGate exports the gate's state as gauges.
func registerGate(reg prometheus.Registerer, g *rewrite.Gate) {
	gauge := func(name, help string, v func(rewrite.GateStats) int64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(v(g.Stats())) }))
	}
	gauge("pgwarden_rewrites_running", "Statements being rewritten.", func(s rewrite.GateStats) int64 { return s.Running })
	gauge("pgwarden_rewrites_waiting", "Statements waiting for rewrite memory or a rewrite slot.", func(s rewrite.GateStats) int64 { return s.Waiting })
	gauge("pgwarden_rewrite_memory_bytes", "Bytes of statement text held by rewrites and their waits.", func(s rewrite.GateStats) int64 { return s.MemoryBytes })
}

// statsConfig is what the console section asks of the statistics.
func statsConfig(c *config.File) opstats.Config {
	return opstats.Config{Bucket: c.Console.StatsBucket, Window: c.Console.StatsWindow,
		MaxTenants: c.Console.StatsMaxTenants, IdleEvict: c.Console.StatsIdleEvict}
}

func poolConfig(p config.Pool) pool.Config {
	return pool.Config{
		Mode:                  pool.Mode(p.Mode),
		Size:                  p.Size,
		AcquireTimeout:        p.AcquireTimeout,
		IdleTimeout:           p.IdleTimeout,
		MaxLifetime:           p.MaxLifetime,
		HealthCheckAfter:      p.HealthCheckAfter,
		MaxPreparedStatements: p.MaxPreparedStatements,
		PlainSimpleQueries:    p.PrepareSimpleQueries != nil && !*p.PrepareSimpleQueries,
		Tenants:               tenantScheduling(p),
	}
}

// tenantScheduling is the pool's fairq configuration.
func tenantScheduling(p config.Pool) fairq.Config {
	share := func(l config.TenantLimits) fairq.Limits {
		return fairq.Limits{Weight: l.Weight, MaxConns: l.MaxConnections, MaxQueued: l.MaxQueued,
			RatePerSecond: l.StatementsPerSecond, Burst: l.StatementsBurst}
	}
	c := fairq.Config{Policy: fairq.Policy(p.Scheduling), Defaults: share(p.TenantDefaults)}
	if len(p.Tenants) > 0 {
		c.Tenants = map[string]fairq.Limits{}
		for t, l := range p.Tenants {
			c.Tenants[t] = share(l)
		}
	}
	return c
}

// tenantStatementLimits are the per-tenant statement limits of the pool
// section.
func tenantStatementLimits(p config.Pool) proxy.TenantStatementLimits {
	stmt := func(l config.TenantLimits) proxy.StatementLimits {
		s := proxy.StatementLimits{Timeout: l.StatementTimeout, MaxRows: l.MaxResultRows, MaxBytes: l.MaxResultBytes}
		if len(l.RoleStatementTimeouts) > 0 {
			s.RoleTimeouts = map[policy.Role]time.Duration{}
			for r, d := range l.RoleStatementTimeouts {
				s.RoleTimeouts[policy.Role(r)] = d
			}
		}
		return s
	}
	t := proxy.TenantStatementLimits{Defaults: stmt(p.TenantDefaults)}
	if len(p.Tenants) > 0 {
		t.Tenants = map[string]proxy.StatementLimits{}
		for name, l := range p.Tenants {
			t.Tenants[name] = stmt(l)
		}
	}
	return t
}

// newApp builds everything the configuration asks for and checks it all
// (policies against their warehouses' catalogs, keys, the store) before
// anything listens.
func newApp(ctx context.Context, cfg *config.File, log *zap.Logger, only string) (a *app, err error) {
	a = &app{cfg: cfg, log: log, only: only, reg: prometheus.NewRegistry(), policies: &policySet{}}
	built := a // a is nil after `return nil, err`
	defer func() {
		if err != nil {
			built.close()
		}
	}()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if a.stats, err = opstats.New(statsConfig(cfg)); err != nil {
		return nil, fmt.Errorf("%s: console: %w", cfg.Path, err)
	}
	acfg := authConfig(cfg)
	if a.store, err = auth.Open(ctx, acfg); err != nil {
		return nil, err
	}
	// A migration may take longer than one store call, but a store that
	// does not answer must not hang the start forever.
	mctx, mcancel := context.WithTimeout(ctx, migrateTimeout)
	err = a.store.Migrate(mctx)
	mcancel()
	if err != nil {
		return nil, fmt.Errorf("auth store: %w", err)
	}
	if a.gate, err = rewrite.NewGate(rewriteLimits(cfg)); err != nil {
		return nil, err
	}
	registerGate(a.reg, a.gate)
	rewriters, policies, err := loadWarehouses(ctx, cfg, a.runs(onlyProxy), a.gate)
	if err != nil {
		return nil, err
	}
	a.policies.byWarehouse.Store(&policies)

	if err := a.openAudit(); err != nil {
		return nil, err
	}
	acfg.Audit = a.auditLog
	if a.runs(onlyTickets) && cfg.Auth.Listen != "" || only == "" {
		// The service is also what the demo and the ticket command mint with.
		if acfg.SigningKeyFile != "" {
			if a.service, err = auth.NewService(acfg, a.store, a.policies, log.Named("tickets")); err != nil {
				return nil, err
			}
		}
	}
	if a.runs(onlyTickets) && cfg.Auth.Listen != "" {
		if a.handler, err = auth.NewHandler(a.service, a.reg, log.Named("tickets")); err != nil {
			return nil, err
		}
	}
	if !a.runs(onlyProxy) {
		return a, a.wireSSO()
	}
	keys, err := auth.VerificationKeys(acfg, &http.Client{Timeout: acfg.WithDefaults().HTTPRequestTimeout})
	if err != nil {
		return nil, err
	}
	if a.verifier, err = auth.NewVerifier(acfg, keys, a.store, log.Named("verifier")); err != nil {
		return nil, err
	}
	a.warehouses = map[string]*proxy.Warehouse{}
	for name, rw := range rewriters {
		w := proxy.NewWarehouse(name, cfg.Warehouses[name].DSN, rw)
		w.Pool = poolConfig(cfg.Warehouses[name].Pool)
		w.Statements = tenantStatementLimits(cfg.Warehouses[name].Pool)
		if wc := cfg.Warehouses[name]; wc.TenantDatabases() {
			w.Tenants = a.tenantDatabases(name, wc)
		}
		a.warehouses[name] = w
	}
	if err := a.wireSSO(); err != nil {
		return nil, err
	}
	var authn proxy.Authenticator = a.verifier
	if a.sso != nil {
		authn = a.sso
	}
	if cfg.Proxy.AllowInsecurePassword {
		log.Warn("proxy.allow_insecure_password is on: session tokens may cross the network in cleartext; use it for development only")
	}
	var _ proxy.ContentRecorder = (*auth.Store)(nil)
	pcfg := proxyConfig(cfg)
	if cfg.Proxy.PeerIDFromHostname {
		host, err := os.Hostname()
		if err != nil {
			return nil, err
		}
		if pcfg.PeerID, err = config.PeerIDFromHostname(host); err != nil {
			return nil, err
		}
	}
	if f := cfg.Proxy.PeerSecretFile; f != "" {
		if pcfg.PeerSecret, err = os.ReadFile(f); err != nil {
			return nil, fmt.Errorf("proxy.peer_secret_file: %w", err)
		}
	}
	a.proxy, err = proxy.New(pcfg, proxy.Deps{
		Logger:        log.Named("proxy"),
		Authenticator: authn,
		Warehouses:    a.warehouses,
		Audit:         a.proxyAudit(),
		Metrics:       a.reg,
		Learned:       a.store,
		Stats:         a.stats,
	})
	if err != nil {
		return nil, err
	}
	if a.fleet, err = a.newFleet(); err != nil {
		return nil, err
	}
	return a, nil
}

// loadWarehouses loads every warehouse's policy and, when the proxy runs,
// its column catalog and a rewriter.
func loadWarehouses(ctx context.Context, cfg *config.File, withRewriters bool, gate *rewrite.Gate) (map[string]*rewrite.Rewriter, map[string]*policy.Policy, error) {
	names := make([]string, 0, len(cfg.Warehouses))
	for name := range cfg.Warehouses {
		names = append(names, name)
	}
	sort.Strings(names)
	rewriters := map[string]*rewrite.Rewriter{}
	policies := map[string]*policy.Policy{}
	for _, name := range names {
		w := cfg.Warehouses[name]
		p, err := policy.Load(w.Policy)
		if err != nil {
			return nil, nil, fmt.Errorf("warehouse %s: %w", name, err)
		}
		policies[name] = p
		if !withRewriters {
			continue
		}
		rw, err := newRewriter(ctx, cfg, name, p, gate)
		if err != nil {
			return nil, nil, err
		}
		rewriters[name] = rw
	}
	return rewriters, policies, nil
}

// newRewriter loads the warehouse's catalog for p and builds its rewriter,
// bounded by gate (nil: a gate of its own).
func newRewriter(ctx context.Context, cfg *config.File, name string, p *policy.Policy, gate *rewrite.Gate) (*rewrite.Rewriter, error) {
	return newRewriterAt(ctx, cfg, name, cfg.Warehouses[name].DSN, p, gate)
}

// newRewriterAt is newRewriter over the catalog of the database at dsn (a
// tenant's own database).
func newRewriterAt(ctx context.Context, cfg *config.File, name, dsn string, p *policy.Policy, gate *rewrite.Gate) (*rewrite.Rewriter, error) {
	cctx, cancel := context.WithTimeout(ctx, cfg.Proxy.ConnectTimeout)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		// pgconn's connect errors name user and database, never the password.
		return nil, fmt.Errorf("warehouse %s: cannot load its catalog: %w", name, err)
	}
	defer conn.Close(context.Background())
	// The catalog query is small: a warehouse that does not answer it
	// within another connect_timeout is not answering, and a reload must
	// not hang on it.
	qctx, qcancel := context.WithTimeout(ctx, cfg.Proxy.ConnectTimeout)
	defer qcancel()
	cat, err := policy.LoadCatalog(qctx, conn, p)
	if err != nil {
		return nil, fmt.Errorf("warehouse %s: %w", name, err)
	}
	tenants, err := tenantSchemas(cfg, name, p, cat)
	if err != nil {
		return nil, err
	}
	rw, err := rewrite.New(p, cat, rewrite.Options{
		CacheBytes:          cfg.Proxy.RewriteCacheBytes,
		MaxStatementTimeout: cfg.Proxy.StatementTimeout,
		MaxWorkMem:          cfg.Proxy.MaxWorkMemMB << 20,
		// current_database() and pg_database answer the name clients connect with.
		Database: name,
		// Audit records and statement logs (info and below) group by it.
		Fingerprints: cfg.Audit.Path != "" || cfg.Log.Level == "info" || cfg.Log.Level == "debug",
		Gate:         gate,
		// Relations kept one schema per tenant (tenancy.go); nil without.
		TenantSchemas: tenants,
	})
	if err != nil {
		return nil, fmt.Errorf("warehouse %s: %w", name, err)
	}
	return rw, nil
}

// reload re-reads every warehouse's policy and catalog. All or nothing: one
// invalid policy keeps every old one in force.
func (a *app) reload(ctx context.Context) error {
	cfg, err := config.Load(a.cfg.Path)
	if err != nil {
		return err
	}
	for name := range cfg.Warehouses {
		if _, ok := a.cfg.Warehouses[name]; !ok {
			return fmt.Errorf("warehouse %s is new: adding warehouses needs a restart", name)
		}
	}
	// The gate stays: its limits change with a restart.
	rewriters, policies, err := loadWarehouses(ctx, cfg, a.runs(onlyProxy), a.gate)
	if err != nil {
		return err
	}
	a.policies.byWarehouse.Store(&policies)
	for name, rw := range rewriters {
		a.warehouses[name].SetRewriter(rw)
	}
	if a.proxy != nil {
		// Tenant databases read the policy stored above.
		return a.proxy.ReloadTenantDatabases(ctx)
	}
	return nil
}

// run listens on every configured address, calls ready (if not nil) once all
// are bound, and serves until ctx ends or one of them fails.
//
// Shutdown goes in two steps. First the proxy drains (up to
// shutdown_timeout) while everything else keeps running: the verifier still
// cuts revoked sessions, and the HTTP listeners still answer, /healthz with
// 200 (a liveness probe must not kill a draining replica) and /readyz with
// 503 (load balancers stop sending it traffic). Then the rest stops.
func (a *app) run(ctx context.Context, ready func()) error {
	// proxyCtx ends after the signal (and drain_delay) and starts the drain;
	// bgCtx ends after it.
	proxyCtx, stopProxy := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProxy()
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	errc := make(chan error, 8)
	var proxyDone chan error // nil (never ready) without a proxy
	n := 0
	start := func(f func() error) {
		n++
		go func() { errc <- f() }()
	}
	var servers []*http.Server
	serveHTTP := func(srv *http.Server, addr string) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		srv.BaseContext = func(net.Listener) context.Context { return bgCtx }
		servers = append(servers, srv)
		start(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		return nil
	}
	if a.proxy != nil {
		ln, err := net.Listen("tcp", a.cfg.Proxy.Listen)
		if err != nil {
			return fmt.Errorf("proxy.listen: %w", err)
		}
		start(func() error { return a.verifier.Run(bgCtx) })
		start(func() error { return a.fleet.Run(bgCtx) })
		proxyDone = make(chan error, 1)
		go func() { proxyDone <- a.proxy.Serve(proxyCtx, ln) }()
	}
	if a.auditStore != nil {
		// Until the proxy has drained: its last records are copied too.
		start(func() error { return a.auditStore.Run(bgCtx) })
	}
	if a.handler != nil {
		if err := serveHTTP(a.handler.HTTPServer(""), a.cfg.Auth.Listen); err != nil {
			return fmt.Errorf("auth.listen: %w", err)
		}
		start(func() error { return a.service.Run(bgCtx) })
	}
	if a.cfg.Metrics.Listen != "" {
		// No write timeout: /debug/pprof/profile streams for its seconds.
		ops := &http.Server{Handler: a.opsHandler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		if err := serveHTTP(ops, a.cfg.Metrics.Listen); err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
	}
	a.log.Info("pgwarden started", zap.String("listeners", describeListeners(a)))
	if ready != nil {
		ready()
	}
	var first error
	proxyRunning := a.proxy != nil
	select {
	case <-ctx.Done():
	case first = <-errc:
		n--
	case first = <-proxyDone:
		proxyRunning = false
	}
	a.draining.Store(true)
	if a.handler != nil {
		a.handler.Drain()
	}
	if d := a.cfg.Proxy.DrainDelay; d > 0 && proxyRunning && first == nil {
		a.log.Info("draining: /readyz fails; still accepting connections for drain_delay", zap.Duration("drain_delay", d))
		select {
		case <-time.After(d):
		case first = <-proxyDone:
			proxyRunning = false
		}
	}
	stopProxy()
	if proxyRunning {
		if err := <-proxyDone; first == nil {
			first = err
		}
	}
	stopBG()
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	for _, srv := range servers {
		srv.Shutdown(shutdownCtx)
	}
	for ; n > 0; n-- {
		if err := <-errc; first == nil && err != nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	if errors.Is(first, context.Canceled) {
		first = nil
	}
	return first
}

// opsHandler serves /metrics, /healthz and /readyz.
func (a *app) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if a.draining.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if a.proxy != nil && !a.proxy.Ready() {
			http.Error(w, "proxy not serving", http.StatusServiceUnavailable)
			return
		}
		if err := a.store.Ping(ctx); err != nil {
			http.Error(w, "session store unreachable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	if a.cfg.Metrics.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	}
	return mux
}

func (a *app) close() {
	if a.store != nil {
		a.store.Close()
	}
	if a.audit != nil {
		a.audit.Close()
	}
}

// sessionRequest is what the demo and the ticket command ask for.
type sessionRequest struct {
	Tenant, ExternalID, Email string
	Groups                    []string
	Attributes                map[string][]string
	Roles                     map[string]string
	TTL                       time.Duration
}

func (a *app) mintTicket(ctx context.Context, r sessionRequest) (string, error) {
	if a.service == nil {
		return "", errors.New("minting needs auth.signing_key_file in the config")
	}
	roles := map[string]policy.Role{}
	for w, role := range r.Roles {
		roles[w] = policy.Role(role)
	}
	ticket, _, err := a.service.MintTicket(ctx, auth.TicketRequest{
		ExternalID: r.ExternalID, Email: r.Email, Tenant: r.Tenant, Groups: r.Groups,
		Attributes: r.Attributes, ConnectionRoles: roles, APIKeyName: "cli",
	})
	return ticket, err
}

// mintSession mints a ticket and exchanges it, as a browser would, and
// returns the session token and the session's id (what revoke takes).
func (a *app) mintSession(ctx context.Context, r sessionRequest) (token, sid string, err error) {
	ticket, err := a.mintTicket(ctx, r)
	if err != nil {
		return "", "", err
	}
	s, token, err := a.service.ExchangeTicket(ctx, ticket)
	if err != nil {
		return "", "", err
	}
	return token, s.ID, nil
}

// warehouseNames lists the configured warehouses, by name.
func warehouseNames(c *config.File) []string {
	names := make([]string, 0, len(c.Warehouses))
	for name := range c.Warehouses {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// tenantDatabases wires a warehouse's database per tenant: each tenant
// database's rewriter is built over the warehouse's current policy and that
// database's own catalog.
func (a *app) tenantDatabases(name string, wc config.Warehouse) *proxy.TenantDatabases {
	return &proxy.TenantDatabases{
		DSN: wc.TenantDSNFor,
		Rewriter: func(ctx context.Context, dsn string) (proxy.Rewriter, error) {
			p := (*a.policies.byWarehouse.Load())[name]
			rw, err := newRewriterAt(ctx, a.cfg, name, dsn, p, a.gate)
			if err != nil {
				return nil, err
			}
			return rw, nil
		},
		MaxConns:    wc.TenantMaxConns,
		IdleTimeout: wc.TenantIdleTimeout,
	}
}

// printWriteWarnings prints what policy.WriteWarnings finds on a warehouse:
// warnings, not errors (the operator decides).
func printWriteWarnings(ctx context.Context, cfg *config.File, name string, p *policy.Policy, stdout io.Writer) error {
	if !p.HasWrites() {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Proxy.ConnectTimeout)
	defer cancel()
	conn, err := pgx.Connect(cctx, cfg.Warehouses[name].DSN)
	if err != nil {
		return fmt.Errorf("warehouse %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	warnings, err := policy.WriteWarnings(cctx, conn, p)
	if err != nil {
		return fmt.Errorf("warehouse %s: %w", name, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stdout, "warehouse %s: warning: %s\n", name, w)
	}
	return nil
}
