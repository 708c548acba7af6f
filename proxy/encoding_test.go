package proxy

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/pgenc"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

func TestEncodeMessage(t *testing.T) {
	latin1, _ := pgenc.Lookup("LATIN1")
	for _, tc := range []struct {
		name    string
		in, out pgproto3.BackendMessage
	}{
		{"error", &pgproto3.ErrorResponse{Severity: "ERROR", Code: "22P02", Message: `invalid input syntax for type integer: "é中"`, Detail: "ü", TableName: "tàble"},
			&pgproto3.ErrorResponse{Severity: "ERROR", Code: "22P02", Message: "invalid input syntax for type integer: \"\xe9?\"", Detail: "\xfc", TableName: "t\xe0ble"}},
		{"notice", &pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "café"},
			&pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "caf\xe9"}},
		{"row description", &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("prénom"), DataTypeOID: 25, Format: 0}}},
			&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("pr\xe9nom"), DataTypeOID: 25, Format: 0}}}},
		{"tag", &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}},
		{"parameter", &pgproto3.ParameterStatus{Name: "application_name", Value: "é"}, &pgproto3.ParameterStatus{Name: "application_name", Value: "\xe9"}},
		{"untouched", &pgproto3.ReadyForQuery{TxStatus: 'I'}, &pgproto3.ReadyForQuery{TxStatus: 'I'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fmt.Sprint(tc.in)
			got := encodeMessage(latin1, tc.in)
			if diff := cmp.Diff(tc.out, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if fmt.Sprint(tc.in) != before {
				t.Errorf("the input message changed: messages may be shared")
			}
		})
	}
}

func TestCheckPinned(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"client_encoding", "UTF8", true}, {"client_encoding", "GBK", false}, {"client_encoding", "SQL_ASCII", false},
		{"standard_conforming_strings", "on", true}, {"standard_conforming_strings", "off", false},
		{"TimeZone", "Mars", true},
	} {
		if err := checkPinned(&pgproto3.ParameterStatus{Name: tc.name, Value: tc.value}); (err == nil) != tc.ok {
			t.Errorf("%s=%s: %v", tc.name, tc.value, err)
		}
	}
}

// A notice from the warehouse reaches a LATIN1 client in LATIN1, with '?'
// for what LATIN1 lacks (the fake rewriter lets DO through).
func TestNoticeInClientEncoding(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	cfg, err := pgconn.ParseConfig(tp.url("tok-acme", "wh", "client_encoding=LATIN1"))
	if err != nil {
		t.Fatal(err)
	}
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DO $$BEGIN RAISE NOTICE 'caf\xe9 \xfc %', chr(20013); END$$").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"caf\xe9 \xfc ?"}; !cmp.Equal(notices, want) {
		t.Errorf("notices %q, want %q", notices, want)
	}
}

// Should a statement change a pinned setting on a warehouse connection
// (the rewriter refuses set_config of them; the fake rewriter does not),
// the session ends rather than run anything more on it, in both modes.
func TestPinnedSettingChangedEndsSession(t *testing.T) {
	for _, mode := range []pool.Mode{pool.Session, pool.Transaction} {
		t.Run(string(mode), func(t *testing.T) {
			tp := startProxy(t, func(_ *Config, d *Deps) { d.Warehouses["wh"].Pool.Mode = mode })
			ctx := ctxT(t)
			for _, sql := range []string{"SELECT set_config('client_encoding', 'GBK', false)", "SET standard_conforming_strings = off"} {
				conn := tp.connect(t, ctx, "tok-acme")
				_, err := conn.Exec(ctx, sql+"; SELECT 1").ReadAll()
				wantPgErr(t, err, "XX000", "warehouse connection changed")
				if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err == nil {
					t.Fatalf("%s: the session went on", sql)
				}
			}
		})
	}
}

// BenchmarkFromClient is what reading a client's statement costs beyond
// PostgreSQL's wire format: a UTF-8 check for a UTF8 client, a conversion
// for a LATIN1 one.
func BenchmarkFromClient(b *testing.B) {
	const sql = "SELECT orders.region AS region, count(*) AS count, sum(total) FROM public.orders WHERE status IN ('placed', 'shipped') AND ordered_at >= '2024-01-01' GROUP BY orders.region ORDER BY orders.region ASC"
	for _, enc := range []string{"UTF8", "LATIN1"} {
		b.Run(enc, func(b *testing.B) {
			e, _ := pgenc.Lookup(enc)
			c := &clientConn{codec: newCodec(e)}
			text := sql + " -- caf\xc3\xa9"
			if enc == "LATIN1" {
				text = sql + " -- caf\xe9"
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			m := &pgproto3.Parse{}
			for b.Loop() {
				m.Name, m.Query = "", text
				if err := c.fromClient(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// stubConn is a pool.Conn that reports the given startup parameters.
type stubConn struct {
	pool.Conn
	params map[string]string
	closed bool
}

func (s *stubConn) ParameterStatus(name string) string { return s.params[name] }
func (s *stubConn) Close() error                       { s.closed = true; return nil }

type stubUpstream struct{ sc *stubConn }

func (u stubUpstream) Acquire(context.Context, *ClientInfo) (pool.Conn, error) { return u.sc, nil }

// Whatever Upstream a caller supplies, its connections are used only if
// their warehouse reports the pinned settings.
func TestPinnedUpstream(t *testing.T) {
	for _, tc := range []struct {
		params map[string]string
		ok     bool
	}{
		{map[string]string{"client_encoding": "UTF8", "standard_conforming_strings": "on"}, true},
		{map[string]string{"client_encoding": "GBK", "standard_conforming_strings": "on"}, false},
		{map[string]string{"client_encoding": "UTF8", "standard_conforming_strings": "off"}, false},
		{map[string]string{}, false},
	} {
		sc := &stubConn{params: tc.params}
		got, err := pinnedUpstream{warehouse: "wh", up: stubUpstream{sc}}.Acquire(context.Background(), &ClientInfo{})
		if tc.ok != (err == nil) || tc.ok != (got != nil) || tc.ok == sc.closed {
			t.Errorf("%v: %v, %v (closed %v)", tc.params, got, err, sc.closed)
		}
	}
}

// Rows and COPY data: text values converted, binary ones untouched, the
// formats taken from the Bind for an Execute and from the RowDescription
// for a Query; a value LATIN1 cannot hold fails the statement with 22P05.
func TestEncodeResult(t *testing.T) {
	latin1, _ := pgenc.Lookup("LATIN1")
	c := &clientConn{codec: newCodec(latin1), q: newPendingQueue()}
	row := func(vals ...string) *pgproto3.DataRow {
		m := &pgproto3.DataRow{}
		for _, v := range vals {
			m.Values = append(m.Values, []byte(v))
		}
		return m
	}
	values := func(m pgproto3.BackendMessage) []string {
		var out []string
		for _, v := range m.(*pgproto3.DataRow).Values {
			out = append(out, string(v))
		}
		return out
	}
	// A simple Query: the RowDescription says text, then binary.
	c.q.push(&pending{kind: pQuery})
	c.encodeResult(latin1, &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Format: 0}, {Format: 1}}})
	if got := values(c.encodeResult(latin1, row("é", "é"))); !cmp.Equal(got, []string{"\xe9", "é"}) {
		t.Errorf("query row: %q", got)
	}
	c.q.pop()
	// An Execute: its Bind's formats, whatever the last RowDescription said.
	c.q.push(&pending{kind: pExecute, formats: []int16{1, 0}})
	if got := values(c.encodeResult(latin1, row("é", "é"))); !cmp.Equal(got, []string{"é", "\xe9"}) {
		t.Errorf("execute row: %q", got)
	}
	c.q.pop()
	c.q.push(&pending{kind: pExecute}) // no codes: all text
	if got := values(c.encodeResult(latin1, row("é", "ü"))); !cmp.Equal(got, []string{"\xe9", "\xfc"}) {
		t.Errorf("execute row, no codes: %q", got)
	}
	// COPY: text data converted, binary not.
	c.encodeResult(latin1, &pgproto3.CopyOutResponse{OverallFormat: 0})
	if got := c.encodeResult(latin1, &pgproto3.CopyData{Data: []byte("é\t1\n")}).(*pgproto3.CopyData); string(got.Data) != "\xe9\t1\n" {
		t.Errorf("copy text: %q", got.Data)
	}
	c.encodeResult(latin1, &pgproto3.CopyOutResponse{OverallFormat: 1})
	if got := c.encodeResult(latin1, &pgproto3.CopyData{Data: []byte("é")}).(*pgproto3.CopyData); string(got.Data) != "é" {
		t.Errorf("copy binary: %q", got.Data)
	}
	// A character LATIN1 lacks.
	got := c.encodeResult(latin1, row("中"))
	er, ok := got.(*pgproto3.ErrorResponse)
	if !ok || er.Code != "22P05" || er.Message != `character with byte sequence 0xe4 0xb8 0xad in encoding "UTF8" has no equivalent in encoding "LATIN1"` {
		t.Fatalf("got %#v", got)
	}
	if !c.shapeSkip || !c.txFailed {
		t.Errorf("the rest of the statement is not dropped")
	}
}
