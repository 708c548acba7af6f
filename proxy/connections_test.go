package proxy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// waitConn polls the server's connections until f holds for them.
func waitConn(t *testing.T, tp *testProxy, what string, f func([]ConnInfo) bool) []ConnInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cs := tp.srv.Connections()
		if f(cs) {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: connections %+v", what, cs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func byApp(cs []ConnInfo, app string) *ConnInfo {
	for i := range cs {
		if cs[i].ApplicationName == app {
			return &cs[i]
		}
	}
	return nil
}

// A snapshot names each client connection's state (idle, idle in
// transaction, active with its statement, waiting for a pooled
// connection), and CancelConnection cancels what it runs or waits for as a
// CancelRequest does.
func TestConnectionsSnapshot(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 1, AcquireTimeout: time.Minute}, nil)
	ctx := ctxT(t)
	open := func(app string) *pgx.Conn {
		conn, err := pgx.Connect(ctx, tp.url("tok-acme", "wh", "application_name="+app))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	a, b := open("a"), open("b")
	if _, err := a.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	bDone := make(chan error, 1)
	go func() { _, err := b.Exec(ctx, "SELECT 2"); bDone <- err }()
	cs := waitConn(t, tp, "a idle in transaction, b waiting", func(cs []ConnInfo) bool {
		ca, cb := byApp(cs, "a"), byApp(cs, "b")
		return ca != nil && cb != nil && ca.State == StateIdleInTx && cb.State == StateWaitingForCon
	})
	ca := byApp(cs, "a")
	if ca.Session != "s-acme" || ca.Tenant != "acme" || ca.Warehouse != "wh" || ca.Statement != "" || ca.StatementStartedAt != nil ||
		!strings.HasPrefix(ca.ClientAddr, "127.0.0.1:") || ca.ConnectedAt.IsZero() || ca.ID == byApp(cs, "b").ID {
		t.Errorf("a: %+v", ca)
	}

	// b's wait ends with 57014.
	if err := tp.srv.CancelConnection(ctx, byApp(cs, "b").ID, nil); err != nil {
		t.Fatal(err)
	}
	wantPgErr(t, <-bDone, "57014", "")

	// a runs a long statement: active, with its text and start.
	aDone := make(chan error, 1)
	go func() { _, err := a.Exec(ctx, "SELECT pg_sleep(30)"); aDone <- err }()
	cs = waitConn(t, tp, "a active", func(cs []ConnInfo) bool { c := byApp(cs, "a"); return c != nil && c.State == StateActive })
	// Cancelled only once the warehouse runs it: a statement is active as
	// soon as it is queued, and a cancel that reaches the warehouse before
	// the statement does is lost there, as on PostgreSQL (seen under load).
	running := activeStatements(t, ctx, tp.dbURL, "SELECT pg_sleep(30)")
	for i := 0; running() == 0; i++ {
		if i > 500 {
			t.Fatal("the statement never started on the warehouse")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ca = byApp(cs, "a")
	if ca.Statement != "SELECT pg_sleep(30)" || ca.StatementStartedAt == nil || time.Since(*ca.StatementStartedAt) > time.Minute {
		t.Errorf("active: %+v", ca)
	}
	refuse := func(s *auth.Session) bool { return s.Tenant != "acme" }
	if err := tp.srv.CancelConnection(ctx, ca.ID, refuse); !errors.Is(err, ErrCancelRefused) {
		t.Errorf("refused cancel: %v", err)
	}
	if err := tp.srv.CancelConnection(ctx, ca.ID, nil); err != nil {
		t.Fatal(err)
	}
	wantPgErr(t, <-aDone, "57014", "")
	if _, err := a.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	waitConn(t, tp, "both idle", func(cs []ConnInfo) bool {
		ca, cb := byApp(cs, "a"), byApp(cs, "b")
		return ca != nil && cb != nil && ca.State == StateIdle && cb.State == StateIdle
	})
	if err := tp.srv.CancelConnection(ctx, 1<<40, nil); !errors.Is(err, ErrConnNotFound) {
		t.Errorf("unknown connection: %v", err)
	}
	id := ca.ID
	a.Close(ctx)
	waitConn(t, tp, "a gone", func(cs []ConnInfo) bool { return byApp(cs, "a") == nil })
	if err := tp.srv.CancelConnection(ctx, id, nil); !errors.Is(err, ErrConnNotFound) {
		t.Errorf("closed connection: %v", err)
	}
}

func TestTruncateUTF8(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"aé", 2, "a"}, {"aéb", 3, "aé"}, {"日本", 4, "日"}, {"", 0, ""},
	} {
		got := truncateUTF8(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
