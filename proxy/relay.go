package proxy

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/pgenc"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// pendingKind is a client message the warehouse has yet to answer.
type pendingKind uint8

const (
	pParse pendingKind = iota
	pBind
	pDescribe
	pExecute
	pClose
	pSync
	pQuery // also a refused FunctionCall
)

// pending is one message awaiting the warehouse's answer, in send order.
type pending struct {
	kind  pendingKind
	info  *stmtInfo
	start time.Time
	// refusal replaces the warehouse's error for a refused statement's marker.
	refusal *pgproto3.ErrorResponse
	// For a simple Query: rows so far and the SQLSTATE of an error.
	rows   int64
	failed string
	// Settings changes by statement (Query) or of the portal (Execute).
	ops  []*setOp
	op   *setOp
	done int // statements of a Query completed so far
	// Internal messages are not answered to the client: a Parse preparing
	// a statement on the connection the client landed on (prep names what
	// it prepares on be; stmt is the client statement it creates), a
	// Describe checking a result shape, a Query replaying settings, a Close
	// evicting the statement prep (see markPreparedLocked).
	internal bool
	rls      bool // the internal Query setting the session's row security
	prep     string
	be       *pool.Backend
	stmt     *clientStmt
	// A Describe of a statement: its ParameterDescription, copied, until
	// the row description completes it for the pool's cache.
	params *pgproto3.ParameterDescription
	// auto: part of a Query run as a prepared statement (simpleprep.go),
	// whose BindComplete and NoData are not the client's. probe: the
	// internal Parse probing a prepared form.
	auto  bool
	probe *rewrite.Probe
	// formats: an Execute's result formats (its portal's Bind); encs:
	// the client encoding each statement switches to when it completes,
	// or nil (encoding.go).
	formats []int16
	encs    []*pgenc.Encoding
	// saves: what each statement does to a savepoint, or nil (encoding.go).
	saves []savepointStep
}

// pendingQueue is shared by the loop (push) and the relay (front/pop).
type pendingQueue struct {
	mu    sync.Mutex
	items []*pending
	head  int
	// idle receives a token whenever the queue becomes empty (for draining).
	idle chan struct{}
	// endedAt is the relay's own (not under mu): when it last accounted
	// for a statement (unix nanos), 0 once a ReadyForQuery took it as the
	// session's last activity. The clock is then read once per statement.
	endedAt int64
}

func newPendingQueue() *pendingQueue { return &pendingQueue{idle: make(chan struct{}, 1)} }

func (q *pendingQueue) push(p *pending) {
	q.mu.Lock()
	q.items = append(q.items, p)
	q.mu.Unlock()
}

func (q *pendingQueue) front() *pending {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return nil
	}
	return q.items[q.head]
}

func (q *pendingQueue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.popLocked()
}

// take pops the front and returns it (nil when the queue is empty): front
// and pop under one lock.
func (q *pendingQueue) take() *pending {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return nil
	}
	p := q.items[q.head]
	q.popLocked()
	return p
}

func (q *pendingQueue) popLocked() {
	if q.head == len(q.items) {
		return
	}
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
		select {
		case q.idle <- struct{}{}:
		default:
		}
	}
}

func (q *pendingQueue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.head == len(q.items)
}

// errRelayStopped ends the relay when the loop asked it to stop.
var errRelayStopped = errors.New("relay stopped")

// relay copies warehouse messages to the client one at a time, never holding
// a whole result: it flushes the client whenever it has to wait for the
// warehouse, and the client writer flushes itself when its buffer fills.
// It serves each connection the loop binds until the relay releases it.
func (c *clientConn) relay() {
	defer close(c.relayDone)
	for {
		var b *pool.Backend
		select {
		case b = <-c.bindCh:
		case <-c.stopCh:
			return
		}
		if err := c.relayFrom(b, false); err != nil {
			if c.pool != nil && recoverable(err) {
				if err = c.lose(b, err); err == nil {
					continue
				}
			}
			c.relayErr = err
			if !errors.Is(err, errRelayStopped) {
				// Nobody reads the warehouse now: close it so that a loop
				// blocked writing to it is released too.
				b.Conn().Close()
				c.interrupt(reasonRelayDone)
			}
			return
		}
	}
}

// relayFrom relays b's messages; it returns nil once it has released b or,
// inline (see inline.go), once everything queued has been answered.
//
// Inline, what the proxy answered itself before the warehouse's first
// message (a ParseComplete, a cached Describe) waits for that message and
// goes out in the same write, as PostgreSQL sends its answers to a batch
// together: one write to the client per transaction, not two.
func (c *clientConn) relayFrom(b *pool.Backend, inline bool) error {
	heard := !inline
	fc, _ := b.Conn().(frameConn) // once, not per message
	for {
		if heard && b.Conn().Buffered() == 0 {
			if err := c.out.flush(); err != nil {
				return clientWriteError{err}
			}
		}
		frame, msg, err := c.receiveFrom(b, fc)
		heard = true
		if err != nil && inline {
			if err = c.drainInterrupted(b, err); err == nil {
				continue
			}
		}
		if err != nil {
			c.mu.Lock()
			stopping := c.stopping
			c.mu.Unlock()
			if stopping {
				return errRelayStopped
			}
			return err
		}
		if msg == nil { // a row as the warehouse sent it
			if err := c.out.sendFrame(frame); err != nil {
				return clientWriteError{err}
			}
			continue
		}
		if er, ok := msg.(*pgproto3.ErrorResponse); ok && c.pool != nil && (er.Severity == pgerr.SeverityFatal || er.Severity == "PANIC") {
			// The warehouse is ending this connection (a restart): the
			// session outlives it; lose reports it when the socket closes.
			c.log.Info("warehouse connection terminated", zap.String("sqlstate", er.Code), zap.String("reason", er.Message))
			continue
		}
		if c.guard.on() {
			if msg = c.guardResult(b, msg); msg == nil {
				continue
			}
		}
		out, err := c.observe(b, msg)
		if err != nil {
			return err
		}
		if out == nil {
			continue
		}
		if e := c.codec.out.Load(); e.Converts() {
			out = c.encodeResult(e, out)
		}
		if rfq, ok := out.(*pgproto3.ReadyForQuery); ok && c.shapeFailed {
			c.shapeFailed = false
			if rfq.TxStatus == 'T' {
				out = c.failTransaction(b, rfq)
			}
		}
		if frame != nil && out == msg && verbatim(out) && !c.codec.out.Load().Converts() {
			err = c.out.sendFrame(frame)
		} else {
			err = c.out.send(out)
		}
		if err != nil {
			return clientWriteError{err}
		}
		if rfq, ok := out.(*pgproto3.ReadyForQuery); ok && c.q.empty() {
			b.Settle()
			if rfq.TxStatus == 'I' && c.pool != nil {
				if released, err := c.release(b); released || err != nil {
					return err
				}
			}
			if inline {
				if err := c.out.flush(); err != nil {
					return clientWriteError{err}
				}
				return nil
			}
		}
	}
}

// receiveFrom reads b's next message: frame is its bytes when b gives them
// (fc is b.Conn() as a frameConn, or nil; frames.go), msg the message decoded,
// or nil for a row that goes to the client as the warehouse sent it
// (plainRows), which is not decoded.
func (c *clientConn) receiveFrom(b *pool.Backend, fc frameConn) (frame []byte, msg pgproto3.BackendMessage, err error) {
	if fc == nil {
		msg, err = b.Conn().Receive()
		return nil, msg, err
	}
	if frame, err = fc.ReceiveFrame(); err != nil {
		return nil, nil, err
	}
	if frame[0] == 'D' && c.plainRows() {
		return frame, nil, nil
	}
	msg, err = fc.Decode(frame)
	return frame, msg, err
}

// plainRows reports whether rows go to the client unchanged and unseen: no
// result limit counts them, no encoding converts them, and neither a
// refusal nor a settings replay drops them.
func (c *clientConn) plainRows() bool {
	return !c.guard.on() && !c.shapeSkip && c.replays.Load() == 0 && !c.codec.out.Load().Converts()
}

// verbatim reports whether msg, when the relay passes on the message it
// received, is still as received: an error is sanitized in place.
func verbatim(msg pgproto3.BackendMessage) bool {
	_, isError := msg.(*pgproto3.ErrorResponse)
	return !isError
}

// failTransaction puts the warehouse's transaction into the failed state
// after an error that the proxy made up (a result-shape refusal), so that
// the client's transaction block fails as it would on PostgreSQL: its next
// statements get 25P02 until it rolls back. Only when the client has sent
// nothing since (nothing queued), as the refusal then comes last.
func (c *clientConn) failTransaction(b *pool.Backend, rfq *pgproto3.ReadyForQuery) *pgproto3.ReadyForQuery {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.q.empty() {
		return rfq
	}
	if status, _ := b.RoundTrip(refusedMarker, c.srv.cfg.ConnectTimeout); status != 'E' {
		return rfq // a broken connection shows at the next read
	}
	c.txStatus.Store('E')
	return &pgproto3.ReadyForQuery{TxStatus: 'E'}
}

// captureSettings makes the session's settings on b (SET or set_config,
// source 'session') the client's.
func (c *clientConn) captureSettings(b *pool.Backend) error {
	rows, err := b.Query(c.sessionSettingsQuery(), c.srv.cfg.ConnectTimeout)
	if err != nil {
		return err
	}
	c.settings = c.settings[:0]
	for _, r := range rows {
		c.settings = append(c.settings, setOp{name: r[0], sql: fmt.Sprintf("SET %s TO '%s'", r[0], strings.ReplaceAll(r[1], "'", "''"))})
	}
	c.applyOps(nil)
	b.Settings, b.SettingsUnknown = c.settingsSQL, false
	return nil
}

// recoverable reports whether the relay's error is the warehouse
// connection's, which transaction mode survives, rather than the client's.
func recoverable(err error) bool {
	var cw clientWriteError
	var tooBig *pgproto3.ExceededMaxBodyLenErr
	var pe *pgerr.Error
	return !errors.Is(err, errRelayStopped) && !errors.As(err, &cw) && !errors.As(err, &tooBig) && !errors.As(err, &pe)
}

// lose handles a pooled connection that died while the client held it:
// the connection is discarded, everything the client was owed fails with
// 08006 (ERROR, not FATAL), and the session goes on without a connection;
// its next transaction gets a fresh one. A client in a transaction block
// learns that its transaction is gone from the ReadyForQuery 'I' or, when it
// was owed nothing, from the error its next message gets.
func (c *clientConn) lose(b *pool.Backend, cause error) error {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return errRelayStopped
	}
	c.log.Warn("warehouse connection lost; the session continues", zap.Error(cause))
	c.cur = nil
	c.cmu.Lock()
	c.cancelTo = nil
	c.cmu.Unlock()
	var owed []*pending
	for p := c.q.front(); p != nil; p = c.q.front() {
		owed = append(owed, p)
		c.q.pop()
	}
	trailing := len(owed) > 0 && owed[len(owed)-1].kind != pSync && owed[len(owed)-1].kind != pQuery
	c.skipToSync = trailing
	c.failNext = len(owed) == 0 && c.txStatus.Load() != 'I'
	c.lossChangedLocked()
	c.txOps, c.txFailed, c.opsSeen = c.txOps[:0], false, false
	c.txStatus.Store('I')
	// Still under mu: with nothing bound the loop may write to the client
	// too. The answers are small, so a client that is not reading does not
	// block this for long.
	defer c.mu.Unlock()
	b.Conn().Close()
	c.pool.Release(b, false)

	lost := errWarehouseLost(c.wh.Name)
	if errors.Is(cause, errRowSecuritySetup) {
		lost = pgerr.New(pgerr.InsufficientPrivilege, "could not take on this session's row security role on warehouse %s; the transaction was rolled back", c.wh.Name).
			WithHint("the warehouse's role for this session may have been dropped or revoked from the service account")
	}
	er := c.errorResponse(lost, false)
	failed := false
	for _, p := range owed {
		if p.internal && p.kind == pQuery {
			c.replays.Add(-1)
			continue // a settings replay: not the client's
		}
		if p.internal && p.kind == pSync {
			continue // a probe's
		}
		switch p.kind {
		case pExecute, pQuery:
			if p.refusal == nil {
				c.statementDone(p, "error", er.Code, 0)
			}
		case pParse:
			c.parseFailed(p) // never answered: nothing was prepared
		}
		if !failed {
			c.out.send(er)
			failed = true
		}
		if p.kind == pSync || p.kind == pQuery {
			c.out.send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			failed = false
		}
	}
	if err := c.out.flush(); err != nil {
		return clientWriteError{err}
	}
	return nil
}

func errWarehouseLost(warehouse string) *pgerr.Error {
	return pgerr.New(pgerr.ConnectionFailure, "the connection to warehouse %s was lost; the transaction was rolled back", warehouse).
		WithHint("retry the transaction")
}

// release gives b back to the pool at the end of the client's transaction,
// unless the loop has queued more for it meanwhile.
func (c *clientConn) release(b *pool.Backend) (bool, error) {
	if err := c.out.flush(); err != nil {
		return false, clientWriteError{err}
	}
	c.mu.Lock()
	if !c.q.empty() || c.stopping || c.pinned {
		c.mu.Unlock()
		return false, nil
	}
	if c.configDirty {
		// set_config changed settings the statements do not show: read
		// them back (the loop waits on mu, so nothing interleaves).
		c.configDirty = false
		if err := c.captureSettings(b); err != nil {
			c.mu.Unlock()
			return false, err
		}
	}
	if c.opsSeen {
		b.SettingsUnknown = true
		c.opsSeen = false
	}
	// Before anyone else may have it: the session's role and settings go.
	reuse := resetRowSecurity(b, c.srv.cfg.ConnectTimeout, c.log)
	c.cur = nil
	c.cmu.Lock()
	c.cancelTo = nil
	c.cmu.Unlock()
	c.mu.Unlock()
	c.undrain(b)
	c.pool.Release(b, reuse)
	return true, nil
}

// observe matches msg with the pending queue (for audit, metrics, idle
// tracking and refusals) and returns what to send the client.
func (c *clientConn) observe(b *pool.Backend, msg pgproto3.BackendMessage) (pgproto3.BackendMessage, error) {
	if c.replays.Load() > 0 {
		if p := c.q.front(); p != nil && p.internal && p.kind == pQuery {
			return nil, c.observeReplay(b, msg)
		}
	}
	switch msg.(type) {
	case *pgproto3.ParseComplete, *pgproto3.ErrorResponse: // not on the DataRow path
		if p := c.q.front(); p != nil && p.probe != nil {
			if msg = c.probeAnswered(p, msg); msg == nil {
				return nil, nil
			}
		}
	}
	if c.shapeSkip {
		// After a result-shape refusal: the rest up to ReadyForQuery is
		// tracked but not the client's.
		if _, ok := msg.(*pgproto3.ReadyForQuery); !ok {
			_, err := c.observeMsg(b, msg)
			return nil, err
		}
		c.shapeSkip = false
	}
	return c.observeMsg(b, msg)
}

// observeReplay swallows the answers to a settings replay. A replay that
// fails (the settings were accepted before, so it should not) leaves the
// client's transaction to run with the warehouse's defaults; the
// connection's settings are replayed again at its next lending. A replay
// that changed a pinned setting (it should not: RESET ALL returns to the
// startup packet's) ends the session and the connection.
func (c *clientConn) observeReplay(b *pool.Backend, msg pgproto3.BackendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.ErrorResponse:
		if p := c.q.front(); p != nil && p.rls {
			// The client's statements may have run without the session's
			// role: none of their answers may reach it.
			c.log.Warn("row security setup failed", zap.String("sqlstate", m.Code), zap.String("reason", m.Message))
			return fmt.Errorf("%w: %s %s", errRowSecuritySetup, m.Code, m.Message)
		}
		c.log.Warn("settings replay failed", zap.String("sqlstate", m.Code), zap.String("reason", m.Message))
		b.SettingsUnknown = true
	case *pgproto3.ParameterStatus:
		return checkPinned(m)
	case *pgproto3.ReadyForQuery:
		c.q.pop()
		c.replays.Add(-1)
	}
	return nil
}

// described handles the answers to a Describe: it records the result shape
// a client statement was described with, and checks it for a statement
// re-rewritten after a policy reload (internal Describe, not the client's).
func (c *clientConn) described(msg pgproto3.BackendMessage) pgproto3.BackendMessage {
	p := c.q.front()
	if p == nil || p.kind != pDescribe {
		return msg
	}
	if p.auto {
		c.q.pop()
		if _, ok := msg.(*pgproto3.NoData); ok {
			return nil // a Query without rows says nothing
		}
		return msg
	}
	if pd, ok := msg.(*pgproto3.ParameterDescription); ok {
		if p.stmt != nil && c.pool != nil {
			p.params = &pgproto3.ParameterDescription{ParameterOIDs: append([]uint32(nil), pd.ParameterOIDs...)}
		}
		if p.internal {
			return nil
		}
		return msg
	}
	c.q.pop()
	if p.stmt == nil {
		return msg
	}
	if p.params != nil {
		// The warehouse's answer as of now, whatever the client was told.
		if d, err := newStmtDesc(p.params, msg); err == nil {
			c.pool.putDesc(p.stmt.name, d)
		}
	}
	shape := resultShape(msg)
	if !p.internal {
		p.stmt.shape.Store(&shape)
		return msg
	}
	if p.stmt.want != nil && *p.stmt.want != shape {
		c.shapeChanged = true
	} else {
		p.stmt.shape.Store(&shape)
	}
	return nil
}

func (c *clientConn) observeMsg(b *pool.Backend, msg pgproto3.BackendMessage) (pgproto3.BackendMessage, error) {
	switch m := msg.(type) {
	case *pgproto3.DataRow:
		return m, nil // the hot path
	case *pgproto3.ParseComplete:
		p := c.q.take()
		if p != nil && p.prep != "" {
			p.be.Confirm(p.prep, true)
		}
		if p != nil && p.internal {
			return nil, nil
		}
	case *pgproto3.BindComplete:
		p := c.q.take()
		if p != nil && p.auto {
			return nil, nil
		}
		if c.shapeChanged {
			// The statement re-rewritten after a reload returns other
			// columns than the client cached: fail as PostgreSQL does.
			c.shapeChanged = false
			c.txFailed = true
			c.shapeSkip = true
			c.shapeFailed = true
			return c.errorResponse(pgerr.Unsupported("cached plan must not change result type"), false), nil
		}
	case *pgproto3.CloseComplete:
		p := c.q.take()
		if p != nil && p.internal {
			p.be.Confirm(p.prep, false)
			return nil, nil // an eviction
		}
	case *pgproto3.RowDescription, *pgproto3.NoData, *pgproto3.ParameterDescription:
		return c.described(msg), nil
	case *pgproto3.CommandComplete:
		tag := pgconn.NewCommandTag(string(m.CommandTag))
		p := c.q.front()
		c.noteCompleted(p, tag.String())
		c.completed(b, p, tag, tag.RowsAffected())
	case *pgproto3.EmptyQueryResponse:
		c.completed(b, c.q.front(), pgconn.CommandTag{}, 0)
	case *pgproto3.PortalSuspended:
		c.completed(b, c.q.front(), pgconn.CommandTag{}, -1)
	case *pgproto3.ErrorResponse:
		return c.observeError(m), nil
	case *pgproto3.ReadyForQuery:
		if p := c.q.front(); p != nil && p.kind == pSync && p.internal {
			c.q.pop() // a probe's
			return nil, nil
		}
		c.readyForQuery(m.TxStatus)
	case *pgproto3.ParameterStatus:
		if err := checkPinned(m); err != nil {
			return nil, err
		}
		switch m.Name {
		case "client_encoding":
			return nil, nil // the client's is the proxy's (switchOut)
		case "is_superuser":
			return &pgproto3.ParameterStatus{Name: m.Name, Value: "off"}, nil
		case "session_authorization":
			return &pgproto3.ParameterStatus{Name: m.Name, Value: c.user}, nil
		}
	case *pgproto3.CopyInResponse, *pgproto3.CopyBothResponse:
		// The rewriter admits no statement that starts these.
		return nil, pgerr.Fatalf(pgerr.ProtocolViolation, "warehouse started an unsupported copy mode")
	}
	return msg, nil
}

// completed handles the end of one statement's results (rows = -1 for a
// suspended portal, whose row count the tag does not give); p is the
// queue's front.
func (c *clientConn) completed(b *pool.Backend, p *pending, tag pgconn.CommandTag, rows int64) {
	if p == nil {
		return
	}
	var op *setOp
	switch p.kind {
	case pExecute:
		op = p.op
		if len(p.encs) > 0 && rows >= 0 {
			c.switchOut(p.encs[0])
		}
		c.q.pop()
		c.statementDone(p, "ok", "", max(rows, 0))
	case pQuery:
		if p.done < len(p.ops) {
			op = p.ops[p.done]
		}
		if p.done < len(p.encs) && p.encs[p.done] != nil {
			c.switchOut(p.encs[p.done])
		}
		p.done++
		p.rows += max(rows, 0)
	}
	if rows >= 0 {
		c.noteCommand(b, tag, op)
	}
}

// noteCommand tracks what a completed command did to the connection's
// session: settings (transaction mode) and prepared statements.
func (c *clientConn) noteCommand(b *pool.Backend, tag pgconn.CommandTag, op *setOp) {
	switch {
	case tag.String() == "DEALLOCATE ALL":
		b.ClearPrepared()
	case tag.String() == "DISCARD ALL":
		b.ClearPrepared()
	}
	if c.pool == nil {
		return
	}
	switch {
	case op != nil && op.savepointOp != rewrite.NoSavepoint:
		c.txOps = savepointOps(c.txOps, op)
	case op != nil:
		c.txOps = append(c.txOps, *op)
		c.opsSeen = true
	case tag.String() == "COMMIT":
		c.applyOps(c.txOps)
		c.txOps = c.txOps[:0]
	case tag.String() == "ROLLBACK":
		c.txOps = c.txOps[:0]
	}
}

// savepointOps applies a completed savepoint statement to the transaction's
// SETs, which carry a marker per savepoint: ROLLBACK TO drops the SETs
// after the savepoint's marker (it stays defined), RELEASE drops the
// markers from it on (the SETs stay, now part of the enclosing level).
func savepointOps(ops []setOp, op *setOp) []setOp {
	if op.savepointOp == rewrite.SavepointDefine {
		return append(ops, *op)
	}
	at := -1
	for i := len(ops) - 1; i >= 0; i-- {
		if ops[i].savepointOp == rewrite.SavepointDefine && ops[i].savepoint == op.savepoint {
			at = i
			break
		}
	}
	if at < 0 {
		return ops // PostgreSQL said it exists; nothing of ours to undo
	}
	if op.savepointOp == rewrite.SavepointRollbackTo {
		return ops[:at+1]
	}
	kept := ops[:at]
	for _, o := range ops[at+1:] {
		if o.savepointOp == rewrite.NoSavepoint {
			kept = append(kept, o)
		}
	}
	return kept
}

func (c *clientConn) observeError(m *pgproto3.ErrorResponse) pgproto3.BackendMessage {
	if m.Severity == pgerr.SeverityFatal || m.Severity == "PANIC" {
		c.sawFatal.Store(true)
	}
	c.txFailed = true
	c.noteError()
	p := c.q.front()
	var out pgproto3.BackendMessage = sanitize(m)
	if p == nil {
		return out
	}
	c.parseFailed(p)
	if p.encs != nil {
		// A statement setting client_encoding failed, or one before it:
		// the client's next messages are read as before it.
		c.codec.in.Store(c.codec.out.Load())
	}
	if p.refusal != nil {
		out = p.refusal
	}
	switch p.kind {
	case pQuery:
		if p.failed == "" {
			p.failed = m.Code
			if p.refusal != nil {
				p.failed = p.refusal.Code
			}
		}
	case pSync:
		// An error at Sync (a failing implicit COMMIT); ReadyForQuery follows.
	default:
		// The warehouse now skips to the Sync; ReadyForQuery pops the rest.
		c.q.pop()
		if p.refusal == nil && (p.kind == pExecute || p.auto) {
			c.statementDone(p, "error", m.Code, 0)
		}
	}
	return out
}

// readyForQuery pops everything up to and including the Sync or Query it
// answers: what is left before it was skipped after an error.
func (c *clientConn) readyForQuery(status byte) {
	c.txStatus.Store(uint32(status)) // before the pops that let the loop see it (mayProbe)
	c.settleEncoding(status)
	for {
		p := c.q.take()
		if p == nil {
			break
		}
		if p.kind == pQuery {
			if p.refusal == nil {
				outcome := "ok"
				if p.failed != "" {
					outcome = "error"
				}
				c.statementDone(p, outcome, p.failed, p.rows)
			}
			break
		}
		if p.kind == pSync {
			break
		}
		c.parseFailed(p)
	}
	c.shapeChanged = false
	if status == 'I' && c.pool != nil {
		if !c.txFailed && len(c.txOps) > 0 {
			c.applyOps(c.txOps)
		}
		c.txOps, c.txFailed = c.txOps[:0], false
	}
	if c.q.endedAt != 0 { // a statement ended in this answer: the clock is read once
		c.lastActive.Store(c.q.endedAt)
	} else {
		c.touch()
	}
	c.q.endedAt = 0
}

// parseFailed forgets a Parse the warehouse rejected, skipped or never
// answered (its connection was lost), and notes a skipped eviction (an
// internal Close): the statement stays prepared.
func (c *clientConn) parseFailed(p *pending) {
	if p.kind == pClose && p.internal {
		p.be.Skipped() // still prepared
		return
	}
	if p.kind != pParse {
		return
	}
	if p.prep != "" {
		p.be.UnmarkPrepared(p.prep, false)
		p.be.Skipped()
	}
	if p.stmt != nil {
		p.stmt.failed.Store(true)
	}
}

// sanitize drops the fields of a warehouse error that describe the rewritten
// statement rather than the client's: positions would point at the wrong
// text, and the internal query can show policy internals.
func sanitize(m *pgproto3.ErrorResponse) *pgproto3.ErrorResponse {
	if m.Position == 0 && m.InternalPosition == 0 && m.InternalQuery == "" {
		return m
	}
	m.Position, m.InternalPosition, m.InternalQuery = 0, 0, ""
	return m
}

// statementDone accounts for a statement that ended now (c.q.endedAt).
func (c *clientConn) statementDone(p *pending, outcome, code string, rows int64) {
	now := c.now()
	c.q.endedAt = now.UnixNano()
	d := max(now.Sub(p.start), 0) // a loop's reading may precede a start read off it
	c.srv.metrics.statement(outcome, string(c.session.Kind))
	c.srv.metrics.duration.Observe(d.Seconds())
	c.srv.stats.StatementAt(now, c.session.Tenant, statsOutcome(outcome), code, d)
	// The level first, on the server's logger: the session's wraps it in
	// a lazy core per With (startup.go), each asked in turn otherwise; a
	// child logger never changes the level.
	if c.srv.log.Core().Enabled(zap.InfoLevel) {
		if ce := c.log.Check(zap.InfoLevel, "statement done"); ce != nil {
			fp := ""
			if p.info != nil {
				fp = p.info.fingerprint
			}
			ce.Write(zap.String("fingerprint", fp), zap.String("outcome", outcome), zap.String("sqlstate", code), zap.Int64("rows", rows), zap.Duration("duration", d))
		}
	}
	c.srv.audit.record(c, p.info, outcome, code, rows, p.start)
}
