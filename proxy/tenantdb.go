package proxy

// Database per tenant. A warehouse with TenantDatabases gives each tenant a
// database of its own (other hosts too): clients still connect with the
// warehouse's name, and their session's tenant picks the database. Each
// tenant database gets, on first use, a Warehouse of its own (its rewriter
// over the policy and that database's catalog) and a pool; all of a
// warehouse's tenant databases share one bound on open connections
// (connLimit), and a database no session has used for IdleTimeout has its
// pool closed. A tenant database that is down fails only its own tenant's
// logins and statements.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// TenantDatabases configures database per tenant for a warehouse.
type TenantDatabases struct {
	// DSN returns the service-account DSN of the tenant's database; false
	// means the tenant has none, and its logins are refused.
	DSN func(tenant string) (string, bool)
	// Rewriter returns a rewriter over the warehouse's policy and the
	// catalog of the database at dsn. It is called when a tenant database
	// is first used, and again at a login after the warehouse's rewriter
	// was swapped (a policy reload).
	Rewriter func(ctx context.Context, dsn string) (Rewriter, error)
	// MaxConns bounds the connections open to all of the warehouse's tenant
	// databases together (default 100). When it is reached, an idle
	// connection of another tenant's database is closed to make room, or
	// the client waits as for a full pool.
	MaxConns int
	// IdleTimeout closes a tenant database's pool and forgets its catalog
	// once no session has used it for this long (default 5m).
	IdleTimeout time.Duration
}

// Defaults for TenantDatabases.
const (
	DefaultTenantMaxConns    = 100
	DefaultTenantIdleTimeout = 5 * time.Minute
)

// tenantRegistry holds one warehouse's tenant databases.
type tenantRegistry struct {
	srv  *Server
	base *Warehouse
	td   TenantDatabases
	lim  *connLimit

	mu  sync.Mutex
	dbs map[string]*tenantDB // by DSN: tenants that share a database share its pool
}

// tenantDB is one tenant database in use.
type tenantDB struct {
	reg  *tenantRegistry
	dsn  string
	wh   *Warehouse // the base's name and pool settings, this database's rewriter
	up   Upstream
	pool *warehousePool // nil in session mode
	done chan struct{}

	// Guarded by the registry's mu.
	refs     int
	lastUsed time.Time

	loadMu sync.Mutex
	baseRW Rewriter // the base rewriter wh's was loaded under
}

func newTenantRegistry(s *Server, base *Warehouse) (*tenantRegistry, error) {
	td := *base.Tenants
	if td.DSN == nil || td.Rewriter == nil {
		return nil, fmt.Errorf("warehouse %q: TenantDatabases needs DSN and Rewriter", base.Name)
	}
	if td.MaxConns == 0 {
		td.MaxConns = DefaultTenantMaxConns
	}
	if td.IdleTimeout == 0 {
		td.IdleTimeout = DefaultTenantIdleTimeout
	}
	if td.MaxConns < 1 || td.IdleTimeout < 0 {
		return nil, fmt.Errorf("warehouse %q: tenant databases: max_conns must be at least 1 and idle_timeout not negative", base.Name)
	}
	r := &tenantRegistry{srv: s, base: base, td: td, dbs: map[string]*tenantDB{}}
	r.lim = &connLimit{max: td.MaxConns, freed: make(chan struct{}), evict: r.evictIdle}
	return r, nil
}

// acquire returns the tenant's database for a new session, creating its
// pool and loading its catalog on first use; release gives it back.
func (r *tenantRegistry) acquire(ctx context.Context, tenant string) (*tenantDB, error) {
	dsn, ok := r.td.DSN(tenant)
	if !ok {
		return nil, pgerr.Fatalf(pgerr.InvalidAuthorization, "tenant %q has no database on warehouse %s", tenant, r.base.Name)
	}
	r.mu.Lock()
	db := r.dbs[dsn]
	if db == nil {
		var err error
		if db, err = r.newDB(dsn); err != nil {
			r.mu.Unlock()
			return nil, err
		}
		r.dbs[dsn] = db
	}
	db.refs++
	db.lastUsed = time.Now()
	r.mu.Unlock()
	if err := r.load(ctx, db, tenant); err != nil {
		r.release(db)
		return nil, err
	}
	return db, nil
}

func (r *tenantRegistry) newDB(dsn string) (*tenantDB, error) {
	cfg := r.srv.cfg
	d, err := newDSNUpstream(r.base.Name, dsn, cfg)
	if err != nil {
		return nil, pgerr.Fatalf(pgerr.InvalidAuthorization, "warehouse %s: the tenant's database is misconfigured", r.base.Name)
	}
	up := pinnedUpstream{warehouse: r.base.Name, up: limitedUpstream{up: d, lim: r.lim}}
	wh := &Warehouse{Name: r.base.Name, DSN: dsn, Upstream: up, Pool: r.base.Pool, Statements: r.base.Statements}
	db := &tenantDB{reg: r, dsn: dsn, wh: wh, up: up, done: make(chan struct{})}
	if wh.Pool.Mode == pool.Transaction {
		pc := wh.Pool
		pc.IdleTimeout = min(pc.IdleTimeout, r.td.IdleTimeout)
		db.pool = newWarehousePool(r.base.Name, up, pc, cfg.ConnectTimeout, r.srv.log, r.srv.metrics, nil)
		go db.pool.Reap(db.done)
	}
	return db, nil
}

// load gives db's warehouse a rewriter over its own catalog: at first use,
// and again after the base warehouse's policy was reloaded.
func (r *tenantRegistry) load(ctx context.Context, db *tenantDB, tenant string) error {
	db.loadMu.Lock()
	defer db.loadMu.Unlock()
	base := r.base.Rewriter()
	if db.wh.Rewriter() != nil && db.baseRW == base {
		return nil
	}
	rw, err := r.td.Rewriter(ctx, db.dsn)
	if err != nil {
		r.srv.log.Warn("tenant database catalog failed to load", zap.String("warehouse", r.base.Name),
			zap.String("tenant", tenant), zap.Error(err))
		var pe *pgerr.Error
		if errors.As(err, &pe) && pe.Code != pgerr.InternalError {
			return pe.AsFatal()
		}
		return pgerr.Fatalf(pgerr.ConnectionFailure, "warehouse %s: the tenant's database is unreachable or does not match the policy", r.base.Name).
			WithHint("the proxy's log has the reason")
	}
	db.wh.SetRewriter(rw)
	db.baseRW = base
	return nil
}

func (r *tenantRegistry) release(db *tenantDB) {
	r.mu.Lock()
	db.refs--
	db.lastUsed = time.Now()
	r.mu.Unlock()
}

// reapLoop closes the pools of tenant databases that no session has used
// for IdleTimeout, until done is closed.
func (r *tenantRegistry) reapLoop(done <-chan struct{}) {
	every := min(max(r.td.IdleTimeout/2, 50*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return // Shutdown closes the pools once sessions are drained
		case <-t.C:
		}
		now := time.Now()
		var idle []*tenantDB
		r.mu.Lock()
		for dsn, db := range r.dbs {
			if db.refs == 0 && now.Sub(db.lastUsed) > r.td.IdleTimeout {
				delete(r.dbs, dsn)
				idle = append(idle, db)
			}
		}
		r.mu.Unlock()
		for _, db := range idle {
			db.close()
		}
	}
}

func (db *tenantDB) close() {
	close(db.done)
	if db.pool != nil {
		db.pool.Close()
	}
}

func (r *tenantRegistry) closeAll() {
	r.mu.Lock()
	dbs := r.dbs
	r.dbs = map[string]*tenantDB{}
	r.mu.Unlock()
	for _, db := range dbs {
		db.close()
	}
}

// open reports the registry's tenant databases and its open connections.
func (r *tenantRegistry) open() (dbs, conns int) {
	r.mu.Lock()
	dbs = len(r.dbs)
	r.mu.Unlock()
	r.lim.mu.Lock()
	defer r.lim.mu.Unlock()
	return dbs, r.lim.open
}

// evictIdle closes the least recently used idle connection of any tenant
// database, to make room under the shared bound; false if there is none.
func (r *tenantRegistry) evictIdle() bool {
	r.mu.Lock()
	pools := make([]*warehousePool, 0, len(r.dbs))
	for _, db := range r.dbs {
		if db.pool != nil {
			pools = append(pools, db.pool)
		}
	}
	r.mu.Unlock()
	var oldest *warehousePool
	var at time.Time
	for _, p := range pools {
		if used, ok := p.IdleSince(); ok && (oldest == nil || used.Before(at)) {
			oldest, at = p, used
		}
	}
	return oldest != nil && oldest.CloseOldestIdle()
}

// connLimit bounds connections open across pools.
type connLimit struct {
	mu    sync.Mutex
	max   int
	open  int
	peak  int           // the most open at once, for tests and metrics
	freed chan struct{} // closed (and replaced) when a connection closes
	evict func() bool
}

// take waits for room for one more connection until ctx ends.
func (l *connLimit) take(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			l.peak = max(l.peak, l.open)
			l.mu.Unlock()
			return nil
		}
		freed := l.freed
		l.mu.Unlock()
		if l.evict != nil && l.evict() {
			continue
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return pgerr.New(pgerr.TooManyConnections, "too many connections to tenant databases").
				WithDetail("all %d connections that tenant databases may have open are in use", l.max).
				WithHint("retry the transaction, or raise the warehouse's tenant_databases.max_conns")
		}
	}
}

func (l *connLimit) give() {
	l.mu.Lock()
	l.open--
	close(l.freed)
	l.freed = make(chan struct{})
	l.mu.Unlock()
}

// limitedUpstream dials only within its connLimit; the slot is given back
// when the connection closes.
type limitedUpstream struct {
	up  Upstream
	lim *connLimit
}

func (u limitedUpstream) Acquire(ctx context.Context, ci *ClientInfo) (pool.Conn, error) {
	if err := u.lim.take(ctx); err != nil {
		return nil, err
	}
	sc, err := u.up.Acquire(ctx, ci)
	if err != nil {
		u.lim.give()
		return nil, err
	}
	s, ok := sc.(*serverConn)
	if !ok {
		sc.Close()
		u.lim.give()
		return nil, errors.New("tenant databases need the proxy's own upstream connections")
	}
	s.onClose = u.lim.give
	return s, nil
}

// ReloadTenantDatabases gives every tenant database in use a rewriter over
// its warehouse's current policy and its own catalog, read again: call it
// after SetRewriter on a policy reload. A tenant database whose catalog
// fails to load keeps its previous rewriter (and is tried again at its
// next login); the first such error is returned.
func (s *Server) ReloadTenantDatabases(ctx context.Context) error {
	var first error
	for _, r := range s.tenants {
		r.mu.Lock()
		dbs := make([]*tenantDB, 0, len(r.dbs))
		for _, db := range r.dbs {
			dbs = append(dbs, db)
		}
		r.mu.Unlock()
		for _, db := range dbs {
			if err := r.load(ctx, db, ""); err != nil && first == nil {
				first = fmt.Errorf("warehouse %s: a tenant database's catalog: %w", r.base.Name, err)
			}
		}
	}
	return first
}
