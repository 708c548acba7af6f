package proxy

// Binding a client to a warehouse connection. In session mode the client
// holds one connection from startup to the end. In transaction mode it
// holds one only from the first message that needs the warehouse to the
// ReadyForQuery 'I' that ends its synced batch; the loop binds (under c.mu,
// so that the relay cannot release between the bind and the push of what
// the warehouse will answer) and the relay releases.
//
// Prepared statements are the client's, not the connection's: a client's
// Parse is rewritten once and prepared on each connection it lands on under
// a proxy name derived from the rewritten text, so Bind, Describe and Close
// are translated and every reply still comes from the warehouse, in order.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/pgenc"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// clientStmt is a client's prepared statement (protocol level).
type clientStmt struct {
	info *stmtInfo
	rw   Rewriter        // the rewriter info.rewritten came from
	res  *rewrite.Result // and its result (reparsedLocked)
	oids []uint32
	name string          // the proxy's name for it upstream
	op   *setOp          // for a SET statement (transaction mode)
	enc  *pgenc.Encoding // the client encoding a SET client_encoding switches to
	save savepointStep   // what it does to a savepoint (encoding.go)
	// setsConfig: the statement may call set_config, whose effect is not
	// tracked: the connection gets a RESET ALL before its next lending.
	setsConfig bool
	hold       bool // DECLARE ... WITH HOLD: pins the client to its connection
	// shape is the result shape the client was told at Describe (set by
	// the relay); want is the shape a statement re-rewritten after a policy
	// reload must keep.
	shape atomic.Pointer[string]
	want  *string
	// described: want is the pool's cached Describe answer (cachedDesc),
	// not a shape from before a policy reload.
	described bool
	// failed is set by the relay when the warehouse rejected the Parse.
	failed atomic.Bool
}

// newClientStmt makes st, which is new, the client statement of res.
func newClientStmt(st *clientStmt, res *rewritten, oids []uint32, names *stmtNames) *clientStmt {
	st.info, st.rw, st.res = res.stmtInfo, res.rw, res.result
	st.name, st.oids, st.setsConfig = names.lookup(res.rewritten, oids)
	if len(res.ops) == 1 {
		st.op = res.ops[0]
	}
	if len(res.encs) == 1 {
		st.enc = res.encs[0]
	}
	if len(res.saves) == 1 {
		st.save = res.saves[0]
	}
	st.hold = declaresHold(res.result)
	return st
}

// proxyStmtName names a rewritten statement upstream: equal text and
// parameter types share one server-side statement per connection. The
// name is "pgw_" and the hex of the first 12 bytes of the SHA-256 of the
// text's length (8 bytes), the text and the types (4 bytes each, all
// big-endian): with the length first, no text followed by types hashes as
// a longer text with fewer types. It is taken for every simple-protocol
// statement that runs prepared, so a statement of up to a kilobyte is
// hashed from a buffer on the stack and the name is its only allocation.
func proxyStmtName(sql string, oids []uint32) string {
	var sum [sha256.Size]byte
	var buf [1024]byte
	if n := 8 + len(sql) + 4*len(oids); n <= len(buf) {
		b := binary.BigEndian.AppendUint64(buf[:0], uint64(len(sql)))
		b = append(b, sql...)
		for _, o := range oids {
			b = binary.BigEndian.AppendUint32(b, o)
		}
		sum = sha256.Sum256(b)
	} else {
		h := sha256.New()
		h.Write(binary.BigEndian.AppendUint64(buf[:0], uint64(len(sql))))
		h.Write([]byte(sql))
		for _, o := range oids {
			h.Write(binary.BigEndian.AppendUint32(buf[:0], o))
		}
		h.Sum(sum[:0])
	}
	var name [4 + 24]byte
	copy(name[:], "pgw_")
	hex.Encode(name[4:], sum[:12])
	return string(name[:])
}

// stmtNames remembers what newClientStmt derived from the texts a client
// prepared last: a driver that parses the same text before every execution
// (into the unnamed statement, as pgbench -M extended and many drivers
// without a statement cache do) costs a comparison, not a hash of the text,
// a scan of it and two allocations. Loop goroutine only.
type stmtNames struct {
	last [2]namedText
	next int
}

type namedText struct {
	sql        string
	oids       []uint32 // never written: statements share it
	name       string
	setsConfig bool
}

// lookup returns sql's proxy name, oids as a statement may keep them, and
// whether sql calls set_config.
func (n *stmtNames) lookup(sql string, oids []uint32) (string, []uint32, bool) {
	for i := range n.last {
		if e := &n.last[i]; e.name != "" && e.sql == sql && slices.Equal(e.oids, oids) {
			return e.name, e.oids, e.setsConfig
		}
	}
	e := namedText{sql: sql, oids: append([]uint32(nil), oids...), name: proxyStmtName(sql, oids), setsConfig: callsSetConfig(sql)}
	if len(sql) <= internMax {
		n.last[n.next] = e
		n.next = (n.next + 1) % len(n.last)
	}
	return e.name, e.oids, e.setsConfig
}

// resultShape is what a driver caches from a statement's Describe: the
// column types (names may change without harm).
func resultShape(m pgproto3.BackendMessage) string {
	rd, ok := m.(*pgproto3.RowDescription)
	if !ok {
		return "nodata"
	}
	var b strings.Builder
	for _, f := range rd.Fields {
		fmt.Fprintf(&b, "%d/%d/%d,", f.DataTypeOID, f.DataTypeSize, f.TypeModifier)
	}
	return b.String()
}

// setOp is a session setting change that transaction mode must carry from
// connection to connection.
type setOp struct {
	name     string // lowercase; "" with resetAll
	sql      string // the SET statement to replay; "" for a reset
	resetAll bool
	// A savepoint statement instead: what a ROLLBACK TO undoes of the
	// transaction's SETs (see noteCommand). Never replayed.
	savepoint   string
	savepointOp rewrite.SavepointOp
}

// setOps describes the settings statements of res (nil when there are none
// or the client holds its own connection).
func (c *clientConn) setOps(res *rewrite.Result) []*setOp {
	if c.pool == nil {
		return nil
	}
	var ops []*setOp
	for i, st := range res.Statements {
		var op *setOp
		switch {
		case st.Kind == rewrite.KindDiscard && isDiscardAll(st.SQL):
			op = &setOp{resetAll: true}
		case st.Kind == rewrite.KindTransaction && st.SavepointOp != rewrite.NoSavepoint:
			op = &setOp{savepoint: st.Savepoint, savepointOp: st.SavepointOp}
		case st.Kind == rewrite.KindSet && st.SetName == "client_encoding":
			// The proxy's, not the warehouse's (encoding.go).
		case st.Kind == rewrite.KindSet && !st.SetLocal && st.SetName != "":
			switch {
			case st.SetName == "all":
				op = &setOp{resetAll: true}
			case st.SetValue == "":
				op = &setOp{name: st.SetName}
			default:
				op = &setOp{name: st.SetName, sql: st.SQL}
			}
		}
		if op != nil {
			if ops == nil {
				ops = make([]*setOp, len(res.Statements))
			}
			ops[i] = op
		}
	}
	return ops
}

// checkPooled refuses what cannot work when connections are shared.
func (c *clientConn) checkPooled(res *rewrite.Result) error {
	if c.pool == nil {
		return nil
	}
	for _, st := range res.Statements {
		switch st.Kind {
		case rewrite.KindPrepare, rewrite.KindExecute:
			return errPooledPrepare()
		case rewrite.KindDeallocate:
			if deallocateName(st.SQL) != "" && len(res.Statements) > 1 {
				return errPooledPrepare()
			}
		}
	}
	return nil
}

// declaresHold reports a DECLARE ... WITH HOLD.
func declaresHold(res *rewrite.Result) bool {
	for _, st := range res.Statements {
		if st.Kind == rewrite.KindCursor && strings.Contains(strings.ToUpper(st.SQL), " WITH HOLD ") {
			return true
		}
	}
	return false
}

// callsSetConfig reports whether sql mentions set_config, in any case; it
// runs on every statement, so it does not allocate.
func callsSetConfig(sql string) bool {
	const name, under = "set_config", 3 // the index of its '_', which is rare in SQL
	for i := 0; ; {
		j := strings.IndexByte(sql[i:], '_')
		if j < 0 {
			return false
		}
		j += i
		if j >= under && j-under+len(name) <= len(sql) && strings.EqualFold(sql[j-under:j-under+len(name)], name) {
			return true
		}
		i = j + 1
	}
}

func isDiscardAll(sql string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(sql), " "), "DISCARD ALL")
}

// deallocateName returns the statement a "DEALLOCATE [PREPARE] name"
// names ("" for DEALLOCATE ALL or anything else).
func deallocateName(sql string) string {
	f := strings.Fields(sql)
	if len(f) == 3 && strings.EqualFold(f[1], "PREPARE") {
		f = f[1:]
	}
	if len(f) != 2 || !strings.EqualFold(f[0], "DEALLOCATE") || strings.EqualFold(f[1], "ALL") {
		return ""
	}
	return strings.Trim(f[1], `"`)
}

func errPooledPrepare() *pgerr.Error {
	return pgerr.Unsupported("SQL-level PREPARE and EXECUTE are not supported in transaction pooling mode").
		WithHint("use your driver's protocol-level prepared statements, which pgwarden pools")
}

// clearsStatements reports whether res drops every prepared statement.
func clearsStatements(res *rewrite.Result) bool {
	for _, st := range res.Statements {
		if st.Kind == rewrite.KindDiscard && isDiscardAll(st.SQL) || st.Kind == rewrite.KindDeallocate && strings.EqualFold(strings.TrimSpace(st.SQL), "DEALLOCATE ALL") {
			return true
		}
	}
	return false
}

// bindLocked returns the connection the client holds, acquiring one (and
// replaying the client's settings on it) when it holds none. c.mu is held.
func (c *clientConn) bindLocked() (*pool.Backend, error) {
	if c.cur != nil {
		return c.cur, nil
	}
	if c.pool == nil || c.stopping {
		return nil, connLost(c.wh.Name)
	}
	// An idle connection first: nothing to wait for, so nothing that a
	// CancelRequest or a revocation would have to end (the message's own
	// clock reading serves the pool).
	now := c.msgAt
	if now.IsZero() {
		now = time.Now()
	}
	b := c.pool.AcquireIdle(c.session.Tenant, now)
	if b != nil {
		c.cmu.Lock()
		c.cur = b
		c.cancelTo = b
		c.cmu.Unlock()
	} else {
		var err error
		if b, err = c.acquireWaitingLocked(); err != nil {
			return nil, err
		}
	}
	if _, ok := b.Conn().(inlineConn); ok {
		c.inline = true
		c.takeBackend(b)
	} else {
		c.inline = false
		c.toRelayLocked(b)
	}
	if err := c.replaySettingsLocked(b); err != nil {
		return nil, err
	}
	if err := c.applyRowSecurityLocked(b); err != nil {
		return nil, err
	}
	return b, nil
}

// acquireWaitingLocked waits for a pooled connection, in a wait that the
// client's CancelRequest or its session's revocation ends, and makes it
// the one held. c.mu is held.
func (c *clientConn) acquireWaitingLocked() (*pool.Backend, error) {
	c.cmu.Lock()
	if c.waitCtx == nil || c.waitCtx.Err() != nil {
		c.waitCtx, c.waitCancel = context.WithCancelCause(c.ctx)
	}
	c.acquiring = true
	ctx := c.waitCtx
	c.cmu.Unlock()
	c.clockStale = true // what follows in the batch waited too
	// On a loop it parks there, and leaves only to dial (pool.Parker).
	b, err := c.pool.AcquireWaiting(ctx, c.session.Tenant, c.watchGone, c.parker(), time.Now())
	c.cmu.Lock()
	c.acquiring = false
	if err != nil {
		c.cmu.Unlock()
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errCancelRequest):
			return nil, pgerr.New(pgerr.QueryCanceled, "canceling statement due to user request").
				WithDetail("The statement was waiting for a warehouse connection.")
		case errors.Is(cause, errRevokedWait):
			return nil, errRevoked()
		}
		return nil, err
	}
	c.cur = b
	c.cancelTo = b
	c.cmu.Unlock()
	return b, nil
}

// replaySettingsLocked makes b's session settings the client's: it queues
// the SETs ahead of the client's first message, to go in the same write
// (as PgBouncer does), and the relay swallows their answers (observeReplay).
// c.mu is held.
func (c *clientConn) replaySettingsLocked(b *pool.Backend) error {
	want := c.settingsSQL
	if !b.SettingsUnknown && b.Settings == want {
		return nil
	}
	sql := "RESET ALL"
	if want != "" {
		sql += "; " + want
	}
	b.Settings, b.SettingsUnknown = want, false
	c.replays.Add(1)
	p := c.newPendingLocked(pQuery)
	p.internal = true
	return c.pushSend(b, &pgproto3.Query{String: sql}, p)
}

// errCancelRequest and errRevokedWait are the causes of a pool wait ended
// by the client's CancelRequest or its session's revocation.
var (
	errCancelRequest = errors.New("cancel request")
	errRevokedWait   = errors.New("session revoked")
)

// applyOps folds committed setting changes into the client's settings.
// Called by the relay while it holds the connection.
func (c *clientConn) applyOps(ops []setOp) {
	for _, op := range ops {
		switch {
		case op.savepointOp != rewrite.NoSavepoint:
		case op.resetAll:
			c.settings = c.settings[:0]
		default:
			kept := c.settings[:0]
			for _, s := range c.settings {
				if s.name != op.name {
					kept = append(kept, s)
				}
			}
			c.settings = kept
			if op.sql != "" {
				c.settings = append(c.settings, op)
			}
		}
	}
	parts := make([]string, 0, len(c.baseSettings)+len(c.settings))
	parts = append(parts, c.baseSettings...)
	for _, s := range c.settings {
		parts = append(parts, s.sql)
	}
	c.settingsSQL = strings.Join(parts, "; ")
}

// baseSettingsFor turns the client's startup parameters into SET
// statements, for those that differ from the pool's connections.
func baseSettingsFor(params, poolParams map[string]string) []string {
	var out []string
	for _, name := range []string{"DateStyle", "TimeZone", "IntervalStyle", "extra_float_digits", "application_name"} {
		v, ok := params[name]
		if !ok || strings.EqualFold(v, poolParams[name]) {
			continue
		}
		out = append(out, fmt.Sprintf("SET %s TO '%s'", name, strings.ReplaceAll(v, "'", "''")))
	}
	return out
}

// pushSend queues p and buffers m for b. c.mu is held.
func (c *clientConn) pushSend(b *pool.Backend, m pgproto3.FrontendMessage, p *pending) error {
	c.beforeSendLocked(b, m)
	c.q.push(p)
	if err := b.Conn().Send(m); err != nil {
		return connLost(c.wh.Name)
	}
	if p.kind == pQuery && !p.internal {
		return b.Conn().Flush()
	}
	return nil
}

// sendLocked binds and sends m. c.mu is held.
func (c *clientConn) sendLocked(m pgproto3.FrontendMessage, p *pending) error {
	b, err := c.bindLocked()
	if err != nil {
		return c.answerUnbound(err, p.kind == pQuery)
	}
	return c.pushSend(b, m, p)
}

// ensurePrepared prepares st on b (before a Bind or Describe) unless it is
// there already; the ParseComplete is not the client's. c.mu is held.
func (c *clientConn) ensurePrepared(b *pool.Backend, st *clientStmt) error {
	isNew, err := c.markPreparedLocked(b, st.name)
	if err != nil {
		return err
	}
	if isNew {
		p := c.newPendingLocked(pParse)
		p.internal, p.prep, p.be = true, st.name, b
		if err := c.pushSend(b, &pgproto3.Parse{Name: st.name, Query: st.info.rewritten, ParameterOIDs: st.oids}, p); err != nil {
			return err
		}
	}
	if st.want != nil && st.shape.Load() == nil {
		// Re-rewritten after a reload, or told the pool's cached shape:
		// check the result shape the client cached still holds (the relay
		// answers 0A000 if not). Also where this connection prepared the
		// statement already: PostgreSQL refuses a Bind whose result type
		// changed since it prepared the statement, but not one prepared
		// after the change while the cache still holds the shape before
		// it, which only this check sees.
		p := c.newPendingLocked(pDescribe)
		p.internal, p.stmt = true, st
		return c.pushSend(b, &pgproto3.Describe{ObjectType: 'S', Name: st.name}, p)
	}
	return nil
}

// markPreparedLocked records a use of the statement name on b; when it is
// new there and b is at its cap, the least recently used statement is
// closed first (the CloseComplete is not the client's). c.mu is held.
func (c *clientConn) markPreparedLocked(b *pool.Backend, name string) (bool, error) {
	isNew, evict := b.MarkPrepared(name)
	if evict != "" {
		p := c.newPendingLocked(pClose)
		p.internal, p.prep, p.be = true, evict, b
		if err := c.pushSend(b, &pgproto3.Close{ObjectType: 'S', Name: evict}, p); err != nil {
			return false, err
		}
	}
	return isNew, nil
}

// refuseLocked answers a refusal (p.refusal) in order: through the
// warehouse (a marker that fails, so that it does the error recovery) when
// a connection is held, directly otherwise. c.mu is held.
func (c *clientConn) refuseLocked(p *pending) error {
	if c.cur == nil && c.pool != nil {
		return c.writeUnbound(p.refusal, p.kind == pQuery)
	}
	var m pgproto3.FrontendMessage = &pgproto3.Parse{Query: refusedMarker}
	if p.kind == pQuery {
		m = &pgproto3.Query{String: refusedMarker}
	}
	return c.sendLocked(m, p)
}

// answerUnbound reports err for a message that found no connection. The
// relay is parked (nothing is bound), so the loop writes to the client.
func (c *clientConn) answerUnbound(err error, isQuery bool) error {
	if c.pool == nil || c.revoked.Load() {
		return err // the connection is gone for good, or the session is
	}
	er := c.errorResponse(err, false)
	if er.Severity == pgerr.SeverityFatal {
		// The pool failed, not the session: the client may retry.
		er.Severity, er.SeverityUnlocalized = pgerr.SeverityError, pgerr.SeverityError
	}
	return c.writeUnbound(er, isQuery)
}

func (c *clientConn) writeUnbound(er *pgproto3.ErrorResponse, isQuery bool) error {
	if c.pool == nil {
		return connLost(c.wh.Name)
	}
	c.out.send(er)
	if isQuery {
		c.out.send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	} else {
		c.ignoreUntilSync = true
	}
	if err := c.out.flush(); err != nil {
		return errQuiet{"client write: " + err.Error()}
	}
	return nil
}

// writeDirect answers a message that needs no warehouse while none is held.
func (c *clientConn) writeDirect(msgs ...pgproto3.BackendMessage) error {
	for _, m := range msgs {
		c.out.send(m)
	}
	if err := c.out.flush(); err != nil {
		return errQuiet{"client write: " + err.Error()}
	}
	return nil
}

// releaseAtClose returns the connection a departing client held: rolled
// back and reusable when that works, closed otherwise. The relay has
// stopped, so nobody else reads b.
func (c *clientConn) releaseAtClose(b *pool.Backend) {
	// CLOSE ALL: no cursor WITH HOLD may reach the next client.
	status, err := b.RoundTrip("ROLLBACK; CLOSE ALL", 2*time.Second)
	if err != nil || status != 'I' {
		c.log.Debug("discarding warehouse connection at close", zap.Error(err))
		c.pool.Release(b, false)
		return
	}
	if c.opsSeen {
		b.SettingsUnknown = true
	}
	c.pool.Release(b, resetRowSecurity(b, 2*time.Second, c.log))
}
