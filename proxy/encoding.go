package proxy

// The client's encoding. Warehouse connections always speak UTF8 (pinned in
// upstream.go), and the rewriter parses UTF-8: a client in any other
// encoding has its text converted to UTF-8 as it arrives and back as it
// leaves, so the text pg_query checks is the text the warehouse lexes. A
// client's SET client_encoding changes the session's encoding here and
// never reaches the warehouse (it runs there as a no-op SET to UTF8, so
// that the client gets the warehouse's answer in order, 25P02 included).
//
// A UTF8 client (the common case) costs a UTF-8 validity check of its
// statement texts and a pointer load per message: its other text is
// checked by the warehouse, which speaks UTF8 as well.

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/pgenc"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/rewrite"
)

// codec is a session's client encoding. in reads what the client sends: it
// is the loop's, switched when the loop sends a statement that sets
// client_encoding, so that the client's next messages are read in the new
// encoding (as PostgreSQL reads them after running the SET). out writes
// what the client receives: it switches when the warehouse completes that
// statement, so that the answers to what came before keep the old one.
// The relay puts in back to out when such a statement fails.
type codec struct {
	start *pgenc.Encoding // the startup packet's; RESET returns to it
	in    atomic.Pointer[pgenc.Encoding]
	out   atomic.Pointer[pgenc.Encoding]
	// The relay's, on the converting path: the formats of the last
	// RowDescription (a simple Query's rows) and whether the COPY under
	// way is text.
	rowFormats []int16
	copyText   bool
	// The relay's, for transactions: a SET client_encoding rolled back is
	// undone, as on PostgreSQL. committed is the encoding as of the last
	// transaction that ended well; aborted says the one under way is
	// rolled back (a ROLLBACK, or an error outside a transaction block,
	// which ends its implicit transaction); inBlock, that BEGIN ran.
	// savepoints are the transaction's, each with the encoding it found:
	// ROLLBACK TO one returns to it, as PostgreSQL undoes a SET made after
	// the savepoint.
	committed  *pgenc.Encoding
	aborted    bool
	inBlock    bool
	savepoints []savedEncoding
}

// savedEncoding is a savepoint and the client encoding when it was set.
type savedEncoding struct {
	name string
	enc  *pgenc.Encoding
}

// savepointStep is what a statement does to a savepoint (op
// rewrite.NoSavepoint: nothing).
type savepointStep struct {
	name string
	op   rewrite.SavepointOp
}

// savepointSteps lists what res's statements do to savepoints, by
// statement; nil when none does.
func savepointSteps(res *rewrite.Result) []savepointStep {
	var steps []savepointStep
	for i, st := range res.Statements {
		if st.Kind != rewrite.KindTransaction || st.SavepointOp == rewrite.NoSavepoint {
			continue
		}
		if steps == nil {
			steps = make([]savepointStep, len(res.Statements))
		}
		steps[i] = savepointStep{name: st.Savepoint, op: st.SavepointOp}
	}
	return steps
}

func newCodec(e *pgenc.Encoding) *codec {
	cd := &codec{start: e, committed: e}
	cd.in.Store(e)
	cd.out.Store(e)
	return cd
}

// Warehouse settings pgwarden pins on every connection, whatever the
// client, the role or the database say: the text it forwards is UTF-8 and
// must be lexed as such, with standard strings and no \' in E” strings.
var pinnedSettings = map[string]string{
	"client_encoding":             "UTF8",
	"standard_conforming_strings": "on",
	"backslash_quote":             "off",
}

// checkPinned fails a warehouse connection that reports a pinned setting
// changed: nothing the proxy sends may run under another reading of its
// text. backslash_quote is not reported; the rewriter refuses changing it.
func checkPinned(m *pgproto3.ParameterStatus) error {
	switch m.Name {
	case "client_encoding", "standard_conforming_strings":
		if !strings.EqualFold(m.Value, pinnedSettings[m.Name]) {
			return pgerr.Fatalf(pgerr.InternalError, "warehouse connection changed %s to %q", m.Name, m.Value)
		}
	}
	return nil
}

// fromClient converts the text of a client message to UTF-8, in place (the
// message is the receiver's flyweight). For a UTF8 or SQL_ASCII client the
// statement texts are only checked: the warehouse checks the rest.
func (c *clientConn) fromClient(msg pgproto3.FrontendMessage) *pgerr.Error {
	e := c.codec.in.Load()
	if !e.Converts() {
		switch m := msg.(type) {
		case *pgproto3.Query:
			return pgenc.ValidUTF8(m.String)
		case *pgproto3.Parse:
			if err := pgenc.ValidUTF8(m.Query); err != nil {
				return err
			}
			return pgenc.ValidUTF8(m.Name)
		}
		return nil
	}
	var err *pgerr.Error
	switch m := msg.(type) {
	case *pgproto3.Query:
		m.String, err = e.DecodeString(m.String)
	case *pgproto3.Parse:
		if m.Query, err = e.DecodeString(m.Query); err == nil {
			m.Name, err = e.DecodeString(m.Name)
		}
	case *pgproto3.Bind:
		if m.DestinationPortal, err = e.DecodeString(m.DestinationPortal); err != nil {
			return err
		}
		if m.PreparedStatement, err = e.DecodeString(m.PreparedStatement); err != nil {
			return err
		}
		for i, v := range m.Parameters {
			if v == nil || !textFormat(m.ParameterFormatCodes, i) {
				continue // binary values pass unchanged
			}
			if m.Parameters[i], err = e.Decode(v); err != nil {
				return err
			}
		}
	case *pgproto3.Describe:
		m.Name, err = e.DecodeString(m.Name)
	case *pgproto3.Execute:
		m.Portal, err = e.DecodeString(m.Portal)
	case *pgproto3.Close:
		m.Name, err = e.DecodeString(m.Name)
	}
	return err
}

// textFormat reports whether value i is text under a message's format
// codes (none: all text; one: all alike).
func textFormat(codes []int16, i int) bool {
	switch {
	case len(codes) == 0:
		return true
	case len(codes) == 1:
		return codes[0] == 0
	case i < len(codes):
		return codes[i] == 0
	}
	return false
}

// refuseMessage answers a message whose text could not be read (22021,
// 22P05): a Query gets the error and ReadyForQuery, anything else the
// error and the rest of its batch skipped, as PostgreSQL does.
func (c *clientConn) refuseMessage(msg pgproto3.FrontendMessage, err error) error {
	_, isQuery := msg.(*pgproto3.Query)
	p := &pending{kind: pParse, start: time.Now()}
	if isQuery {
		p.kind = pQuery
	}
	p.refusal = c.refuse("", err, p.start)
	c.mu.Lock()
	if !isQuery {
		c.ignoreUntilSync = true
	}
	rerr := c.refuseLocked(p)
	c.mu.Unlock()
	if rerr != nil || !isQuery {
		return rerr
	}
	return c.drain()
}

// localEncoding applies what the client's statements do to its encoding,
// which lives here and not on the warehouse: SET client_encoding (and SET
// NAMES, RESET, RESET ALL, DISCARD ALL) switch the session's encoding when
// they run, and run on the warehouse as a SET to UTF8; SHOW client_encoding
// answers the client's. It returns the SQL to send and, by statement, the
// encoding each switches to (nil when none does).
func (c *clientConn) localEncoding(res *rewrite.Result) (string, []*pgenc.Encoding, error) {
	touches := false
	for i := range res.Statements {
		if encodingStatement(&res.Statements[i]) {
			touches = true
			break
		}
	}
	if !touches {
		return res.SQL, nil, nil
	}
	cur := c.codec.in.Load()
	encs := make([]*pgenc.Encoding, len(res.Statements))
	sqls := make([]string, len(res.Statements))
	for i := range res.Statements {
		st := &res.Statements[i]
		sqls[i] = st.SQL
		switch {
		case st.Kind == rewrite.KindShow:
			if isShowClientEncoding(st.SQL) {
				sqls[i] = "SELECT '" + cur.Name + "'::text AS client_encoding"
			}
		case st.Kind == rewrite.KindSet && st.SetName == "client_encoding":
			if st.SetLocal {
				return "", nil, pgerr.Unsupported("SET LOCAL client_encoding is not supported").
					WithHint("use SET client_encoding, which lasts for the session")
			}
			e := c.codec.start
			if st.SetValue != "" {
				var perr *pgerr.Error
				if e, perr = pgenc.Lookup(st.SetValue); perr != nil {
					return "", nil, perr
				}
			}
			encs[i], cur = e, e
			sqls[i] = "SET client_encoding TO 'UTF8'"
		case st.Kind == rewrite.KindSet && st.SetName == "all" && !st.SetLocal, st.Kind == rewrite.KindDiscard && isDiscardAll(st.SQL):
			encs[i], cur = c.codec.start, c.codec.start
		}
	}
	return strings.Join(sqls, "; "), encs, nil
}

// encodingStatement reports a statement localEncoding changes; it runs on
// every statement, so it does not allocate.
func encodingStatement(st *rewrite.Statement) bool {
	switch st.Kind {
	case rewrite.KindShow:
		return isShowClientEncoding(st.SQL)
	case rewrite.KindSet:
		return st.SetName == "client_encoding" || st.SetName == "all"
	case rewrite.KindDiscard:
		return true
	}
	return false
}

func isShowClientEncoding(sql string) bool {
	return strings.EqualFold(sql, "SHOW client_encoding")
}

// lastEncoding is the encoding a statement list leaves the session in, or nil.
func lastEncoding(encs []*pgenc.Encoding) *pgenc.Encoding {
	for i := len(encs) - 1; i >= 0; i-- {
		if encs[i] != nil {
			return encs[i]
		}
	}
	return nil
}

// switchOut makes e the encoding of what the client receives from now on,
// when the warehouse has completed the statement that set it. The relay's.
func (c *clientConn) switchOut(e *pgenc.Encoding) {
	if c.codec.out.Swap(e) == e {
		return
	}
	c.out.send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: e.Name})
}

// noteCompleted follows transaction boundaries and savepoints for the
// codec as the statement p at the front of the queue completes with tag
// (the relay's). ROLLBACK TO SAVEPOINT answers "ROLLBACK" as a ROLLBACK does,
// so savepoint statements are told apart by what the rewriter saw.
func (c *clientConn) noteCompleted(p *pending, tag string) {
	var step savepointStep
	switch {
	case p == nil:
	case p.kind == pExecute && len(p.saves) > 0:
		step = p.saves[0]
	case p.kind == pQuery && p.done < len(p.saves):
		step = p.saves[p.done]
	}
	if step.op == rewrite.NoSavepoint {
		c.codec.noteTag(tag)
		return
	}
	cd := c.codec
	if step.op == rewrite.SavepointDefine {
		cd.savepoints = append(cd.savepoints, savedEncoding{step.name, cd.out.Load()})
		return
	}
	at := -1
	for i := len(cd.savepoints) - 1; i >= 0; i-- {
		if cd.savepoints[i].name == step.name {
			at = i
			break
		}
	}
	if at < 0 {
		return // PostgreSQL said it exists; no SET of ours since
	}
	if step.op == rewrite.SavepointRelease {
		cd.savepoints = cd.savepoints[:at]
		return
	}
	// ROLLBACK TO: the savepoint stays, those after it go.
	e := cd.savepoints[at].enc
	cd.savepoints = cd.savepoints[:at+1]
	// The client's next messages are read in it too, unless the loop has
	// already sent a statement that switches again (a later one of the
	// same Query, or one pipelined): in then differs from out.
	cd.in.CompareAndSwap(cd.out.Load(), e)
	c.switchOut(e)
}

// noteTag follows transaction boundaries for the codec (the relay's).
func (cd *codec) noteTag(tag string) {
	switch tag {
	case "BEGIN", "START TRANSACTION":
		cd.inBlock = true
	case "COMMIT":
		cd.inBlock = false
	case "ROLLBACK": // also what COMMIT of a failed transaction answers
		cd.inBlock, cd.aborted = false, true
	}
}

// noteError follows an error for the codec (the relay's). Outside a
// transaction block it ends the implicit transaction, whose SETs are undone
// at ReadyForQuery. In a block, PostgreSQL undoes the SETs of the
// (sub)transaction the error aborts at once: those since the latest
// savepoint, or since BEGIN.
func (c *clientConn) noteError() {
	cd := c.codec
	if !cd.inBlock {
		cd.aborted = true
		return
	}
	e := cd.committed
	if n := len(cd.savepoints); n > 0 {
		e = cd.savepoints[n-1].enc
	}
	c.switchOut(e)
	cd.in.Store(e)
}

// settleEncoding runs at each ReadyForQuery: outside any transaction, the session
// keeps its encoding or, after a rollback, returns to the committed one.
func (c *clientConn) settleEncoding(status byte) {
	cd := c.codec
	cd.inBlock = status != 'I'
	if status != 'I' {
		return
	}
	cd.savepoints = cd.savepoints[:0]
	if cd.aborted {
		cd.aborted = false
		if e := cd.committed; e != cd.out.Load() {
			c.switchOut(e)
			cd.in.Store(e)
		}
		return
	}
	cd.committed = cd.out.Load()
}

// encodeResult converts, for a client in another encoding, what only the
// relay can: rows and COPY data, whose formats it tracks. A value with a
// character the client's encoding lacks fails the statement with 22P05 as
// on PostgreSQL: the rest up to ReadyForQuery is dropped, and a transaction
// block fails.
func (c *clientConn) encodeResult(e *pgenc.Encoding, msg pgproto3.BackendMessage) pgproto3.BackendMessage {
	var err *pgerr.Error
	switch m := msg.(type) {
	case *pgproto3.DataRow:
		formats := c.codec.rowFormats
		if p := c.q.front(); p != nil && p.kind == pExecute {
			formats = p.formats // the Bind's: a portal need not be described
		}
		for i, v := range m.Values {
			if v == nil || !textFormat(formats, i) {
				continue
			}
			if m.Values[i], err = e.Encode(v); err != nil {
				break
			}
		}
	case *pgproto3.RowDescription:
		c.codec.rowFormats = c.codec.rowFormats[:0]
		for _, f := range m.Fields {
			c.codec.rowFormats = append(c.codec.rowFormats, f.Format)
		}
	case *pgproto3.CopyOutResponse:
		c.codec.copyText = m.OverallFormat == 0
	case *pgproto3.CopyData:
		if c.codec.copyText {
			m.Data, err = e.Encode(m.Data)
		}
	}
	if err == nil {
		return msg
	}
	c.txFailed, c.shapeSkip, c.shapeFailed = true, true, true
	c.noteError()
	return c.errorResponse(err, false)
}

// encodeMessage converts the text of a message for the client, with '?'
// for a character its encoding lacks: errors and notices must reach it.
// Rows and COPY data are encodeResult's. Messages may be shared (the
// pool's cached descriptions), so converted ones are copies.
func encodeMessage(e *pgenc.Encoding, msg pgproto3.BackendMessage) pgproto3.BackendMessage {
	switch m := msg.(type) {
	case *pgproto3.ErrorResponse:
		n := *m
		encodeFields(e, &n)
		return &n
	case *pgproto3.NoticeResponse:
		n := pgproto3.ErrorResponse(*m)
		encodeFields(e, &n)
		nr := pgproto3.NoticeResponse(n)
		return &nr
	case *pgproto3.RowDescription:
		fields := make([]pgproto3.FieldDescription, len(m.Fields))
		for i, f := range m.Fields {
			f.Name = []byte(e.EncodeLossy(string(f.Name)))
			fields[i] = f
		}
		return &pgproto3.RowDescription{Fields: fields}
	case *pgproto3.CommandComplete:
		return &pgproto3.CommandComplete{CommandTag: []byte(e.EncodeLossy(string(m.CommandTag)))}
	case *pgproto3.ParameterStatus:
		return &pgproto3.ParameterStatus{Name: m.Name, Value: e.EncodeLossy(m.Value)}
	case *pgproto3.NotificationResponse:
		return &pgproto3.NotificationResponse{PID: m.PID, Channel: e.EncodeLossy(m.Channel), Payload: e.EncodeLossy(m.Payload)}
	}
	return msg
}

func encodeFields(e *pgenc.Encoding, m *pgproto3.ErrorResponse) {
	for _, f := range []*string{&m.Severity, &m.Message, &m.Detail, &m.Hint, &m.InternalQuery, &m.Where,
		&m.SchemaName, &m.TableName, &m.ColumnName, &m.DataTypeName, &m.ConstraintName} {
		*f = e.EncodeLossy(*f)
	}
}
