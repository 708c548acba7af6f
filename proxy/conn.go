package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/opstats"
	"github.com/pgwarden/pgwarden/pgenc"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// Reasons to interrupt the client loop's blocked read (bit flags).
const (
	reasonRevoked uint32 = 1 << iota
	reasonShutdown
	reasonRelayDone
	reasonClientGone // seen by a drainWatch
)

// clientConn is one client session. The loop goroutine reads client messages
// and writes to the warehouse; the relay goroutine reads the warehouse and is
// the only writer to the client while it runs. The loop writes to the client
// only before the relay starts and after it has stopped.
type clientConn struct {
	srv    *Server
	raw    net.Conn // the TCP connection; deadlines are set here
	nc     net.Conn // raw or its TLS wrapper
	ctx    context.Context
	cancel context.CancelFunc
	log    *zap.Logger
	logFs  []zap.Field // log's fields (logWith)
	tlsOn  bool
	// connID and connectedAt name the connection to operators
	// (connections.go); started is set once the startup fields below
	// are final, so that a snapshot may read them.
	connID      uint64
	connectedAt time.Time
	started     atomic.Bool
	// Startup's, for the login's audit record (loop goroutine only).
	database     string
	authTried    bool
	loginAudited bool

	in    *msgReader
	out   *clientWriter
	codec *codec // the client's encoding (encoding.go)

	// Set during startup, read-only afterwards.
	user      string
	appName   string
	upParams  map[string]string
	session   *auth.Session
	expires   time.Time // the session's expiry, later once renewed (checkSession)
	identity  *policy.Identity
	wh        *Warehouse
	pool      *warehousePool // nil in session mode
	keyPID    uint32
	keySecret []byte
	counted   bool
	stopWatch func()
	// rls is the session's pass-through row security (rowsecurity.go),
	// nil when the warehouse's policy has none; the loop recomputes it
	// under mu after a policy reload.
	rls *rowSecurity
	// tdb is the tenant's own database, for a warehouse with a database
	// per tenant (tenantdb.go); wh is then tdb's.
	tdb *tenantDB

	imu     sync.Mutex
	reasons uint32 // pending interrupts, guarded by imu
	// interruptSet is reasons != 0, for receive to look without imu.
	interruptSet atomic.Bool
	// rdl is the read deadline armRead last set on raw, while rdlSet
	// (guarded by imu): whoever else sets one clears rdlSet, and so does
	// a read that timed out, so that armRead sets it again.
	rdl    time.Time
	rdlSet bool
	// draining is the connection the loop relays inline (see inline.go)
	// while it waits for answers, guarded by imu: interrupt wakes it too.
	draining *pool.Backend
	dw       *drainWatch // the loop's

	revoked    atomic.Bool
	lastActive atomic.Int64 // unix nanos of the last client message or ReadyForQuery
	q          *pendingQueue

	relayDone chan struct{}
	relayErr  error // written by the relay before relayDone closes
	sawFatal  atomic.Bool
	replays   atomic.Int32 // settings replays queued and not yet answered

	// Binding (see bind.go). mu guards cur and stopping; the loop holds it
	// while it binds and queues, the relay takes it to release.
	mu       sync.Mutex
	cur      *pool.Backend
	stopping bool
	inline   bool // the loop relays cur itself, not the relay goroutine (see inline.go)
	// hit is the room of the session's simple queries' rewrites
	// (reusableHit), made at the first; the message loop's alone.
	hit *hitScratch
	// co is the session's coroutine while it runs on an event loop
	// (evloop_linux.go), nil off it; loopCo is it on or off the loop. The
	// session's message loop alone uses them.
	co, loopCo *coro
	// rousedBy is the last context whose end rouses the session parked in
	// a pool wait (loopParker.rouseOnDone); the message loop's alone.
	rousedBy context.Context
	bindCh   chan *pool.Backend // hands the relay each newly bound connection
	// relayStarted: the relay goroutine runs. It is started at the first
	// hand-over (toRelayLocked), so that a client whose transactions are
	// all relayed inline, or that sits idle, has one goroutine, not two.
	relayStarted bool
	stopCh       chan struct{}
	// cmu guards cancelTo, the connection a CancelRequest goes to; held
	// while a cancel is sent so the connection cannot change hands meanwhile.
	// While the client waits for a pooled connection instead (acquiring),
	// a CancelRequest ends the wait through waitCtx.
	cmu        sync.Mutex
	cancelTo   *pool.Backend
	acquiring  bool
	waitCtx    context.Context
	waitCancel context.CancelCauseFunc
	// rewriting stops the long statement the loop rewrites, if any
	// (rewritectx.go); CancelRequests and revocation go to it first.
	rewriting rewriteGuard

	// The tenant's limits (tenantlimits.go): set at startup; guard is the
	// relay's alone; sessionSlot: the session holds one of its tenant's
	// connections in session mode (given back at close).
	limits      sessionLimits
	guard       resultGuard
	sessionSlot bool
	unthrottled bool // the tenant has no statements-per-second limit (loop only)

	// Transaction mode settings: written by the relay while it holds a
	// connection, read by the loop when binding (after the release).
	baseSettings []string // SETs for the client's startup parameters
	settings     []setOp  // committed SETs, in order
	settingsSQL  string   // what applySettings replays
	txOps        []setOp  // SETs of the transaction in progress
	txFailed     bool
	opsSeen      bool // a setting changed on the held connection
	// txStatus is the last ReadyForQuery's (any mode), atomic for the loop,
	// which reads it once the queue is empty (mayProbe).
	txStatus atomic.Uint32
	// shuttingDown is set by the loop once the server drains (receive).
	shuttingDown bool
	// A statement re-rewritten after a reload changed its result shape:
	// its BindComplete becomes 0A000 and the rest of the batch is dropped.
	shapeChanged bool
	shapeSkip    bool
	// shapeFailed: the batch got that 0A000; in a transaction block the
	// warehouse's transaction is made to fail too (failTransaction).
	shapeFailed bool

	// Set by the loop under mu: the client called set_config (its settings
	// are read back from the connection before release), or declared a
	// cursor WITH HOLD (it keeps its connection).
	configDirty bool
	pinned      bool

	// Set by the relay (under mu) when the held connection died: the loop
	// skips the rest of the client's batch, or fails its next message.
	// lost is either of them (lossChangedLocked), for the loop to look
	// without taking mu for every message.
	skipToSync bool
	failNext   bool
	lost       atomic.Bool

	// Loop state. msgAt is when the message in hand arrived: its
	// statement's start, read once for all that handling it needs, and
	// once for the messages of a batch that arrived together and were
	// handled without delay (clockStale says when one was delayed: a
	// wait for a connection or a statement token, a rewrite, a drain).
	msgAt      time.Time
	clockStale bool
	// sendBind, sendPortal (a Describe of the portal) and sendExec are
	// the loop's own outgoing messages, reused: pool.Conn.Send encodes a
	// message before it returns.
	sendBind        pgproto3.Bind
	sendPortal      pgproto3.Describe
	sendExec        pgproto3.Execute
	ignoreUntilSync bool
	names           stmtNames    // the names of the texts the client prepared last, and of simple statements run prepared (bind.go)
	slab            *pendingSlab // the records the loop queues, in transaction mode (pendings.go)
	stmts           map[string]*clientStmt
	portals         map[string]portal
	// spareStmt is where a Parse's rewrite goes: it becomes the new
	// statement, or stays for the next Parse when this one repeated the
	// unnamed statement.
	spareStmt *parsedStmt
}

// portal is a client's bound portal: its statement and the result formats
// its Bind asked for (which a client in another encoding needs converted).
type portal struct {
	st      *clientStmt
	formats []int16
}

// stmtInfo is what the audit log needs about a statement.
type stmtInfo struct {
	fingerprint string
	original    string
	rewritten   string
	writes      []string // relations the statement writes, for the audit log
}

func (s *Server) newClientConn(base context.Context, nc net.Conn) *clientConn {
	ctx, cancel := context.WithCancel(base)
	c := &clientConn{
		srv:     s,
		raw:     nc,
		nc:      nc,
		ctx:     ctx,
		cancel:  cancel,
		q:       newPendingQueue(),
		stmts:   map[string]*clientStmt{},
		portals: map[string]portal{},
		codec:   newCodec(pgenc.UTF8),
		bindCh:  make(chan *pool.Backend, 1),
		stopCh:  make(chan struct{}),

		connID:      s.connSeq.Add(1),
		connectedAt: s.now(),
	}
	c.txStatus.Store('I')
	c.logWith(zap.String("remote", nc.RemoteAddr().String()))
	if !s.track(c) {
		cancel()
		return nil
	}
	s.metrics.connsTotal.Inc()
	s.metrics.connsCurrent.Inc()
	return c
}

// initIO sets up buffered protocol I/O once TLS has been settled.
func (c *clientConn) initIO() {
	c.out = &clientWriter{dst: c.nc, bufs: c.srv.writeBufs, bytes: c.srv.metrics.bytesToClient, enc: &c.codec.out}
	c.in = newMsgReader(c.nc, c.srv.readBufs, c.flushBeforeRead, c.countRead)
	c.in.maxBodyLen = authBodySize
}

func (c *clientConn) serve() {
	onLoop := false
	defer func() {
		if !onLoop {
			c.close()
		}
	}()
	if err := c.startupAside(); err != nil {
		var q errQuiet
		if errors.As(err, &q) {
			c.log.Debug("connection closed during startup", zap.String("reason", q.why))
			return
		}
		if c.authTried && !c.loginAudited {
			c.srv.audit.recordLogin(c, c.database, err)
		}
		c.sendFatal(err)
		return
	}
	c.srv.audit.recordLogin(c, c.database, nil)
	c.started.Store(true)
	c.touch()
	c.relayDone = make(chan struct{})
	if c.pool != nil {
		c.dw = newDrainWatch(c)
	}
	if c.cur != nil {
		c.mu.Lock()
		c.toRelayLocked(c.cur)
		c.mu.Unlock()
	}
	if l := c.loopFor(); l != nil {
		// The rest on an event loop (evloop_linux.go), which closes.
		onLoop = true
		l.start(c.runOn)
		return
	}
	c.messages()
}

// messages reads and dispatches the client's messages until the session
// ends.
func (c *clientConn) messages() {
	var readsSeen uint64
	for {
		msg, err := c.receive()
		if err != nil {
			c.finish(err)
			return
		}
		if c.in.reads != readsSeen || c.clockStale {
			c.msgAt = c.now()
			c.lastActive.Store(c.msgAt.UnixNano())
			readsSeen, c.clockStale = c.in.reads, false
		}
		if err := c.dispatch(msg); err != nil {
			c.finish(err)
			return
		}
		switch msg.(type) {
		case *pgproto3.Bind, *pgproto3.Describe, *pgproto3.Execute, *pgproto3.Close:
			// Quick unless they waited (which says so): the next message
			// read with this one arrived with it, and starts now too.
		default:
			c.clockStale = true // a rewrite, or answers relayed
		}
	}
}

// startupAside runs startup on a goroutine of its own: token checks and
// the warehouse connect grow a stack to several times what the loop needs
// while it waits for a client, and a stack only shrinks at a garbage
// collection, one halving at a time; this one's goes with its goroutine,
// so that the loop of a client that has not run anything yet parks on a
// small one.
func (c *clientConn) startupAside() error {
	done := make(chan error, 1)
	go func() { done <- c.startup() }()
	return <-done
}

// toRelayLocked hands b to the relay goroutine, starting it the first
// time. c.mu is held.
func (c *clientConn) toRelayLocked(b *pool.Backend) {
	c.leaveLoop("relay") // the relay goroutine reads b and writes the client
	if !c.relayStarted {
		c.relayStarted = true
		go c.relay()
	}
	c.bindCh <- b
}

var errTerminate = errors.New("client terminated the session")

func (c *clientConn) dispatch(msg pgproto3.FrontendMessage) error {
	// Checked on every message, not only on new SQL: a prepared statement
	// must not keep running under an expired session.
	if _, bye := msg.(*pgproto3.Terminate); !bye {
		if err := c.checkSession(); err != nil {
			return err
		}
	}
	if c.pool != nil && c.lost.Load() {
		if err, done := c.afterLoss(msg); done {
			return err
		}
	}
	if c.ignoreUntilSync {
		switch msg.(type) {
		case *pgproto3.Sync, *pgproto3.Terminate:
		default:
			return nil
		}
	}
	if err := c.fromClient(msg); err != nil {
		return c.refuseMessage(msg, err)
	}
	switch msg.(type) {
	case *pgproto3.Query, *pgproto3.Execute:
		if err := c.throttle(); err != nil {
			return c.refuseMessage(msg, err)
		}
	}
	switch m := msg.(type) {
	case *pgproto3.Query:
		if err := c.handleQuery(m); err != nil {
			return err
		}
		return c.drain()
	case *pgproto3.Parse:
		return c.handleParse(m)
	case *pgproto3.Bind:
		return c.handleBind(m)
	case *pgproto3.Describe:
		return c.handleDescribe(m)
	case *pgproto3.Execute:
		return c.handleExecute(m)
	case *pgproto3.Close:
		return c.handleClose(m)
	case *pgproto3.Sync:
		if err := c.handleSync(m); err != nil {
			return err
		}
		return c.drain()
	case *pgproto3.Flush:
		return c.handleFlush(m)
	case *pgproto3.FunctionCall:
		return c.handleFunctionCall()
	case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
		// As PostgreSQL does: leftovers of a COPY that failed to start
		// (statements that would start one are refused by the rewriter).
		return nil
	case *pgproto3.Terminate:
		return errTerminate
	default:
		return pgerr.Fatalf(pgerr.ProtocolViolation, "invalid frontend message type %q", msgType(msg))
	}
}

// afterLoss applies what the relay decided when the held connection died.
func (c *clientConn) afterLoss(msg pgproto3.FrontendMessage) (error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.skipToSync {
		c.skipToSync = false
		c.ignoreUntilSync = true
	}
	c.lossChangedLocked()
	if !c.failNext {
		return nil, false
	}
	switch msg.(type) {
	case *pgproto3.Sync, *pgproto3.Flush, *pgproto3.Terminate:
		return nil, false
	}
	c.failNext = false
	c.lossChangedLocked()
	_, isQuery := msg.(*pgproto3.Query)
	return c.writeUnbound(c.errorResponse(errWarehouseLost(c.wh.Name), false), isQuery), true
}

// lossChangedLocked publishes skipToSync and failNext to lost after a
// change of either. c.mu is held.
func (c *clientConn) lossChangedLocked() { c.lost.Store(c.skipToSync || c.failNext) }

// msgType is a message's type byte, for protocol errors.
func msgType(msg pgproto3.FrontendMessage) string {
	if b, err := msg.Encode(nil); err == nil && len(b) > 0 {
		return string(b[:1])
	}
	return "?"
}

// refusedMarker is sent to the warehouse in place of a refused statement: it
// fails with a syntax error at Parse time, so that the warehouse enters error
// recovery and reports its transaction status exactly as it would for a
// failing statement, and the relay swaps in the refusal at the right place.
const refusedMarker = "pgwarden_refused_statement"

func (c *clientConn) handleQuery(m *pgproto3.Query) error {
	var room *rewrittenInfo
	var hit *rewrite.HitBuf
	if hs := c.reusableHit(); hs != nil {
		room, hit = &hs.info, &hs.buf
	}
	res, err := c.rewriteAs(m.String, false, nil, room, hit)
	if err == nil {
		err = c.checkPooled(res.result)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.newPendingLocked(pQuery)
	if err != nil {
		p.refusal = c.refuse(m.String, err, p.start)
		return c.refuseLocked(p)
	}
	p.info = res.stmtInfo
	p.ops = res.ops
	p.saves = res.saves
	if e := lastEncoding(res.encs); e != nil {
		p.encs = res.encs
		c.codec.in.Store(e)
	}
	sql := res.rewritten
	if clearsStatements(res.result) {
		clear(c.stmts)
	} else if st := c.deallocatedStmt(res); st != nil {
		// DEALLOCATE of a protocol-level statement (psycopg 3 evicts its
		// cache so): the client's name goes, and upstream the statement
		// under its proxy name (prepared first if this connection lacks
		// it, so that the answer is PostgreSQL's). Other client names
		// sharing it are prepared again when next bound.
		delete(c.stmts, deallocateName(sql))
		b, err := c.bindLocked()
		if err != nil {
			return c.answerUnbound(err, true)
		}
		if err := c.ensurePrepared(b, st); err != nil {
			return err
		}
		b.UnmarkPrepared(st.name, true)
		sql = "DEALLOCATE " + st.name
	}
	setsConfig := callsSetConfig(sql)
	if c.pool != nil && (setsConfig || declaresHold(res.result)) {
		b, err := c.bindLocked()
		if err != nil {
			return c.answerUnbound(err, true)
		}
		if setsConfig {
			b.SettingsUnknown, c.configDirty = true, true
		}
		if declaresHold(res.result) {
			// A cursor WITH HOLD outlives the transaction: the client
			// keeps this connection from now on, as in session mode.
			c.pinned = true
		}
	}
	if pr := res.result.Prepared; pr != nil && !c.wh.Pool.PlainSimpleQueries && sql == res.rewritten && len(p.ops) == 0 && !setsConfig {
		if sent, err := c.queryPreparedLocked(pr, p); sent || err != nil {
			return err
		}
	}
	return c.sendLocked(&pgproto3.Query{String: sql}, p)
}

// deallocatedStmt is the client's protocol-level statement that res, a lone
// DEALLOCATE, names; nil for anything else.
func (c *clientConn) deallocatedStmt(res *rewritten) *clientStmt {
	if len(res.result.Statements) != 1 || res.result.Statements[0].Kind != rewrite.KindDeallocate {
		return nil
	}
	return c.stmts[deallocateName(res.rewritten)]
}

func (c *clientConn) handleParse(m *pgproto3.Parse) error {
	// The rewrite goes into a spare statement, which becomes the new one
	// unless this Parse repeats the unnamed statement (reparsedLocked).
	if c.spareStmt == nil {
		c.spareStmt = new(parsedStmt)
	}
	ps := c.spareStmt
	res, err := c.rewriteAs(m.Query, true, m.ParameterOIDs, &ps.rewrittenInfo, nil)
	if err == nil && res.multi {
		err = pgerr.New(pgerr.SyntaxError, "cannot insert multiple commands into a prepared statement")
	}
	if err == nil {
		err = c.checkPooled(res.result)
	}
	if err == nil {
		err = checkParamTypes(m.ParameterOIDs)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.newPendingLocked(pParse)
	if err == nil && m.Name != "" && c.stmts[m.Name] != nil && !c.stmts[m.Name].failed.Load() {
		c.ignoreUntilSync = true
		p.refusal = c.errorResponse(pgerr.New(pgerr.DuplicatePreparedStatement, "prepared statement \"%s\" already exists", m.Name), false)
		return c.refuseLocked(p)
	}
	if err != nil {
		p.refusal = c.refuse(m.Query, err, p.start)
		c.ignoreUntilSync = true
		delete(c.stmts, m.Name)
		return c.refuseLocked(p)
	}
	st := c.reparsedLocked(m.Name, res, m.ParameterOIDs)
	if st == nil {
		st = newClientStmt(&ps.st, res, m.ParameterOIDs, &c.names)
		c.spareStmt = nil
	}
	c.stmts[m.Name] = st
	if d := c.cachedDesc(st); d != nil {
		// Prepared and described before on this warehouse: answered here,
		// prepared on a connection when first bound, where its result
		// shape is checked against what the client is told now.
		st.want, st.described = &d.shape, true
		c.out.send(&pgproto3.ParseComplete{})
		return nil
	}
	// Between transactions in transaction mode: the connection bound now
	// has nothing in flight and no transaction, failed or not.
	between := c.pool != nil && c.cur == nil
	b, err := c.bindLocked()
	if err != nil {
		delete(c.stmts, m.Name)
		return c.answerUnbound(err, false)
	}
	p.info, p.stmt = st.info, st
	isNew, err := c.markPreparedLocked(b, st.name)
	if err != nil {
		return err
	}
	if isNew {
		p.prep, p.be = st.name, b
		return c.pushSend(b, &pgproto3.Parse{Name: st.name, Query: st.info.rewritten, ParameterOIDs: st.oids}, p)
	}
	if between {
		// Prepared on this connection already, outside any transaction:
		// PostgreSQL would parse the text again only to say ParseComplete
		// (drivers without a statement cache parse before every execution).
		c.out.send(&pgproto3.ParseComplete{})
		return nil
	}
	// Prepared on this connection already: the same text parsed into the
	// unnamed statement (which the proxy never binds) answers exactly as
	// PostgreSQL would, 25P02 in a failed transaction included.
	return c.pushSend(b, &pgproto3.Parse{Query: st.info.rewritten, ParameterOIDs: st.oids}, p)
}

// reparsedLocked returns the unnamed statement when this Parse (name, its
// rewrite res, the parameter types it declared) repeats it: the same text
// and types, rewritten by the same rewriter to the same cached result, so
// that a driver without a statement cache, which parses before every
// execution, does not cost a statement's allocation each time. It is
// reset to what a new statement starts as. Only between transactions in
// transaction mode: no record of an earlier transaction, which may point
// at it, is looked at again then (pendings.go), and its portals read only
// what the same rewrite makes equal. c.mu is held.
func (c *clientConn) reparsedLocked(name string, res *rewritten, oids []uint32) *clientStmt {
	st := c.stmts[name]
	if name != "" || st == nil || c.pool == nil || c.cur != nil || st.failed.Load() {
		return nil
	}
	if st.rw != res.rw || st.res != res.result || st.info.original != res.original ||
		st.info.rewritten != res.rewritten || !slices.Equal(st.oids, oids) {
		return nil
	}
	if len(res.ops) > 0 || len(res.encs) > 0 || len(res.saves) > 0 {
		return nil // session settings: left to a new statement, as before
	}
	st.shape.Store(nil)
	st.want, st.described = nil, false
	return st
}

// statement returns a client statement ready to bind or describe: it is
// re-rewritten when the warehouse's policy was reloaded since its Parse.
func (c *clientConn) statement(name string, p *pending) (*clientStmt, *pgproto3.ErrorResponse) {
	st := c.stmts[name]
	if st == nil || st.failed.Load() {
		return nil, c.errorResponse(pgerr.New(pgerr.InvalidSQLStatementName, "prepared statement \"%s\" does not exist", name), false)
	}
	rw := c.wh.Rewriter()
	if rw == st.rw {
		return st, nil
	}
	ps := new(parsedStmt)
	res, err := c.rewriteAs(st.info.original, true, st.oids, &ps.rewrittenInfo, nil)
	if err == nil && res.multi {
		err = pgerr.New(pgerr.SyntaxError, "cannot insert multiple commands into a prepared statement")
	}
	if err != nil {
		return nil, c.refuse(st.info.original, err, p.start)
	}
	fresh := newClientStmt(&ps.st, res, st.oids, &c.names)
	if fresh.name == st.name {
		fresh.shape.Store(st.shape.Load())
	} else if fresh.want = st.want; fresh.want == nil {
		fresh.want = st.shape.Load()
	}
	c.stmts[name] = fresh
	return fresh, nil
}

// preparedLocked resolves the client's statement name, binds a warehouse
// connection and makes sure the statement is prepared on it. A nil backend
// means the message has been answered already (refused, or no connection);
// the error is then the loop's.
func (c *clientConn) preparedLocked(name string, p *pending) (*pool.Backend, *clientStmt, error) {
	st, er := c.statement(name, p)
	if er != nil {
		p.refusal = er
		c.ignoreUntilSync = true
		return nil, nil, c.refuseLocked(p)
	}
	b, err := c.bindLocked()
	if err != nil {
		return nil, nil, c.answerUnbound(err, false)
	}
	if err := c.ensurePrepared(b, st); err != nil {
		return nil, nil, err
	}
	return b, st, nil
}

func (c *clientConn) handleBind(m *pgproto3.Bind) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.newPendingLocked(pBind)
	b, st, err := c.preparedLocked(m.PreparedStatement, p)
	if b == nil {
		return err
	}
	c.portals[m.DestinationPortal] = portal{st: st, formats: keptFormats(m.ResultFormatCodes)}
	if st.setsConfig && c.pool != nil {
		b.SettingsUnknown, c.configDirty = true, true
	}
	if st.hold && c.pool != nil {
		c.pinned = true
	}
	c.sendBind = *m
	c.sendBind.PreparedStatement = st.name
	return c.pushSend(b, &c.sendBind, p)
}

// Result formats as most Binds give them, shared by the portals: never
// written to.
var (
	oneTextFormat   = []int16{0}
	oneBinaryFormat = []int16{1}
)

// keptFormats returns a Bind's result formats for its portal to keep: the
// message's slice is the reader's, reused at the next Bind.
func keptFormats(codes []int16) []int16 {
	switch {
	case len(codes) == 0:
		return nil
	case len(codes) == 1 && codes[0] == 0:
		return oneTextFormat
	case len(codes) == 1 && codes[0] == 1:
		return oneBinaryFormat
	}
	return append([]int16(nil), codes...)
}

func (c *clientConn) handleDescribe(m *pgproto3.Describe) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.newPendingLocked(pDescribe)
	if m.ObjectType != 'S' {
		return c.sendLocked(m, p)
	}
	if st := c.stmts[m.Name]; st != nil && !st.failed.Load() && st.rw == c.wh.Rewriter() {
		if d := c.cachedDesc(st); d != nil && (st.want == nil || *st.want == d.shape) {
			if st.shape.Load() == nil && st.want == nil {
				st.want, st.described = &d.shape, true
			}
			c.out.send(d.params)
			c.out.send(d.result)
			return nil
		}
	}
	b, st, err := c.preparedLocked(m.Name, p)
	if b == nil {
		return err
	}
	p.stmt = st
	return c.pushSend(b, &pgproto3.Describe{ObjectType: 'S', Name: st.name}, p)
}

func (c *clientConn) handleExecute(m *pgproto3.Execute) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.newPendingLocked(pExecute)
	if pt, ok := c.portals[m.Portal]; ok {
		p.info, p.op, p.formats = pt.st.info, pt.st.op, pt.formats
		if pt.st.enc != nil {
			p.encs = []*pgenc.Encoding{pt.st.enc}
			c.codec.in.Store(pt.st.enc)
		}
		if pt.st.save.op != rewrite.NoSavepoint {
			p.saves = []savepointStep{pt.st.save}
		}
	}
	return c.sendLocked(m, p)
}

func (c *clientConn) handleClose(m *pgproto3.Close) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.newPendingLocked(pClose)
	if m.ObjectType != 'S' {
		delete(c.portals, m.Name)
		return c.sendLocked(m, p)
	}
	// The statement stays prepared upstream under its proxy name (other
	// clients may share it); the client's name is gone.
	delete(c.stmts, m.Name)
	if c.cur == nil && c.pool != nil {
		return c.writeDirect(&pgproto3.CloseComplete{})
	}
	return c.sendLocked(&pgproto3.Close{ObjectType: 'S'}, p)
}

func (c *clientConn) handleSync(m *pgproto3.Sync) error {
	c.ignoreUntilSync = false
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil && c.pool != nil {
		return c.writeDirect(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	if err := c.sendLocked(m, c.newPendingLocked(pSync)); err != nil {
		return err
	}
	if c.cur == nil {
		return nil
	}
	return c.cur.Conn().Flush()
}

func (c *clientConn) handleFlush(m *pgproto3.Flush) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return c.writeDirect()
	}
	c.handOffLocked() // answers are due before the Sync
	if err := c.cur.Conn().Send(m); err != nil {
		return connLost(c.wh.Name)
	}
	return c.cur.Conn().Flush()
}

// handleFunctionCall refuses the fast-path function call: it calls any
// function by OID, past the rewriter.
func (c *clientConn) handleFunctionCall() error {
	refusal := c.refuse("", pgerr.Denied("function call messages are not allowed").WithHint("call the function in a SELECT"), c.msgAt)
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.newPendingLocked(pQuery)
	p.refusal = refusal
	return c.refuseLocked(p)
}

// cachedDesc returns the pool's Describe answer for st when the client may
// be answered without a connection: in transaction mode, between
// transactions. c.mu is held.
func (c *clientConn) cachedDesc(st *clientStmt) *stmtDesc {
	if c.pool == nil || c.cur != nil || st.want != nil && !st.described {
		return nil // re-rewritten after a reload: checked upstream
	}
	return c.pool.desc(st.name)
}

// rewritten is a statement that passed the rewriter.
type rewritten struct {
	*stmtInfo
	multi  bool
	rw     Rewriter
	result *rewrite.Result
	ops    []*setOp
	// encs: the client encoding each statement switches to, or nil;
	// saves: what each does to a savepoint, or nil (encoding.go).
	encs  []*pgenc.Encoding
	saves []savepointStep
}

// reusableHit returns the session's room for a simple query's rewrite
// (a template hit's result, HitRewriter, and rewriteAs's own) when nothing
// can read what the last one left there: no answer is owed, so every
// statement before has been accounted for (statementDone, its audit record
// written), and no relay goroutine holds a connection, which would account
// for one meanwhile. Otherwise nil: the rewrite's are new, as before.
func (c *clientConn) reusableHit() *hitScratch {
	c.mu.Lock()
	ok := c.q.empty() && (c.cur == nil || c.inline)
	c.mu.Unlock()
	if !ok {
		return nil
	}
	if c.hit == nil {
		c.hit = new(hitScratch)
	}
	return c.hit
}

// hitScratch is a session's room for its last simple query's rewrite: the
// result when its template answered it, and what rewriteAs makes of it.
type hitScratch struct {
	buf  rewrite.HitBuf
	info rewrittenInfo
}

// rewriteAs rewrites sql; for a Parse, oids are the parameter types the
// client declared there (possibly none). What it returns is made in room
// (new when nil). With reusableHit's room and hit, the result may be in
// hit, and all of it lives only until the session's next statement.
func (c *clientConn) rewriteAs(sql string, parse bool, oids []uint32, room *rewrittenInfo, hit *rewrite.HitBuf) (*rewritten, error) {
	rw := c.wh.Rewriter()
	if rw == nil {
		return nil, errors.New("warehouse has no rewriter")
	}
	var res *rewrite.Result
	var err error
	c.leaveLoopFor(sql)
	ctx, done := c.rewriteContext(sql)
	if prw, ok := rw.(ParamRewriter); ok && parse {
		res, err = prw.RewriteParams(ctx, sql, c.identity, oids)
	} else if hrw, ok := rw.(HitRewriter); ok && hit != nil && !parse {
		res, err = hrw.RewriteInto(ctx, sql, c.identity, hit)
	} else {
		res, err = rw.Rewrite(ctx, sql, c.identity)
	}
	done()
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, errors.New("rewriter returned no result")
	}
	if len(res.Learned) > 0 {
		c.srv.learner.learn(c.ctx, c.wh.Name, c.session, res.Learned)
	}
	// SET statement_timeout needs no check here: the rewriter caps it at the
	// proxy's statement timeout, which is also the upstream session's startup
	// value, so RESET returns to it.
	if err := c.checkTimeoutSet(res); err != nil {
		return nil, err
	}
	out, encs, err := c.localEncoding(res)
	if err != nil {
		return nil, err
	}
	// One allocation for both: a statement's stmtInfo lives as long as
	// its rewritten, or longer (a prepared statement's) by a few words.
	both := room
	if both == nil {
		both = new(rewrittenInfo)
	}
	both.info = stmtInfo{fingerprint: res.Fingerprint, original: sql, rewritten: out, writes: res.Writes()}
	both.rw = rewritten{
		stmtInfo: &both.info,
		encs:     encs,
		saves:    savepointSteps(res),
		multi:    len(res.Statements) > 1,
		rw:       rw,
		result:   res,
		ops:      c.setOps(res),
	}
	return &both.rw, nil
}

// rewrittenInfo is a rewritten and its stmtInfo in one.
type rewrittenInfo struct {
	rw   rewritten
	info stmtInfo
}

// parsedStmt is a Parse's rewrite and the client statement made of it in
// one allocation: the statement holds its stmtInfo, and with it all of
// its rewrittenInfo, for as long as it lives anyway.
type parsedStmt struct {
	rewrittenInfo
	st clientStmt
}

// refuse records a refused statement and returns the ErrorResponse the relay
// will send in place of the warehouse's answer to the marker.
func (c *clientConn) refuse(sql string, err error, start time.Time) *pgproto3.ErrorResponse {
	er := c.errorResponse(err, false)
	c.srv.metrics.statement("refused", string(c.session.Kind))
	c.srv.stats.Statement(c.session.Tenant, opstats.Refused, er.Code, time.Since(start))
	if ce := c.log.Check(zap.InfoLevel, "statement refused"); ce != nil {
		ce.Write(zap.String("sqlstate", er.Code))
	}
	c.srv.audit.record(c, &stmtInfo{original: sql}, "refused", er.Code, 0, start)
	return er
}

// checkSession fails a revoked or expired session.
func (c *clientConn) checkSession() error {
	if c.revoked.Load() {
		return errRevoked()
	}
	now := c.msgAt
	if !c.srv.realClock || now.IsZero() {
		now = c.srv.now()
	}
	if !now.Before(c.expires) && !c.renewed(now) {
		return pgerr.Fatalf(pgerr.InvalidAuthorization, "session expired: renew it or mint a new ticket")
	}
	return nil
}

// renewed asks the authenticator, once the session's known expiry has
// passed, whether it was renewed since, and moves the expiry if so. Any
// doubt (the store unavailable) ends the session as expired.
func (c *clientConn) renewed(now time.Time) bool {
	r, ok := c.srv.auth.(Renewer)
	if !ok {
		return false
	}
	c.leaveLoop("session_store") // the session store may take its time
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.ConnectTimeout)
	defer cancel()
	exp, err := r.SessionExpiry(ctx, c.session.ID)
	if err != nil {
		c.log.Info("session past its expiry, not renewed", zap.Error(err))
		return false
	}
	if !now.Before(exp) {
		return false
	}
	c.expires = exp
	return true
}

func errRevoked() *pgerr.Error {
	return pgerr.Fatalf(pgerr.InvalidAuthorization, "session revoked: the session token is no longer valid")
}

func connLost(warehouse string) error {
	return pgerr.Fatalf(pgerr.ConnectionFailure, "terminating connection because the connection to warehouse %s was lost", warehouse)
}

// watch interrupts the loop when the session is revoked: by a callback
// where the authenticator offers one (no goroutine per idle session), by a
// goroutine waiting on its channel otherwise.
func (c *clientConn) watch() {
	onRevoke := func() {
		c.revoked.Store(true)
		c.interrupt(reasonRevoked)
	}
	if wf, ok := c.srv.auth.(RevocationCallbacks); ok {
		c.stopWatch = wf.WatchFunc(c.session.ID, onRevoke)
		return
	}
	revoked, stop := c.srv.auth.Watch(c.session.ID)
	c.stopWatch = stop
	go func() {
		select {
		case <-revoked:
			onRevoke()
		case <-c.ctx.Done():
		}
	}()
}

// interrupt wakes the loop from a blocked client read. The flag is set under
// imu before the deadline so that armRead cannot overwrite the wake-up unseen.
func (c *clientConn) interrupt(reason uint32) {
	c.imu.Lock()
	c.reasons |= reason
	c.interruptSet.Store(true)
	c.raw.SetReadDeadline(time.Unix(1, 0))
	c.rdlSet = false
	if reason&reasonRevoked != 0 {
		c.rewriting.stop(errRevoked()) // its statement must not run
		c.cmu.Lock()
		if c.acquiring {
			c.waitCancel(errRevokedWait) // its statement must not run
		}
		c.cmu.Unlock()
	}
	if c.draining != nil {
		c.draining.SetReadDeadline(time.Unix(1, 0))
		if reason&(reasonRevoked|reasonClientGone) != 0 {
			// The loop may be blocked writing to a client that does not
			// read: a revoked session is cut off, not waited for.
			c.raw.SetWriteDeadline(time.Unix(1, 0))
		}
	}
	c.imu.Unlock()
}

// armRead sets the read deadline unless an interrupt is pending, which it
// returns (and clears) instead. A deadline already set and no later than
// deadline stays: setting one costs a timer update in the runtime on every
// read, and the one set times out early at worst, when receive looks at
// the clock and arms the later one.
func (c *clientConn) armRead(deadline time.Time) uint32 {
	c.imu.Lock()
	defer c.imu.Unlock()
	if r := c.reasons; r != 0 {
		c.reasons = 0
		c.interruptSet.Store(false)
		return r
	}
	if c.rdlSet && (c.rdl.IsZero() && deadline.IsZero() || !c.rdl.IsZero() && !deadline.Before(c.rdl) && !deadline.IsZero()) {
		return 0
	}
	c.raw.SetReadDeadline(deadline)
	c.rdl, c.rdlSet = deadline, true
	return 0
}

func (c *clientConn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// drainGrace: once the server drains (SIGTERM), a session ends with 57P01 when
// it has been idle outside a transaction this long; a transaction in
// progress runs on until shutdown_timeout. A client that has just connected
// (pgbench -C, a BI tool's short-lived connection) thus gets its statement
// answered rather than a FATAL before it could send it, and a rolling
// restart behind a load balancer fails no transaction that had begun.
const drainGrace = time.Second

// earliest is the earlier of two read deadlines, the zero one meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// receive returns the next client message, handling interrupts and the idle
// timeout while it waits.
func (c *clientConn) receive() (pgproto3.FrontendMessage, error) {
	if c.in.ready() && !c.shuttingDown && !c.interruptSet.Load() {
		// The rest of a batch: no read, so no deadline to arm (and no
		// interrupt pending to see first).
		msg, err := c.in.receive()
		if err != nil {
			return nil, c.readError(err)
		}
		return msg, nil
	}
	idle := c.srv.cfg.IdleTimeout
	for {
		var deadline time.Time
		if idle > 0 {
			if c.q.empty() {
				deadline = time.Unix(0, c.lastActive.Load()).Add(idle)
			} else if !c.msgAt.IsZero() {
				// Answers are owed, so this deadline only looks again:
				// from the last message, without reading the clock.
				deadline = c.msgAt.Add(idle)
			} else {
				deadline = time.Now().Add(idle)
			}
		}
		if c.shuttingDown {
			if c.q.empty() && c.txStatus.Load() == 'I' {
				last := time.Unix(0, c.lastActive.Load())
				if time.Since(last) >= drainGrace {
					return nil, pgerr.Shutdown()
				}
				deadline = earliest(deadline, last.Add(drainGrace))
			} else {
				deadline = earliest(deadline, time.Now().Add(drainGrace)) // look again
			}
		}
		c.rejoinLoop()
		if r := c.armRead(deadline); r != 0 {
			if r == reasonShutdown && !c.srv.hardStopped() {
				// The server drains: serve on until the session is idle
				// outside a transaction (see drainGrace).
				c.shuttingDown = true
				continue
			}
			return nil, c.interrupted(r)
		}
		err := c.awaitClient()
		if err == nil {
			var msg pgproto3.FrontendMessage
			if msg, err = c.in.receive(); err == nil {
				return msg, nil
			}
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return nil, c.readError(err)
		}
		// The deadline passed: an interrupt (seen by armRead next time round)
		// or perhaps the idle timeout.
		c.imu.Lock()
		c.rdlSet = false
		c.imu.Unlock()
		if idle > 0 && c.q.empty() && time.Since(time.Unix(0, c.lastActive.Load())) >= idle {
			c.imu.Lock()
			pending := c.reasons
			c.imu.Unlock()
			if pending == 0 {
				return nil, pgerr.Fatalf(pgerr.IdleSessionTimeout, "terminating connection due to idle-session timeout")
			}
		}
	}
}

func (c *clientConn) readError(err error) error {
	var tooBig *pgproto3.ExceededMaxBodyLenErr
	switch {
	case errors.As(err, &tooBig):
		return pgerr.Fatalf(pgerr.ProtocolViolation, "message of %d bytes exceeds the limit of %d bytes", tooBig.ActualBodyLen, tooBig.MaxExpectedBodyLen)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return errQuiet{"client disconnected"}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return errQuiet{"client read: " + err.Error()}
	}
	return pgerr.Fatalf(pgerr.ProtocolViolation, "invalid message: %v", err)
}

// interrupted turns pending interrupts into the error that ends the session.
func (c *clientConn) interrupted(r uint32) error {
	switch {
	case r&reasonRelayDone != 0:
		return c.relayEnded()
	case r&reasonRevoked != 0:
		return errRevoked()
	case r&reasonClientGone != 0:
		return errQuiet{"client disconnected"}
	default: // shutdown: let the statements in flight finish first
		c.mu.Lock()
		if c.cur != nil {
			c.cur.Conn().Flush()
		}
		c.mu.Unlock()
		for !c.q.empty() {
			select {
			case <-c.q.idle:
			case <-c.relayDone:
				return c.relayEnded()
			case <-c.srv.hardStop:
				return pgerr.Shutdown()
			}
		}
		return pgerr.Shutdown()
	}
}

// relayEnded explains why the relay stopped; it is called after relayDone.
func (c *clientConn) relayEnded() error {
	<-c.relayDone
	return c.relayFailure(c.relayErr)
}

// relayFailure turns the error that stopped relaying (by the relay or
// inline) into the one that ends the session.
func (c *clientConn) relayFailure(err error) error {
	if c.sawFatal.Load() {
		return errQuiet{"warehouse ended the session"}
	}
	var cw clientWriteError
	if errors.As(err, &cw) {
		return errQuiet{"client write: " + cw.err.Error()}
	}
	var tooBig *pgproto3.ExceededMaxBodyLenErr
	if errors.As(err, &tooBig) {
		return pgerr.Fatalf(pgerr.ProgramLimitExceeded, "result message of %d bytes exceeds the limit of %d bytes", tooBig.ActualBodyLen, tooBig.MaxExpectedBodyLen)
	}
	var pe *pgerr.Error
	if errors.As(err, &pe) {
		return pe
	}
	c.log.Warn("warehouse connection lost", zap.Error(err))
	return connLost(c.wh.Name)
}

// finish ends the session after err: it stops the relay, then (for errors
// that the client should see) sends the FATAL.
func (c *clientConn) finish(err error) {
	c.stopRelay()
	var q errQuiet
	if errors.Is(err, errTerminate) || errors.As(err, &q) {
		if q.why != "" {
			c.log.Debug("session closed", zap.String("reason", q.why))
		}
		return
	}
	c.sendFatal(err)
}

// stopRelay stops the relay and gives back the connection the client
// holds: in session mode it is closed (a statement still running is
// cancelled so it does not run on unobserved); in transaction mode a busy
// one is cancelled and discarded, an idle one rolled back and returned.
func (c *clientConn) stopRelay() {
	if c.relayDone == nil {
		return
	}
	busy := !c.q.empty()
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return
	}
	c.stopping = true
	close(c.stopCh)
	if !c.relayStarted {
		c.relayStarted = true // and never will be
		close(c.relayDone)
	}
	b := c.cur
	closed := false
	if b != nil && (c.pool == nil || busy || !b.SetReadDeadline(time.Unix(1, 0))) {
		b.Conn().Close()
		closed = true
	}
	c.mu.Unlock()
	// A relay blocked writing to a stalled client must not hold us up.
	c.raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
	<-c.relayDone
	c.raw.SetWriteDeadline(time.Time{})
	if b == nil {
		return
	}
	c.cmu.Lock()
	c.cancelTo = nil
	c.cmu.Unlock()
	if busy {
		c.leaveLoop("cancel") // the cancel dials the warehouse
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := b.Conn().Cancel(ctx); err != nil {
			c.log.Debug("cancel on close failed", zap.Error(err))
		}
		cancel()
	}
	if c.pool == nil {
		return
	}
	if closed || c.pinned {
		// A pinned connection may still have the client's WITH HOLD
		// cursors open: it goes with the client.
		c.pool.Release(b, false)
		return
	}
	b.SetReadDeadline(time.Time{})
	c.releaseAtClose(b)
}

// sendFatal writes err as an ErrorResponse (FATAL for our own errors).
func (c *clientConn) sendFatal(err error) {
	if c.out == nil {
		c.initIO()
	}
	er := c.errorResponse(err, true)
	c.log.Info("session ended", zap.String("sqlstate", er.Code), zap.String("reason", er.Message))
	c.raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
	c.out.send(er)
	c.out.flush()
}

func (c *clientConn) close() {
	if c.relayDone != nil {
		c.stopRelay()
	} else if c.cur != nil {
		c.cur.Conn().Close()
	}
	c.nc.Close()
	c.cancel()
	if c.stopWatch != nil {
		c.stopWatch()
	}
	if c.counted {
		c.srv.sessions.Add(-1)
	}
	if c.tdb != nil {
		c.tdb.reg.release(c.tdb)
	}
	if c.sessionSlot {
		c.scheduler().Done(c.session.Tenant)
	}
	c.srv.metrics.connsCurrent.Dec()
	if c.session != nil { // counted as connected at startup
		c.srv.stats.Disconnected(c.session.Tenant)
	}
	c.srv.untrack(c)
}

// flushBeforeRead flushes what the loop has buffered for the warehouse
// before the loop may block reading the client, so that requests are never
// held back.
func (c *clientConn) flushBeforeRead() {
	c.mu.Lock()
	c.putSlabLocked()
	if c.cur != nil {
		if c.inline && c.cur.Conn().(inlineConn).Unflushed() > 0 {
			// A batch without its Sync yet: its answers may be due
			// while the loop waits for the rest.
			c.handOffLocked()
		}
		c.cur.Conn().Flush() // an error here surfaces in the relay's read
	} else if c.pool != nil {
		c.out.flush() // answers given without a connection; an error surfaces at the next write
	}
	c.mu.Unlock()
}

// logWith adds fields to the session's logger. It is rebuilt from the
// server's rather than chained: at its first entry, which every session
// logs ("session started"), zap materializes each level of a chain of
// loggers with an encoder and a 1 KiB buffer of its own, held for the
// session's life.
func (c *clientConn) logWith(fields ...zap.Field) {
	c.logFs = append(c.logFs, fields...)
	c.log = c.srv.log.WithLazy(c.logFs...)
}

func (c *clientConn) countRead(n int) { c.srv.metrics.bytesFromClient.Add(float64(n)) }

// clientWriter buffers messages to the client. Its buffers are borrowed
// from the server's pool at the first message and handed back at each
// flush, so an idle client holds none.
type clientWriter struct {
	dst   io.Writer
	enc   *atomic.Pointer[pgenc.Encoding] // the client's, for the text of messages
	bufs  *sync.Pool                      // of *writeBuf
	wb    *writeBuf
	bytes interface{ Add(float64) }
	n     int
}

type writeBuf struct {
	w       *bufio.Writer
	scratch []byte
}

func newWriteBufPool() *sync.Pool {
	return &sync.Pool{New: func() any { return &writeBuf{w: bufio.NewWriterSize(io.Discard, 32<<10)} }}
}

func (w *clientWriter) send(msg pgproto3.BackendMessage) error {
	if e := w.enc.Load(); e.Converts() {
		msg = encodeMessage(e, msg)
	}
	if w.wb == nil {
		w.wb = w.bufs.Get().(*writeBuf)
		w.wb.w.Reset(w.dst)
	}
	b, err := msg.Encode(w.wb.scratch[:0])
	if err != nil {
		return err
	}
	if cap(b) <= 64<<10 {
		w.wb.scratch = b
	}
	w.n += len(b)
	_, err = w.wb.w.Write(b)
	return err
}

// sendFrame buffers a message the warehouse sent, as it sent it: the
// caller has checked that the client's encoding does not convert it.
func (w *clientWriter) sendFrame(frame []byte) error {
	if w.wb == nil {
		w.wb = w.bufs.Get().(*writeBuf)
		w.wb.w.Reset(w.dst)
	}
	w.n += len(frame)
	_, err := w.wb.w.Write(frame)
	return err
}

func (w *clientWriter) flush() error {
	if w.n > 0 {
		w.bytes.Add(float64(w.n))
		w.n = 0
	}
	if w.wb == nil {
		return nil
	}
	if err := w.wb.w.Flush(); err != nil {
		return err
	}
	w.wb.w.Reset(io.Discard)
	w.bufs.Put(w.wb)
	w.wb = nil
	return nil
}

type clientWriteError struct{ err error }

func (e clientWriteError) Error() string { return "client write: " + e.err.Error() }
func (e clientWriteError) Unwrap() error { return e.err }
