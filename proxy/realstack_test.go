package proxy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden"
	"github.com/pgwarden/pgwarden/audit"
	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// The other proxy tests stand in fakeRewriter and fakeAuth for the packages
// they would wire; these run the main flows through the real ones, as cmd
// wires them: package rewrite over the demo policy and the demo warehouse's
// catalog, and package auth's tickets, sessions, verifier and revocation.

// realStack is a proxy in front of the demo warehouse ("wh") with the real
// rewriter and the real ticket service and verifier.
type realStack struct {
	tp  *testProxy
	svc *auth.Service
}

func startRealStack(t *testing.T, mode pool.Mode, opts ...func(*Config, *Deps)) *realStack {
	t.Helper()
	ctx := ctxT(t)
	whURL := pgtest.NewDatabase(t, pgwarden.DemoSchema+pgwarden.DemoData)
	pol, err := policy.Parse([]byte(pgwarden.DemoPolicy), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, whURL)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := policy.LoadCatalog(ctx, conn, pol)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := rewrite.New(pol, cat, rewrite.Options{Database: "wh"})
	if err != nil {
		t.Fatal(err)
	}

	key, err := auth.GenerateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	acfg := auth.Config{SigningKeyFile: key.PrivateKeyFile, StoreDSN: pgtest.NewDatabase(t, "")}
	open := func() *auth.Store {
		st, err := auth.Open(ctx, acfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return st
	}
	log := zaptest.NewLogger(t)
	svc, err := auth.NewService(acfg, open(), pol, log)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.LoadKeySet(acfg)
	if err != nil {
		t.Fatal(err)
	}
	// The verifier has a store of its own, as a proxy replica would.
	v, err := auth.NewVerifier(acfg, keys, open(), log)
	if err != nil {
		t.Fatal(err)
	}
	vctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.Run(vctx)
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	select {
	case <-v.Ready():
	case <-ctx.Done():
		t.Fatal("verifier not ready")
	}

	var _ Authenticator = v // the interface guard cmd relies on, here with the real type
	tp := startProxyTB(t, func(c *Config, d *Deps) {
		d.Authenticator = v
		w := NewWarehouse("wh", whURL, rw)
		w.Pool = pool.Config{Mode: mode, Size: 2}
		d.Warehouses = map[string]*Warehouse{"wh": w}
		for _, o := range opts {
			o(c, d)
		}
	})
	return &realStack{tp: tp, svc: svc}
}

// ticket mints a web-ticket for tenant with role on "wh".
func (s *realStack) ticket(t *testing.T, tenant string, role policy.Role, groups ...string) string {
	t.Helper()
	tk, _, err := s.svc.MintTicket(context.Background(), auth.TicketRequest{
		ExternalID: tenant + "-user", Tenant: tenant, Groups: groups,
		ConnectionRoles: map[string]policy.Role{"wh": role}, APIKeyName: "proxy-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// session mints a ticket and exchanges it, and returns the session token and id.
func (s *realStack) session(t *testing.T, tenant string, role policy.Role, groups ...string) (token, sid string) {
	t.Helper()
	sess, token, err := s.svc.ExchangeTicket(context.Background(), s.ticket(t, tenant, role, groups...))
	if err != nil {
		t.Fatal(err)
	}
	return token, sess.ID
}

func inPoolModes(t *testing.T, body func(t *testing.T, s *realStack)) {
	for _, mode := range []pool.Mode{pool.Session, pool.Transaction} {
		t.Run(string(mode), func(t *testing.T) { body(t, startRealStack(t, mode)) })
	}
}

func scalarOf[T any](t *testing.T, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// Simple and extended protocol through the real rewriter: the tenant fence,
// masks by group, and parameters bound inside the fence.
func TestRealStackQueries(t *testing.T) {
	inPoolModes(t, func(t *testing.T, s *realStack) {
		ctx := ctxT(t)
		token, _ := s.session(t, "acme", policy.RoleQuerier)
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec} {
			conn := connectPgx(t, ctx, s.tp, token, mode)
			if got := scalarOf[string](t, conn, "SELECT string_agg(DISTINCT tenant_id, ',') FROM orders"); got != "acme" {
				t.Errorf("%v: tenants in orders = %q, want acme", mode, got)
			}
			if got := scalarOf[int64](t, conn, "SELECT count(*) FROM customers"); got != 200 {
				t.Errorf("%v: acme customers = %d, want 200", mode, got)
			}
			// Customer 1 exists for every tenant: the parameter does not reach past the fence.
			if got := scalarOf[string](t, conn, "SELECT email FROM customers WHERE customer_id = $1", 1); got != "***@acme.example" {
				t.Errorf("%v: email of customer 1 = %q, want acme's, masked", mode, got)
			}
		}
		piiToken, _ := s.session(t, "globex", policy.RoleQuerier, "pii")
		pii := connectPgx(t, ctx, s.tp, piiToken, pgx.QueryExecModeCacheStatement)
		if got := scalarOf[string](t, pii, "SELECT email FROM customers WHERE customer_id = $1", 1); got != "bob.1@globex.example" {
			t.Errorf("pii session: email of customer 1 = %q, want globex's unmasked", got)
		}
	})
}

// Three tenants share a pool of two warehouse connections in transaction
// mode (and have one each in session mode): each transaction sees only its
// own tenant, whichever connection it lands on.
func TestRealStackPooled(t *testing.T) {
	inPoolModes(t, func(t *testing.T, s *realStack) {
		ctx := ctxT(t)
		want := map[string]int64{"acme": 1000, "globex": 750, "initech": 500}
		conns := map[string]*pgx.Conn{}
		for tenant := range want {
			token, _ := s.session(t, tenant, policy.RoleQuerier)
			conns[tenant] = connectPgx(t, ctx, s.tp, token, pgx.QueryExecModeCacheStatement)
		}
		for round := 0; round < 3; round++ {
			for tenant, conn := range conns {
				tx, err := conn.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var n int64
				var tenants string
				if err := tx.QueryRow(ctx, "SELECT count(*), string_agg(DISTINCT tenant_id, ',') FROM orders").Scan(&n, &tenants); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				if n != want[tenant] || tenants != tenant {
					t.Errorf("round %d, %s: %d orders of %q, want %d of %s", round, tenant, n, tenants, want[tenant], tenant)
				}
			}
		}
	})
}

// Refusals come from the real policy, leave the connection usable, and a
// ticket works once as a password.
func TestRealStackRefused(t *testing.T) {
	inPoolModes(t, func(t *testing.T, s *realStack) {
		ctx := ctxT(t)
		token, _ := s.session(t, "acme", policy.RoleQuerier)
		c := s.tp.connect(t, ctx, token)
		for _, tc := range []struct{ sql, code string }{
			{"SELECT * FROM internal_costs", "42501"}, // not in the policy
			{"SELECT phone FROM customers", "42501"},  // denied without group pii
			{"SET search_path = other", "42501"},
			{"DELETE FROM orders", "42501"},
		} {
			_, err := c.Exec(ctx, tc.sql).ReadAll()
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Errorf("%s: %v, want SQLSTATE %s", tc.sql, err, tc.code)
			}
		}
		if res, err := c.Exec(ctx, "SELECT count(*) FROM orders").ReadAll(); err != nil || string(res[0].Rows[0][0]) != "1000" {
			t.Errorf("after the refusals: %v %v, want 1000 orders", res, err)
		}

		// A viewer sees published relations only: events is not.
		viewerToken, _ := s.session(t, "acme", policy.RoleViewer)
		v := s.tp.connect(t, ctx, viewerToken)
		_, err := v.Exec(ctx, "SELECT count(*) FROM events").ReadAll()
		wantPgErr(t, err, "42501", "events")

		// A fresh ticket is a password once.
		tk := s.ticket(t, "initech", policy.RoleQuerier)
		s.tp.connect(t, ctx, tk)
		if _, err := pgconn.Connect(ctx, s.tp.url(tk, "wh", "")); err == nil {
			t.Error("a ticket worked twice as a password")
		} else {
			wantPgErr(t, err, "28P01", "ticket already used")
		}
		if _, err := pgconn.Connect(ctx, s.tp.url("not-a-token", "wh", "")); err == nil {
			t.Error("a made-up password was accepted")
		}
	})
}

// Revoking a session in the ticket store closes its open connection and
// refuses new ones.
func TestRealStackRevoked(t *testing.T) {
	inPoolModes(t, func(t *testing.T, s *realStack) {
		ctx := ctxT(t)
		token, sid := s.session(t, "globex", policy.RoleQuerier)
		c := s.tp.connect(t, ctx, token)
		other, _ := s.session(t, "globex", policy.RoleQuerier)
		bystander := s.tp.connect(t, ctx, other)
		if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
		if err := s.svc.RevokeSession(ctx, sid, ""); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := c.Exec(ctx, "SELECT 1").ReadAll()
			if err != nil {
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code != "28000" {
					t.Errorf("revoked session's statement: %v, want FATAL 28000 or a closed connection", err)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("revoked session still served 10s after revocation")
			}
			time.Sleep(20 * time.Millisecond)
		}
		_, err := pgconn.Connect(ctx, s.tp.url(token, "wh", ""))
		wantPgErr(t, err, "28P01", "revoked")
		if _, err := bystander.Exec(ctx, "SELECT count(*) FROM orders").ReadAll(); err != nil {
			t.Errorf("another session of the same tenant after the revocation: %v", err)
		}
	})
}

// keepSink keeps every audit record it is handed, as a store's batching
// sink does past the statement.
type keepSink struct {
	mu   sync.Mutex
	recs []*audit.Record
}

func (k *keepSink) Add(r *audit.Record) {
	k.mu.Lock()
	k.recs = append(k.recs, r)
	k.mu.Unlock()
}

// Simple queries of one shape, which the template answers into the
// session's room for it (reusableHit), one after another and pipelined:
// every answer is its own statement's, and so is every audit record that a
// sink keeps after the room has held the statements after it.
func TestRealStackSimpleQueriesReuseTheirRoom(t *testing.T) {
	for _, mode := range []pool.Mode{pool.Session, pool.Transaction} {
		t.Run(string(mode), func(t *testing.T) { simpleQueriesReuseTheirRoom(t, mode) })
	}
}

func simpleQueriesReuseTheirRoom(t *testing.T, mode pool.Mode) {
	sink := &keepSink{}
	var out syncBuffer
	s := startRealStack(t, mode, func(_ *Config, d *Deps) { d.Audit = NewAuditLogTo(audit.New(&out, sink), true) })
	ctx := ctxT(t)
	token, _ := s.session(t, "acme", policy.RoleQuerier)
	conn := connectPgx(t, ctx, s.tp, token, pgx.QueryExecModeSimpleProtocol)
	query := func(id int) string {
		return fmt.Sprintf("SELECT order_id, customer_id FROM orders WHERE order_id = %d", id)
	}
	want := func(id int) string { return fmt.Sprintf("%d,%d", id, (id-1)/5+1) }
	var ran []int
	for id := 1; id <= 8; id++ {
		var oid, cust int
		if err := conn.QueryRow(ctx, query(id)).Scan(&oid, &cust); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%d,%d", oid, cust); got != want(id) {
			t.Errorf("one at a time, order %d: got %s, want %s", id, got, want(id))
		}
		ran = append(ran, id)
	}
	// Pipelined: five Queries before any answer.
	_, fe := hijacked(t, ctx, s.tp.url(token, "wh", ""), 30*time.Second)
	ids := []int{21, 22, 23, 24, 25}
	for _, id := range ids {
		fe.Send(&pgproto3.Query{String: query(id)})
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ids); {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			if got := string(m.Values[0]) + "," + string(m.Values[1]); got != want(ids[i]) {
				t.Errorf("pipelined, order %d: got %s, want %s", ids[i], got, want(ids[i]))
			}
		case *pgproto3.ErrorResponse:
			t.Fatalf("pipelined, order %d: %s %s", ids[i], m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			ran = append(ran, ids[i])
			i++
		}
	}
	conn.Close(ctx)
	// Then the records, each of its own order id.
	ids = nil
	idRe := regexp.MustCompile(`order_id = (\d+)`)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, r := range sink.recs {
		if !strings.HasPrefix(r.SQL, "SELECT order_id, customer_id FROM orders") {
			continue
		}
		own := idRe.FindStringSubmatch(r.SQL)[1]
		ms := idRe.FindAllStringSubmatch(r.Rewritten, -1)
		if len(ms) == 0 {
			t.Errorf("record of order %s: rewritten %q", own, r.Rewritten)
		}
		for _, m := range ms {
			if m[1] != own {
				t.Errorf("record of order %s: rewritten %q", own, r.Rewritten)
				break
			}
		}
		n, _ := strconv.Atoi(own)
		ids = append(ids, n)
	}
	if !slices.Equal(ids, ran) {
		t.Errorf("records of orders %v, want %v", ids, ran)
	}
}
