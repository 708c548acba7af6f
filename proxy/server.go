// Package proxy is pgwarden's PostgreSQL wire-protocol front end: it
// authenticates clients with a session token, sends every statement through
// the warehouse's Rewriter and relays the rewritten statements and their
// results between the client and the warehouse. It is the only package that
// speaks the protocol (pgproto3 on both sides, pgconn to dial warehouses).
//
// Each session has two goroutines. The loop reads client messages, rewrites
// the SQL of Query and Parse, and forwards every message 1:1 to the warehouse
// connection; the relay reads the warehouse's answers and writes them to the
// client one message at a time, so the order of replies is the warehouse's
// own and no result is ever held whole. A refused statement is forwarded as a
// marker that fails to parse: the warehouse then does PostgreSQL's error
// recovery itself (skip to Sync, abort the transaction block) and the relay
// puts the refusal in place of the marker's syntax error. A queue of messages
// awaiting answers ties replies to statements for the audit log, the metrics,
// the idle timeout and draining.
//
// A warehouse in transaction mode (the default; see pool.Mode) lends pooled
// connections to clients one transaction at a time: the loop binds a
// connection at the first message that needs one and the relay returns it at
// the ReadyForQuery 'I' that ends the client's synced batch. Client prepared
// statements are prepared per connection under proxy names (bind.go).
package proxy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/embedctx"
	"github.com/pgwarden/pgwarden/proxy/fairq"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// Authenticator turns the password a client sends at startup into a session.
type Authenticator interface {
	// Authenticate turns the startup password (a session token or a fresh
	// ticket) into a session; errors are *pgerr.Error FATAL 28P01.
	Authenticate(ctx context.Context, credential string) (*auth.Session, error)
	// Watch returns a channel closed within ~1s when the session is revoked.
	Watch(sessionID string) (revoked <-chan struct{}, stop func())
}

// RevocationCallbacks is implemented by an Authenticator that can call a
// function when a session is revoked (auth.Verifier), so that an idle
// session needs no goroutine of its own waiting for Watch's channel. f runs
// on a goroutine of the authenticator's; stop ends the watch.
type RevocationCallbacks interface {
	WatchFunc(sessionID string, f func()) (stop func())
}

// Renewer is implemented by an Authenticator that knows a session's expiry
// now: a connection whose session was renewed after it opened outlives the
// expiry of the token it opened with.
type Renewer interface {
	SessionExpiry(ctx context.Context, sessionID string) (time.Time, error)
}

// Rewriter rewrites a statement for an identity; errors are *pgerr.Error.
// It stops when ctx ends, with the context's cause when that is a
// *pgerr.Error.
type Rewriter interface {
	Rewrite(ctx context.Context, sql string, id *policy.Identity) (*rewrite.Result, error)
}

// HitRewriter is a Rewriter that can answer a query from its template in a
// buffer of the caller's (rewrite.Rewriter is one), valid until the next
// answer in it: a session reuses one from statement to statement in place
// of a new result each time (clientConn.reusableHit).
type HitRewriter interface {
	RewriteInto(ctx context.Context, sql string, id *policy.Identity, buf *rewrite.HitBuf) (*rewrite.Result, error)
}

// ParamRewriter is a Rewriter that also takes the parameter types a client
// declares at Parse (rewrite.Rewriter is one): knowing them lets it push
// more of the client's conditions into the tenant subquery.
type ParamRewriter interface {
	RewriteParams(ctx context.Context, sql string, id *policy.Identity, paramTypes []uint32) (*rewrite.Result, error)
}

// Warehouse is one upstream database that clients select with the database
// name of their startup message.
type Warehouse struct {
	// Name is what clients put in their startup message's database field.
	Name string
	// DSN is the pgconn connection string of the service account; used when
	// Upstream is nil.
	DSN string
	// Upstream, if set, hands out warehouse connections instead of dialing DSN.
	Upstream Upstream
	// Pool says how clients share the warehouse's connections (see pool.Mode).
	Pool pool.Config
	// Statements are each tenant's limits on its statements (timeout,
	// result rows and bytes; tenantlimits.go), in both modes.
	Statements TenantStatementLimits
	// Tenants, if set, gives each tenant a database of its own
	// (tenantdb.go); DSN and Upstream then serve only the policy's catalog.
	Tenants *TenantDatabases

	rewriter atomic.Pointer[rewriterBox]
}

type rewriterBox struct{ r Rewriter }

// NewWarehouse returns a warehouse that dials dsn and rewrites with r.
func NewWarehouse(name, dsn string, r Rewriter) *Warehouse {
	w := &Warehouse{Name: name, DSN: dsn}
	w.SetRewriter(r)
	return w
}

// SetRewriter swaps the rewriter (on policy reload): the next statement
// uses r, and a statement prepared earlier is rewritten again by r at its
// next Bind or Describe.
func (w *Warehouse) SetRewriter(r Rewriter) { w.rewriter.Store(&rewriterBox{r}) }

// Rewriter returns the current rewriter, or nil.
func (w *Warehouse) Rewriter() Rewriter {
	if b := w.rewriter.Load(); b != nil {
		return b.r
	}
	return nil
}

// Deps are the server's collaborators. Logger, Authenticator and at least one
// Warehouse are required.
type Deps struct {
	Logger        *zap.Logger
	Authenticator Authenticator
	// Warehouses maps database name to warehouse.
	Warehouses map[string]*Warehouse
	// Audit, if set, receives one record per statement.
	Audit *AuditLog
	// Metrics, if set, registers the proxy's metrics.
	Metrics prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Learned, if set, records the statements viewer sessions of a
	// learning warehouse or tenant run unlisted (rewrite.Learned).
	Learned ContentRecorder
	// Stats, if set, receives the operational statistics the operator
	// console charts (*opstats.Recorder is one).
	Stats StatsRecorder
}

// Server accepts PostgreSQL clients.
type Server struct {
	// loops run the sessions that can run on an event loop
	// (evloop_linux.go); nil when none do. Set before the first accept.
	loops      atomic.Pointer[evLoops]
	loopsOnce  sync.Once // stops them
	loopStats  *loopMetrics
	cfg        Config
	log        *zap.Logger
	auth       Authenticator
	warehouses map[string]*Warehouse
	upstreams  map[string]Upstream
	pools      map[string]*warehousePool // transaction-mode warehouses
	// sessionScheds hold the tenant limits of session-mode warehouses
	// (sessions per tenant, statements per second).
	sessionScheds map[string]*fairq.Scheduler[*pool.Waiter]
	// tenantLimits: each warehouse's statement limits, copied at New
	// (sessions read them; the Warehouse values are the caller's).
	tenantLimits map[string]warehouseLimits
	tenants      map[string]*tenantRegistry // warehouses with a database per tenant
	writeBufs    *sync.Pool                 // client write buffers, borrowed while a client is busy
	readBufs     *sync.Pool                 // client read buffers, likewise (msgreader.go)
	reapers      sync.Once                  // starts the pools' idle reapers at the first Serve
	audit        *AuditLog
	metrics      *metrics
	now          func() time.Time
	realClock    bool // now is time.Now: a client loop may reuse its reading of it
	tlsConfig    *tls.Config
	binding      *embedctx.Binding // nil: embed sessions are not bound (pinned addresses still are)
	learner      *learner          // nil: learned statements are allowed, not recorded
	stats        StatsRecorder     // noStats when Deps.Stats is nil

	mu           sync.Mutex
	listeners    map[net.Listener]struct{}
	conns        map[*clientConn]struct{}
	keys         map[uint32]*clientConn // proxy BackendKeyData pid → client
	serving      bool
	draining     bool
	doneCh       chan struct{} // closed when Shutdown begins
	hardStop     chan struct{} // closed when the drain deadline passes
	shutdownDone chan struct{} // closed when the first Shutdown returns
	shutdownOnce sync.Once
	connWG       sync.WaitGroup
	sessions     atomic.Int64  // client sessions past the startup message
	connSeq      atomic.Uint64 // numbers client connections (connections.go)
}

// New validates cfg and deps and returns a server that is not yet listening.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Stats == nil {
		deps.Stats = noStats{}
	}
	if deps.Logger == nil {
		return nil, errors.New("proxy: Deps.Logger is required")
	}
	if deps.Authenticator == nil {
		return nil, errors.New("proxy: Deps.Authenticator is required")
	}
	if len(deps.Warehouses) == 0 {
		return nil, errors.New("proxy: Deps.Warehouses needs at least one warehouse")
	}
	s := &Server{
		cfg:           cfg,
		log:           deps.Logger,
		auth:          deps.Authenticator,
		warehouses:    make(map[string]*Warehouse, len(deps.Warehouses)),
		upstreams:     make(map[string]Upstream, len(deps.Warehouses)),
		pools:         map[string]*warehousePool{},
		sessionScheds: map[string]*fairq.Scheduler[*pool.Waiter]{},
		tenantLimits:  map[string]warehouseLimits{},
		tenants:       map[string]*tenantRegistry{},
		writeBufs:     newWriteBufPool(),
		readBufs:      newReadBufPool(),
		audit:         deps.Audit,
		now:           deps.Now,
		stats:         deps.Stats,
		listeners:     map[net.Listener]struct{}{},
		conns:         map[*clientConn]struct{}{},
		keys:          map[uint32]*clientConn{},
		doneCh:        make(chan struct{}),
		hardStop:      make(chan struct{}),
		shutdownDone:  make(chan struct{}),
	}
	if s.now == nil {
		s.now, s.realClock = time.Now, true
	}
	s.learner = newLearner(deps.Learned, s.log, s.now)
	for name, w := range deps.Warehouses {
		if w == nil || w.Name != name {
			return nil, fmt.Errorf("proxy: warehouse %q: key and Name differ", name)
		}
		if w.Rewriter() == nil {
			return nil, fmt.Errorf("proxy: warehouse %q: no rewriter", name)
		}
		up := w.Upstream
		if up == nil {
			if w.DSN == "" {
				return nil, fmt.Errorf("proxy: warehouse %q: needs a DSN or an Upstream", name)
			}
			d, err := newDSNUpstream(name, w.DSN, cfg)
			if err != nil {
				return nil, fmt.Errorf("proxy: %w", err)
			}
			up = d
		}
		s.warehouses[name] = w
		s.upstreams[name] = pinnedUpstream{warehouse: name, up: up}
		pc := w.Pool.WithDefaults()
		if err := pc.Validate("warehouses." + name + ".pool"); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		w.Pool = pc
		s.tenantLimits[name] = warehouseLimits{statements: w.Statements, acquireTimeout: pc.AcquireTimeout}
	}
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("proxy.tls_cert_file/tls_key_file: %w", err)
		}
		s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	b, err := embedctx.New(cfg.EmbedContext, "proxy.embed_context")
	if err != nil {
		return nil, err
	}
	s.binding = b
	if b.WantsClientCert() {
		// Asked for, not required nor verified here: the embed context
		// check verifies it, so a wrong certificate gets FATAL 28000 and
		// sessions that are not bound do not need one.
		s.tlsConfig.ClientAuth = tls.RequestClientCert
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	s.metrics = m
	if s.loopStats, err = newLoopMetrics(deps.Metrics); err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	for name, w := range s.warehouses {
		if w.Pool.Mode == pool.Transaction {
			s.pools[name] = newWarehousePool(name, s.upstreams[name], w.Pool, cfg.ConnectTimeout, s.log, m, s.stats)
		} else {
			s.sessionScheds[name] = fairq.New[*pool.Waiter](w.Pool.Tenants, nil)
		}
		if w.Tenants != nil {
			r, err := newTenantRegistry(s, w)
			if err != nil {
				return nil, fmt.Errorf("proxy: %w", err)
			}
			s.tenants[name] = r
		}
	}
	return s, nil
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("proxy: server closed")

// ListenAndServe listens on cfg.Listen and serves until ctx is cancelled,
// then drains for at most cfg.ShutdownTimeout.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("proxy: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts clients on ln until ctx is cancelled (then it drains for at
// most cfg.ShutdownTimeout and returns nil) or Shutdown is called (then it
// returns ErrServerClosed at once; Shutdown does the draining).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.serving = true
	s.mu.Unlock()

	s.reapers.Do(func() {
		if s.cfg.EventLoops >= 0 {
			loops, err := newEvLoops(s.cfg.EventLoops, s.cfg.LoopIO != "epoll")
			if err != nil {
				s.log.Warn("no event loop: sessions run on goroutines", zap.Error(err))
			}
			s.countLoops(loops)
			s.loops.Store(loops)
		}
		for _, p := range s.pools {
			go p.Reap(s.doneCh)
		}
		for _, r := range s.tenants {
			go r.reapLoop(s.doneCh)
		}
	})
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		s.Shutdown(sctx)
	})
	defer stop()

	base := context.WithoutCancel(ctx) // sessions end through Shutdown, not ctx
	var tempDelay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.doneCh:
				if ctx.Err() != nil {
					<-s.shutdownDone // the drain started by ctx, bounded by ShutdownTimeout
					return nil
				}
				return ErrServerClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				time.Sleep(tempDelay)
				continue
			}
			return fmt.Errorf("proxy: accept: %w", err)
		}
		tempDelay = 0
		c := s.newClientConn(base, wrapSocket(nc))
		if c == nil {
			// Accepted as the drain began: say so, as PostgreSQL does,
			// rather than close without a word.
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write(shuttingDownMsg)
			nc.Close()
			continue
		}
		go c.serve()
	}
}

// shuttingDownMsg is PostgreSQL's answer to a connection that arrives while
// it shuts down.
var shuttingDownMsg, _ = (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL",
	Code: pgerr.CannotConnectNow, Message: "the database system is shutting down"}).Encode(nil)

// Ready reports whether the server is serving and not draining.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serving && !s.draining
}

// Shutdown stops accepting, lets running statements finish until ctx is done,
// then ends the remaining sessions with FATAL 57P01. Idle sessions end at once.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.shutdownOnce.Do(func() { close(s.shutdownDone) })
	defer func() {
		for _, p := range s.pools {
			p.Close()
		}
		for _, r := range s.tenants {
			r.closeAll()
		}
	}()
	s.mu.Lock()
	if !s.draining {
		s.draining = true
		close(s.doneCh)
		for ln := range s.listeners {
			ln.Close()
		}
	}
	conns := make([]*clientConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.interrupt(reasonShutdown)
	}
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		s.loopsOnce.Do(s.loops.Load().stop)
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	select {
	case <-s.hardStop:
	default:
		close(s.hardStop)
	}
	s.mu.Unlock()
	for _, c := range conns {
		// Again: a loop waiting inline for a statement's answers sees
		// the hard stop only when woken.
		c.interrupt(reasonShutdown)
	}
	// Sessions now send FATAL and close; give them a moment to do so, then
	// cut the sockets of any that are stuck (e.g. on a client not reading).
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.mu.Lock()
		for c := range s.conns {
			c.raw.Close()
		}
		s.mu.Unlock()
	}
	return ctx.Err()
}

// track registers c; it returns false when the server is draining.
func (s *Server) track(c *clientConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return true
}

func (s *Server) untrack(c *clientConn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.keyPID != 0 && s.keys[c.keyPID] == c {
		delete(s.keys, c.keyPID)
	}
	s.mu.Unlock()
	s.connWG.Done()
}

// issueKey gives c a random BackendKeyData (c.keyPID, c.keySecret) that maps
// to it for cancels. The warehouse's own key never reaches the client.
func (s *Server) issueKey(c *clientConn) {
	secret := make([]byte, 4)
	rand.Read(secret)
	var b [4]byte
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		rand.Read(b[:])
		pid := binary.BigEndian.Uint32(b[:]) & 0x7fffffff // positive like a real pid
		if s.cfg.PeerID > 0 {
			pid = uint32(s.cfg.PeerID)<<peerShift | pid&(1<<peerShift-1)
		}
		if pid != 0 && s.keys[pid] == nil {
			c.keyPID, c.keySecret = pid, secret
			s.keys[pid] = c
			return
		}
	}
}

// lookupKey returns the client a CancelRequest names, or nil for a forged key.
func (s *Server) lookupKey(pid uint32, secret []byte) *clientConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.keys[pid]
	if c == nil || subtle.ConstantTimeCompare(c.keySecret, secret) != 1 {
		return nil
	}
	return c
}

// hardStopped reports whether the drain's shutdown_timeout is over.
func (s *Server) hardStopped() bool {
	select {
	case <-s.hardStop:
		return true
	default:
		return false
	}
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}
