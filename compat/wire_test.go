package compat

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// wireConn is a raw protocol client: it sends exactly the messages a test
// writes and records every reply, so that reply order can be asserted as
// PostgreSQL defines it.
type wireConn struct {
	nc net.Conn
	fe *pgproto3.Frontend
}

func wireConnect(ctx context.Context, s session) (*wireConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(s.Host, s.Port))
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	w := &wireConn{nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
	w.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": s.User, "database": s.Database, "application_name": "compat-wire"}})
	if err := w.fe.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	for {
		msg, err := w.fe.Receive()
		if err != nil {
			nc.Close()
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationCleartextPassword:
			w.fe.Send(&pgproto3.PasswordMessage{Password: s.Password})
			if err := w.fe.Flush(); err != nil {
				nc.Close()
				return nil, err
			}
		case *pgproto3.ErrorResponse:
			nc.Close()
			return nil, fmt.Errorf("startup: %s %s", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			return w, nil
		}
	}
}

func (w *wireConn) close() {
	w.fe.Send(&pgproto3.Terminate{})
	w.fe.Flush()
	w.nc.Close()
}

// roundTrip sends msgs in one write and returns the replies, described, up to
// and including the readyForQueries-th ReadyForQuery.
func (w *wireConn) roundTrip(readyForQueries int, msgs ...pgproto3.FrontendMessage) ([]string, error) {
	for _, m := range msgs {
		w.fe.Send(m)
	}
	if err := w.fe.Flush(); err != nil {
		return nil, err
	}
	var got []string
	for seen := 0; seen < readyForQueries; {
		msg, err := w.fe.Receive()
		if err != nil {
			return got, fmt.Errorf("after %q: %w", got, err)
		}
		if _, ok := msg.(*pgproto3.ParameterStatus); ok {
			continue // asynchronous; may come at any time
		}
		if _, ok := msg.(*pgproto3.NoticeResponse); ok {
			continue
		}
		got = append(got, describeMsg(msg))
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			seen++
		}
	}
	return got, nil
}

// describeMsg names a reply with the parts a test asserts on (copied: the
// message is only valid until the next Receive).
func describeMsg(msg pgproto3.BackendMessage) string {
	switch m := msg.(type) {
	case *pgproto3.ParseComplete:
		return "ParseComplete"
	case *pgproto3.BindComplete:
		return "BindComplete"
	case *pgproto3.CloseComplete:
		return "CloseComplete"
	case *pgproto3.NoData:
		return "NoData"
	case *pgproto3.EmptyQueryResponse:
		return "EmptyQueryResponse"
	case *pgproto3.PortalSuspended:
		return "PortalSuspended"
	case *pgproto3.ParameterDescription:
		return fmt.Sprintf("ParameterDescription%v", m.ParameterOIDs)
	case *pgproto3.RowDescription:
		names := make([]string, len(m.Fields))
		for i, f := range m.Fields {
			names[i] = string(f.Name)
		}
		return "RowDescription[" + strings.Join(names, ",") + "]"
	case *pgproto3.DataRow:
		vals := make([]string, len(m.Values))
		for i, v := range m.Values {
			vals[i] = string(v)
		}
		return "DataRow[" + strings.Join(vals, ",") + "]"
	case *pgproto3.CommandComplete:
		return "CommandComplete[" + string(m.CommandTag) + "]"
	case *pgproto3.ErrorResponse:
		return "ErrorResponse[" + m.Code + "]"
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery[" + string(m.TxStatus) + "]"
	}
	return fmt.Sprintf("%T", msg)
}

// Messages of one extended-protocol query, as pgx and pgjdbc pipeline them.
func pbde(name, sql string, params ...[]byte) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{
		&pgproto3.Parse{Name: name, Query: sql},
		&pgproto3.Bind{PreparedStatement: name, Parameters: params},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
	}
}

func concat(parts ...[]pgproto3.FrontendMessage) []pgproto3.FrontendMessage {
	var out []pgproto3.FrontendMessage
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var syncMsg = []pgproto3.FrontendMessage{&pgproto3.Sync{}}

const (
	wireOK      = "SELECT tenant_id, count(*) FROM orders GROUP BY tenant_id"
	wireRefused = "SELECT * FROM internal_costs"
)

// okReplies is what PostgreSQL answers to pbde(wireOK) for acme.
var okReplies = []string{"ParseComplete", "BindComplete", "RowDescription[tenant_id,count]", "DataRow[acme,1000]", "CommandComplete[SELECT 1]"}

func replies(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func withWire(ctx context.Context, t *testing.T, fn func(*wireConn) error) func() error {
	return func() error {
		w, err := wireConnect(ctx, acme(t))
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer w.close()
		return fn(w)
	}
}

func wantReplies(what string, got, want []string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return sameList(what+": replies", got, want)
}

func testWire(t *testing.T) {
	ctx := testCtx(t)
	rfqI := []string{"ReadyForQuery[I]"}
	check(t, "wire", "pipeline", withWire(ctx, t, func(w *wireConn) error {
		got, err := w.roundTrip(2, concat(pbde("", wireOK), syncMsg, pbde("", wireOK), syncMsg)...)
		return wantReplies("P/B/D/E/S twice", got, replies(okReplies, rfqI, okReplies, rfqI), err)
	}))
	check(t, "wire", "pipeline-refused", withWire(ctx, t, func(w *wireConn) error {
		// A refused Parse fails its whole sync group: PostgreSQL skips the
		// Bind/Describe/Execute after an error and answers the Sync.
		got, err := w.roundTrip(3, concat(pbde("", wireOK), syncMsg, pbde("", wireRefused), syncMsg, pbde("", wireOK), syncMsg)...)
		return wantReplies("ok, refused, ok (each synced)", got,
			replies(okReplies, rfqI, []string{"ErrorResponse[42501]"}, rfqI, okReplies, rfqI), err)
	}))
	check(t, "wire", "pipeline-one-sync", withWire(ctx, t, func(w *wireConn) error {
		// pgx batches and pgjdbc batches send one Sync for several queries:
		// after the error, nothing until the Sync is answered.
		got, err := w.roundTrip(1, concat(pbde("", wireOK), pbde("", wireRefused), pbde("", wireOK), syncMsg)...)
		if err := wantReplies("ok, refused, ok, one Sync", got, replies(okReplies, []string{"ErrorResponse[42501]"}, rfqI), err); err != nil {
			return err
		}
		got, err = w.roundTrip(1, concat(pbde("", wireOK), syncMsg)...)
		return wantReplies("next query", got, replies(okReplies, rfqI), err)
	}))
	check(t, "wire", "empty-query", withWire(ctx, t, func(w *wireConn) error {
		// pgjdbc's Connection.isValid (HikariCP's liveness check) sends an empty
		// query over the extended protocol; psql sends one for a lone ";".
		got, err := w.roundTrip(1, &pgproto3.Query{String: ""})
		if err := wantReplies("simple empty query", got, []string{"EmptyQueryResponse", "ReadyForQuery[I]"}, err); err != nil {
			return err
		}
		got, err = w.roundTrip(1, concat(pbde("", ""), syncMsg)...)
		return wantReplies("extended empty query", got, []string{"ParseComplete", "BindComplete", "NoData", "EmptyQueryResponse", "ReadyForQuery[I]"}, err)
	}))
	check(t, "wire", "named-statement", withWire(ctx, t, func(w *wireConn) error {
		// Parse a named statement, describe it, then bind it twice with
		// different parameters: the tenant filter holds for both.
		q := "SELECT count(*) FROM orders WHERE tenant_id = $1"
		got, err := w.roundTrip(1, &pgproto3.Parse{Name: "s1", Query: q, ParameterOIDs: []uint32{25}},
			&pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
		if err := wantReplies("Parse+Describe S", got, []string{"ParseComplete", "ParameterDescription[25]", "RowDescription[count]", "ReadyForQuery[I]"}, err); err != nil {
			return err
		}
		got, err = w.roundTrip(1,
			&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("acme")}}, &pgproto3.Execute{},
			&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("globex")}}, &pgproto3.Execute{},
			&pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
		return wantReplies("Bind+Execute twice, Close", got, []string{"BindComplete", "DataRow[1000]", "CommandComplete[SELECT 1]",
			"BindComplete", "DataRow[0]", "CommandComplete[SELECT 1]", "CloseComplete", "ReadyForQuery[I]"}, err)
	}))
	check(t, "wire", "portal-suspended", withWire(ctx, t, func(w *wireConn) error {
		// pgjdbc's setFetchSize: Execute with a row limit inside a transaction.
		got, err := w.roundTrip(1, &pgproto3.Query{String: "BEGIN"})
		if err := wantReplies("BEGIN", got, []string{"CommandComplete[BEGIN]", "ReadyForQuery[T]"}, err); err != nil {
			return err
		}
		got, err = w.roundTrip(1, &pgproto3.Parse{Query: "SELECT DISTINCT tenant_id FROM customers UNION ALL SELECT tenant_id FROM tenants"},
			&pgproto3.Bind{DestinationPortal: "c1"}, &pgproto3.Execute{Portal: "c1", MaxRows: 1}, &pgproto3.Sync{})
		if err := wantReplies("Execute with MaxRows 1", got, []string{"ParseComplete", "BindComplete", "DataRow[acme]", "PortalSuspended", "ReadyForQuery[T]"}, err); err != nil {
			return err
		}
		got, err = w.roundTrip(1, &pgproto3.Execute{Portal: "c1", MaxRows: 5}, &pgproto3.Sync{})
		if err := wantReplies("Execute the rest", got, []string{"DataRow[acme]", "CommandComplete[SELECT 1]", "ReadyForQuery[T]"}, err); err != nil {
			return err
		}
		got, err = w.roundTrip(1, &pgproto3.Query{String: "COMMIT"})
		return wantReplies("COMMIT", got, []string{"CommandComplete[COMMIT]", "ReadyForQuery[I]"}, err)
	}))
	check(t, "wire", "refused-in-transaction", withWire(ctx, t, func(w *wireConn) error {
		got, err := w.roundTrip(1, &pgproto3.Query{String: "BEGIN"})
		if err := wantReplies("BEGIN", got, []string{"CommandComplete[BEGIN]", "ReadyForQuery[T]"}, err); err != nil {
			return err
		}
		got, err = w.roundTrip(1, concat(pbde("", wireRefused), syncMsg)...)
		if err := wantReplies("refused in a transaction", got, []string{"ErrorResponse[42501]", "ReadyForQuery[E]"}, err); err != nil {
			return err
		}
		got, err = w.roundTrip(1, concat(pbde("", wireOK), syncMsg)...)
		if err := wantReplies("query in a failed transaction", got, []string{"ErrorResponse[25P02]", "ReadyForQuery[E]"}, err); err != nil {
			return err
		}
		got, err = w.roundTrip(1, &pgproto3.Query{String: "ROLLBACK"})
		if err := wantReplies("ROLLBACK", got, []string{"CommandComplete[ROLLBACK]", "ReadyForQuery[I]"}, err); err != nil {
			return err
		}
		got, err = w.roundTrip(1, &pgproto3.Query{String: "SELECT 1 AS one; SELECT * FROM internal_costs; SELECT 2 AS two"})
		// A multi-statement simple query: PostgreSQL runs the first statement and
		// stops at the error; the proxy refuses the whole string before it runs.
		if err == nil && len(got) > 0 && got[0] == "ErrorResponse[42501]" {
			return wantReplies("multi-statement with a refusal", got, []string{"ErrorResponse[42501]", "ReadyForQuery[I]"}, err)
		}
		return wantReplies("multi-statement with a refusal", got, []string{"RowDescription[one]", "DataRow[1]", "CommandComplete[SELECT 1]", "ErrorResponse[42501]", "ReadyForQuery[I]"}, err)
	}))
}
