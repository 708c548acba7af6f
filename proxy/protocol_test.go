package proxy

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/rewrite"
)

// rawSession authenticates with pgconn and hands over the raw protocol.
func rawSession(t *testing.T, tp *testProxy, password string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	return hijacked(t, ctxT(t), tp.url(password, "wh", ""), 60*time.Second)
}

// hijacked logs in to url with pgconn and returns the raw connection (TLS
// or not) for the test to speak the protocol itself, closed at cleanup.
func hijacked(t *testing.T, ctx context.Context, url string, deadline time.Duration) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	pc, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	hc.Conn.SetDeadline(time.Now().Add(deadline))
	return hc.Conn, pgproto3.NewFrontend(hc.Conn, hc.Conn)
}

// describe renders a message compactly for comparisons.
func describe(m pgproto3.BackendMessage) string {
	switch m := m.(type) {
	case *pgproto3.DataRow:
		var vals []string
		for _, v := range m.Values {
			vals = append(vals, string(v))
		}
		return "DataRow(" + strings.Join(vals, ",") + ")"
	case *pgproto3.CommandComplete:
		return "CommandComplete(" + string(m.CommandTag) + ")"
	case *pgproto3.ErrorResponse:
		return "Error(" + m.Code + ")"
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery(" + string(m.TxStatus) + ")"
	default:
		return strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3.")
	}
}

// readN reads n messages.
func readN(t *testing.T, fe *pgproto3.Frontend, n int) []string {
	t.Helper()
	var got []string
	for range n {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, describe(m))
	}
	return got
}

// readUntilReady reads up to and including ReadyForQuery.
func readUntilReady(t *testing.T, fe *pgproto3.Frontend) []string {
	t.Helper()
	var got []string
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, describe(m))
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			return got
		}
	}
}

func wantSeq(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("messages:\n got  %s\n want %s", strings.Join(got, " "), strings.Join(want, " "))
	}
}

func TestPortalRowLimit(t *testing.T) {
	tp := startProxy(t, nil)
	_, fe := rawSession(t, tp, "tok-acme")
	fe.Send(&pgproto3.Parse{Name: "s1", Query: "SELECT order_id FROM orders ORDER BY order_id"})
	fe.Send(&pgproto3.Bind{PreparedStatement: "s1", DestinationPortal: "p1"})
	fe.Send(&pgproto3.Execute{Portal: "p1", MaxRows: 2})
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	// Flush (not Sync) must get the answers relayed.
	wantSeq(t, readN(t, fe, 5), "ParseComplete", "BindComplete", "DataRow(1)", "DataRow(2)", "PortalSuspended")
	fe.Send(&pgproto3.Execute{Portal: "p1", MaxRows: 2})
	fe.Send(&pgproto3.Sync{})
	fe.Flush()
	wantSeq(t, readUntilReady(t, fe), "DataRow(3)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
}

func TestExtendedErrorRecoveryOrder(t *testing.T) {
	tp := startProxy(t, nil)
	_, fe := rawSession(t, tp, "tok-acme")
	fe.Send(&pgproto3.Parse{Query: "SELECT 1"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Describe{ObjectType: 'P'})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Parse{Name: "bad", Query: "SELECT x FROM internal_costs"})
	fe.Send(&pgproto3.Bind{PreparedStatement: "bad"})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Parse{Query: "SELECT 2"})
	fe.Send(&pgproto3.Sync{})
	fe.Send(&pgproto3.Parse{Query: "SELECT 3"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	fe.Flush()
	wantSeq(t, readUntilReady(t, fe), "ParseComplete", "BindComplete", "RowDescription", "DataRow(1)", "CommandComplete(SELECT 1)", "Error(42501)", "ReadyForQuery(I)")
	wantSeq(t, readUntilReady(t, fe), "ParseComplete", "BindComplete", "DataRow(3)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")

	// Inside a transaction block the refusal aborts the transaction.
	fe.Send(&pgproto3.Query{String: "BEGIN"})
	fe.Flush()
	wantSeq(t, readUntilReady(t, fe), "CommandComplete(BEGIN)", "ReadyForQuery(T)")
	fe.Send(&pgproto3.Parse{Query: "SELECT * FROM internal_costs"})
	fe.Send(&pgproto3.Sync{})
	fe.Flush()
	wantSeq(t, readUntilReady(t, fe), "Error(42501)", "ReadyForQuery(E)")
	fe.Send(&pgproto3.Query{String: "ROLLBACK"})
	fe.Flush()
	wantSeq(t, readUntilReady(t, fe), "CommandComplete(ROLLBACK)", "ReadyForQuery(I)")
}

func TestMultipleStatementsInParseRefused(t *testing.T) {
	tp := startProxy(t, nil)
	_, fe := rawSession(t, tp, "tok-acme")
	fe.Send(&pgproto3.Parse{Query: "SELECT 1; SELECT 2"})
	fe.Send(&pgproto3.Sync{})
	fe.Flush()
	wantSeq(t, readUntilReady(t, fe), "Error(42601)", "ReadyForQuery(I)")
}

func TestFunctionCallRefused(t *testing.T) {
	tp := startProxy(t, nil)
	_, fe := rawSession(t, tp, "tok-acme")
	fe.Send(&pgproto3.FunctionCall{Function: 1299}) // now()
	fe.Flush()
	wantSeq(t, readUntilReady(t, fe), "Error(42501)", "ReadyForQuery(I)")
	fe.Send(&pgproto3.Query{String: "SELECT 1"})
	fe.Flush()
	wantSeq(t, readUntilReady(t, fe), "RowDescription", "DataRow(1)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
}

func TestCopyMessagesOutsideCopyIgnored(t *testing.T) {
	tp := startProxy(t, nil)
	_, fe := rawSession(t, tp, "tok-acme")
	fe.Send(&pgproto3.CopyData{Data: []byte("1\n")})
	fe.Send(&pgproto3.CopyDone{})
	fe.Send(&pgproto3.Query{String: "SELECT 1"})
	fe.Flush()
	wantSeq(t, readUntilReady(t, fe), "RowDescription", "DataRow(1)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
}

func TestUnknownMessageIsFatal(t *testing.T) {
	tp := startProxy(t, nil)
	c, fe := rawSession(t, tp, "tok-acme")
	c.Write([]byte{'!', 0, 0, 0, 4})
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if er, ok := m.(*pgproto3.ErrorResponse); !ok || er.Code != "08P01" || er.Severity != "FATAL" {
		t.Fatalf("got %#v, want FATAL 08P01", m)
	}
	if _, err := fe.Receive(); err == nil {
		t.Fatal("connection still open")
	}
}

// A message header announcing more than MaxMessageBytes is refused before the
// body is read or allocated.
func TestOversizeMessageRejected(t *testing.T) {
	tp := startProxy(t, func(c *Config, _ *Deps) { c.MaxMessageBytes = 4096 })
	c, fe := rawSession(t, tp, "tok-acme")
	hdr := []byte{'Q', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], 1<<30) // 1 GiB announced, never sent
	c.Write(hdr)
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	er, ok := m.(*pgproto3.ErrorResponse)
	if !ok || er.Code != "08P01" || !strings.Contains(er.Message, "exceeds the limit of 4096 bytes") {
		t.Fatalf("got %#v", m)
	}
}

// A result message bigger than MaxResultMessageBytes ends the session with
// 54000 (see TestResultMessageLimit for the default).
func TestOversizeResultRejected(t *testing.T) {
	tp := startProxy(t, func(c *Config, _ *Deps) { c.MaxResultMessageBytes = 4096 })
	_, fe := rawSession(t, tp, "tok-acme")
	fe.Send(&pgproto3.Query{String: "SELECT repeat('x', 10000)"})
	fe.Flush()
	got := readN(t, fe, 2)
	wantSeq(t, got, "RowDescription", "Error(54000)")
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestUnexpectedMessageTypes(t *testing.T) {
	tp := startProxy(t, nil)
	// A password message in the middle of a session.
	c, fe := rawSession(t, tp, "tok-acme")
	b, _ := (&pgproto3.PasswordMessage{Password: "x"}).Encode(nil)
	c.Write(b)
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if er, ok := m.(*pgproto3.ErrorResponse); !ok || er.Code != "08P01" || er.Message != `invalid frontend message type "p"` {
		t.Fatalf("got %#v", m)
	}

	// A query instead of the password.
	nc, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	fe = pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "alice", "database": "wh"}})
	fe.Flush()
	wantSeq(t, readN(t, fe, 1), "AuthenticationCleartextPassword")
	fe.Send(&pgproto3.Query{String: "SELECT 1"})
	fe.Flush()
	m, err = fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if er, ok := m.(*pgproto3.ErrorResponse); !ok || er.Code != "08P01" || er.Message != `expected password response, got message type "Q"` {
		t.Fatalf("got %#v", m)
	}
}

// paramRewriter records which entry point the proxy used and the types a
// Parse declared.
type paramRewriter struct {
	fakeRewriter
	mu    sync.Mutex
	calls []string
}

func (r *paramRewriter) Rewrite(ctx context.Context, sql string, id *policy.Identity) (*rewrite.Result, error) {
	r.mu.Lock()
	r.calls = append(r.calls, "Rewrite "+sql)
	r.mu.Unlock()
	return r.fakeRewriter.Rewrite(ctx, sql, id)
}

func (r *paramRewriter) RewriteParams(ctx context.Context, sql string, id *policy.Identity, types []uint32) (*rewrite.Result, error) {
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf("RewriteParams %v %s", types, sql))
	r.mu.Unlock()
	return r.fakeRewriter.Rewrite(ctx, sql, id)
}

// A Parse hands the rewriter the parameter types it declares (none is not
// unknown: an empty list); a simple Query goes through Rewrite.
func TestParseDeclaresParameterTypes(t *testing.T) {
	rw := &paramRewriter{}
	tp := startProxy(t, func(_ *Config, d *Deps) { d.Warehouses["wh"].SetRewriter(rw) })
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	if _, err := conn.Prepare(ctx, "typed", "SELECT total FROM orders WHERE order_id > $1", []uint32{23}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Prepare(ctx, "untyped", "SELECT total FROM orders WHERE order_id < $1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"RewriteParams [23] SELECT total FROM orders WHERE order_id > $1",
		"RewriteParams [] SELECT total FROM orders WHERE order_id < $1",
		"Rewrite SELECT 1",
	}
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if diff := cmp.Diff(want, rw.calls); diff != "" {
		t.Errorf("rewriter calls (-want +got):\n%s", diff)
	}
}
