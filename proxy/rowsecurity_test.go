package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// The pass-through fixture: a warehouse whose own row-level security keys on
// the role pgwarden sets (<db>_<tenant>) and on the settings app.tenant and
// request.jwt.claims. The service account may read none of the tables
// itself, so a statement that ever ran without the session's role would
// fail or see nothing rather than see another tenant's rows.
const rlsFixture = `
CREATE TABLE docs (tenant_id text NOT NULL, id int NOT NULL, body text NOT NULL);
INSERT INTO docs VALUES ('acme', 1, 'a1'), ('acme', 2, 'a2'), ('globex', 3, 'g1'), ('globex', 4, 'g2'),
  ('initech', 5, 'i1'), ('initech', 6, 'i2');
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
-- Keyed on both: the role, and the tenant setting.
CREATE POLICY docs_tenant ON docs USING (current_user = current_database() || '_' || tenant_id
  AND tenant_id = current_setting('app.tenant', true));
CREATE TABLE notes (tenant_id text NOT NULL, note text NOT NULL);
INSERT INTO notes VALUES ('acme', 'n-acme'), ('globex', 'n-globex'), ('initech', 'n-initech');
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
-- PostgREST style: the JWT claims as JSON.
CREATE POLICY notes_claims ON notes USING (tenant_id = current_setting('request.jwt.claims', true)::json->>'tenant');
CREATE VIEW whoami AS SELECT current_user::text AS role_name, coalesce(current_setting('app.tenant', true), '') AS tenant,
  coalesce(current_setting('request.jwt.claims', true), '') AS claims;
`

const rlsPolicy = `
row_security:
  role: "DB_{{tenant}}"
  settings: { prefix: app, claims: request.jwt.claims }
relations:
  public.docs: { tenancy: passthrough, tenant_column: tenant_id }
  public.notes: { tenancy: passthrough, rewrite: false }
  public.whoami: { shared: true }
`

var rlsTenants = []string{"acme", "globex", "initech"}

// startRLSProxy serves warehouse "wh" over the fixture with the real
// rewriter, its service account a role of its own granted the tenants'.
func startRLSProxy(t testing.TB, mode pool.Mode, size int) *testProxy {
	return startRLSProxyWith(t, mode, size, rlsPolicy)
}

func startRLSProxyWith(t testing.TB, mode pool.Mode, size int, policyYAML string) *testProxy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var dbURL, db, svc string
	t.Cleanup(func() {
		// The roles are the cluster's: dropped after the database is.
		if db == "" || pgtest.Cluster() == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a, err := pgx.Connect(ctx, pgtest.ServerURL(t))
		if err != nil {
			return
		}
		defer a.Close(ctx)
		for _, tn := range rlsTenants {
			a.Exec(ctx, fmt.Sprintf("DROP ROLE IF EXISTS %s_%s", db, tn))
		}
		a.Exec(ctx, "DROP ROLE IF EXISTS "+svc)
	})
	tp := startProxyTB(t, func(cfg *Config, deps *Deps) {
		dbURL = deps.Warehouses["wh"].DSN
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		db = strings.TrimPrefix(u.Path, "/")
		svc = db + "_svc"
		admin, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		setup := rlsFixture + fmt.Sprintf(`CREATE ROLE %[1]s LOGIN PASSWORD 'svc' NOSUPERUSER NOBYPASSRLS;
GRANT CONNECT ON DATABASE %[2]s TO %[1]s; GRANT SELECT ON orders TO %[1]s;`, svc, db)
		for _, tn := range rlsTenants {
			setup += fmt.Sprintf("CREATE ROLE %[1]s_%[2]s NOLOGIN; GRANT SELECT ON docs, notes, whoami, orders TO %[1]s_%[2]s; GRANT %[1]s_%[2]s TO %[3]s;\n", db, tn, svc)
		}
		if _, err := admin.Exec(ctx, setup); err != nil {
			t.Fatal(err)
		}
		pol, err := policy.Parse([]byte(strings.ReplaceAll(policyYAML, "DB_", db+"_")), "policy.yaml")
		if err != nil {
			t.Fatal(err)
		}
		// As pgwarden loads it: as the service account, which checks
		// that the warehouse guards the passthrough relations.
		u.User = url.UserPassword(svc, "svc")
		svcConn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer svcConn.Close(ctx)
		cat, err := policy.LoadCatalog(ctx, svcConn, pol)
		if err != nil {
			t.Fatal(err)
		}
		rw, err := rewrite.New(pol, cat, rewrite.Options{Database: "wh"})
		if err != nil {
			t.Fatal(err)
		}
		w := NewWarehouse("wh", u.String(), rw)
		w.Pool = pool.Config{Mode: mode, Size: size}
		deps.Warehouses["wh"] = w
		fa := deps.Authenticator.(*fakeAuth)
		for _, tn := range append(rlsTenants, "umbrella") {
			fa.sessions["tok-rls-"+tn] = &auth.Session{ID: "s-rls-" + tn, Kind: policy.KindEmbed, Tenant: tn, ExternalID: "u-" + tn,
				Groups: []string{"g"}, ConnectionRoles: map[string]policy.Role{"wh": policy.RoleQuerier}, ExpiresAt: time.Now().Add(time.Hour)}
		}
	})
	tp.dbURL = dbURL
	return tp
}

// whoami is what the warehouse says a connection runs as.
type whoami struct{ role, tenant, claims string }

func readWhoami(ctx context.Context, c *pgconn.PgConn) (whoami, error) {
	rows, err := c.Exec(ctx, "SELECT role_name, tenant, claims FROM whoami").ReadAll()
	if err != nil {
		return whoami{}, err
	}
	if len(rows) != 1 || len(rows[0].Rows) != 1 {
		return whoami{}, fmt.Errorf("whoami: %d results", len(rows))
	}
	r := rows[0].Rows[0]
	return whoami{string(r[0]), string(r[1]), string(r[2])}, nil
}

// checkOwn asserts that c runs as tenant and sees only tenant's rows.
func checkOwn(ctx context.Context, c *pgconn.PgConn, db, tenant string) error {
	w, err := readWhoami(ctx, c)
	if err != nil {
		return err
	}
	if w.role != db+"_"+tenant || w.tenant != tenant || !strings.Contains(w.claims, `"tenant":"`+tenant+`"`) {
		return fmt.Errorf("whoami = %+v, want role %s_%s, tenant %s", w, db, tenant, tenant)
	}
	rr := c.ExecParams(ctx, "SELECT d.tenant_id, n.tenant_id FROM docs d CROSS JOIN notes n", nil, nil, nil, nil).Read()
	if rr.Err != nil {
		return rr.Err
	}
	if len(rr.Rows) != 2 {
		return fmt.Errorf("docs x notes: %d rows, want 2", len(rr.Rows))
	}
	for _, r := range rr.Rows {
		if string(r[0]) != tenant || string(r[1]) != tenant {
			return fmt.Errorf("tenant %s saw (%s, %s)", tenant, r[0], r[1])
		}
	}
	return nil
}

func rlsDB(t testing.TB, tp *testProxy) string {
	u, err := url.Parse(tp.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func forModes(t *testing.T, f func(t *testing.T, mode pool.Mode)) {
	for _, mode := range []pool.Mode{pool.Transaction, pool.Session} {
		t.Run(string(mode), func(t *testing.T) { f(t, mode) })
	}
}

func TestRowSecurityPassthrough(t *testing.T) {
	forModes(t, func(t *testing.T, mode pool.Mode) {
		tp := startRLSProxy(t, mode, 2)
		ctx := ctxT(t)
		db := rlsDB(t, tp)
		for _, tn := range rlsTenants {
			c := tp.connect(t, ctx, "tok-rls-"+tn)
			if err := checkOwn(ctx, c, db, tn); err != nil {
				t.Fatalf("%s: %v", tn, err)
			}
			// current_user answers the session's role; the claims are JSON.
			rows, err := c.Exec(ctx, "SELECT current_user, claims::json->>'sub', claims::json->'groups'->>0 FROM whoami").ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if got := rows[0].Rows[0]; string(got[0]) != db+"_"+tn || string(got[1]) != "u-"+tn || string(got[2]) != "g" {
				t.Errorf("%s: current_user, sub, groups[0] = %s, %s, %s", tn, got[0], got[1], got[2])
			}
		}
		// A tenant the warehouse has no role for cannot log in.
		_, err := pgconn.Connect(ctx, tp.url("tok-rls-umbrella", "wh", ""))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Severity != "FATAL" || !strings.Contains(pe.Message, "cannot take on this session's row security role") {
			t.Errorf("login of a tenant without a role: %v", err)
		}
	})
}

// TestRowSecurityTampering tries every way a client might change what the
// warehouse's policies read; none may widen what it sees.
func TestRowSecurityTampering(t *testing.T) {
	forModes(t, func(t *testing.T, mode pool.Mode) {
		tp := startRLSProxy(t, mode, 2)
		ctx := ctxT(t)
		db := rlsDB(t, tp)
		c := tp.connect(t, ctx, "tok-rls-acme")
		// Another tenant keeps the pool busy between our transactions.
		other := tp.connect(t, ctx, "tok-rls-globex")
		// Startup options and parameters naming the role or the settings
		// are ignored.
		opts := url.QueryEscape(fmt.Sprintf("-c role=%s_globex -c app.tenant=globex", db))
		sc, err := pgconn.Connect(ctx, tp.url("tok-rls-acme", "wh", "options="+opts+"&role="+db+"_globex&app.tenant=globex"))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkOwn(ctx, sc, db, "acme"); err != nil {
			t.Errorf("with startup options: %v", err)
		}
		sc.Close(ctx)
		refused := []string{
			"SET role = " + db + "_globex",
			"SET ROLE " + db + "_globex",
			"SET LOCAL ROLE " + db + "_globex",
			"RESET ROLE",
			"SET SESSION AUTHORIZATION " + db + "_svc",
			"RESET SESSION AUTHORIZATION",
			"SET app.tenant = 'globex'",
			"SET LOCAL app.tenant = 'globex'",
			"RESET app.tenant",
			`SET request.jwt.claims = '{"tenant":"globex"}'`,
			"RESET ALL",
			"DISCARD ALL",
			"SELECT set_config('app.tenant', 'globex', false)",
			"SELECT pg_catalog.set_config('role', '" + db + "_globex', true)",
			`SELECT set_config('request.jwt.claims', '{"tenant":"globex"}', true)`,
			"SELECT current_setting('app.tenant')",
			"SELECT * FROM docs, set_config('app.tenant', 'globex', true)",
		}
		for _, sql := range refused {
			_, err := c.Exec(ctx, sql).ReadAll()
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || (pe.Code != "42501" && pe.Code != "0A000" && pe.Code != "42883") {
				t.Errorf("%s: err = %v, want a refusal", sql, err)
			}
			if err := checkOwn(ctx, c, db, "acme"); err != nil {
				t.Fatalf("after %s: %v", sql, err)
			}
			if err := checkOwn(ctx, other, db, "globex"); err != nil {
				t.Fatalf("globex after acme's %s: %v", sql, err)
			}
		}
		steps := []struct {
			name string
			sql  []string
		}{
			{"savepoint rollback", []string{"BEGIN", "SAVEPOINT s", "SELECT 1", "ROLLBACK TO SAVEPOINT s"}},
			{"aborted transaction", []string{"BEGIN", "SELECT 1/0"}},
			{"rolled back", []string{"ROLLBACK"}},
			{"commit then more in one query", []string{"BEGIN; SELECT 1; COMMIT; SELECT role_name FROM whoami"}},
		}
		for _, st := range steps {
			for _, sql := range st.sql {
				c.Exec(ctx, sql).ReadAll() // errors are part of the attack
			}
			if st.name == "aborted transaction" {
				continue // checked after the rollback
			}
			if err := checkOwn(ctx, c, db, "acme"); err != nil {
				t.Fatalf("after %s: %v", st.name, err)
			}
		}
		// A multi-statement query that ends a transaction and runs on.
		rr, err := c.Exec(ctx, "BEGIN; SELECT role_name FROM whoami; COMMIT; SELECT role_name, tenant FROM whoami; SELECT tenant_id FROM docs").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(rr[3].Rows[0][0]) + "/" + string(rr[3].Rows[0][1]); got != db+"_acme/acme" {
			t.Errorf("after COMMIT in one query: %s", got)
		}
		for _, r := range rr[4].Rows {
			if string(r[0]) != "acme" {
				t.Errorf("after COMMIT in one query: saw %s", r[0])
			}
		}
		// Pipelined Parse/Bind/Execute across transactions (several Syncs
		// in one write): each transaction runs as the session.
		pl := c.StartPipeline(ctx)
		for i := 0; i < 3; i++ {
			pl.SendQueryParams("SELECT role_name, tenant FROM whoami", nil, nil, nil, nil)
			pl.SendQueryParams("SELECT tenant_id FROM docs WHERE id > $1", [][]byte{[]byte("0")}, nil, nil, nil)
			pl.SendPipelineSync()
		}
		if err := pl.Flush(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			for j := 0; j < 2; j++ {
				res, err := pl.GetResults()
				if err != nil {
					t.Fatal(err)
				}
				rr := res.(*pgconn.ResultReader).Read()
				if rr.Err != nil {
					t.Fatal(rr.Err)
				}
				for _, r := range rr.Rows {
					if want := []string{db + "_acme", "acme"}[j]; string(r[0]) != want {
						t.Errorf("pipelined transaction %d: %s, want %s", i, r[0], want)
					}
				}
			}
			if res, err := pl.GetResults(); err != nil {
				t.Fatal(err)
			} else if _, ok := res.(*pgconn.PipelineSync); !ok {
				t.Fatalf("got %T, want the Sync", res)
			}
		}
		if err := pl.Close(); err != nil {
			t.Fatal(err)
		}
		// A cursor WITH HOLD outlives its transaction with the rows it
		// was declared over, and keeps its connection to itself.
		if _, err := c.Exec(ctx, "BEGIN; DECLARE h CURSOR WITH HOLD FOR SELECT tenant_id FROM docs; COMMIT").ReadAll(); err != nil {
			t.Fatal(err)
		}
		if err := checkOwn(ctx, other, db, "globex"); err != nil {
			t.Fatalf("globex while acme holds a cursor: %v", err)
		}
		rr2, err := c.Exec(ctx, "FETCH ALL FROM h").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rr2[0].Rows) != 2 {
			t.Errorf("held cursor: %d rows, want 2", len(rr2[0].Rows))
		}
		for _, r := range rr2[0].Rows {
			if string(r[0]) != "acme" {
				t.Errorf("held cursor saw %s", r[0])
			}
		}
		if _, err := c.Exec(ctx, "CLOSE h").ReadAll(); err != nil {
			t.Fatal(err)
		}
		if err := checkOwn(ctx, c, db, "acme"); err != nil {
			t.Fatal(err)
		}
		if mode == pool.Transaction {
			// The cursor pinned acme's connection for the rest of its
			// session: it is closed with it, never pooled.
			c.Close(ctx)
			checkPoolClean(t, tp, db)
		}
	})
}

// checkPoolClean takes every idle connection of the pool and checks it runs
// as the service account with no row security setting left.
func checkPoolClean(t *testing.T, tp *testProxy, db string) {
	t.Helper()
	p := tp.srv.pools["wh"]
	// A connection goes back to the pool just after its client has its
	// answer (once reset): wait for all of them.
	var n int
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st := p.Stat(); st.InUse == 0 && st.Idle > 0 || time.Now().After(deadline) {
			break
		}
	}
	n = p.Stat().Idle
	var held []*pool.Backend
	for i := 0; i < n; i++ {
		b := p.AcquireIdle("", time.Now())
		if b == nil {
			break
		}
		held = append(held, b)
		rows, err := b.Query("SELECT current_user::text, coalesce(current_setting('app.tenant', true), ''), coalesce(current_setting('request.jwt.claims', true), '')", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(rows[0], "|"); got != db+"_svc||" {
			t.Errorf("idle pooled connection runs as %q, want %q", got, db+"_svc||")
		}
	}
	for _, b := range held {
		p.Release(b, true)
	}
	if len(held) == 0 {
		t.Error("no idle connection to check")
	}
}

// TestRowSecurityManyClients: 200 clients of 3 tenants over 5 pooled
// connections never see another tenant's role, settings or rows.
func TestRowSecurityManyClients(t *testing.T) {
	forModes(t, func(t *testing.T, mode pool.Mode) {
		tp := startRLSProxy(t, mode, 5)
		ctx := ctxT(t)
		db := rlsDB(t, tp)
		// Session mode gives each client a connection of its own: five at
		// a time, so that the cluster's connection limit is not the test.
		sem := make(chan struct{}, 200)
		if mode == pool.Session {
			sem = make(chan struct{}, 5)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				tn := rlsTenants[i%3]
				c, err := pgconn.Connect(ctx, tp.url("tok-rls-"+tn, "wh", ""))
				if err != nil {
					errs <- err
					return
				}
				defer c.Close(context.Background())
				for k := 0; k < 4; k++ {
					if err := checkOwn(ctx, c, db, tn); err != nil {
						errs <- fmt.Errorf("client %d (%s): %w", i, tn, err)
						return
					}
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if mode == pool.Transaction {
			p := tp.srv.pools["wh"]
			if open := p.Stat().Open; open > 5 {
				t.Errorf("pool opened %d connections, want at most 5", open)
			}
			checkPoolClean(t, tp, db)
		}
	})
}

// TestRowSecuritySetupFails: a role revoked from the service account after
// login fails the session's transactions (42501) and shows it no rows; the
// session goes on once the grant is back.
func TestRowSecuritySetupFails(t *testing.T) {
	tp := startRLSProxy(t, pool.Transaction, 2)
	ctx := ctxT(t)
	db := rlsDB(t, tp)
	c := tp.connect(t, ctx, "tok-rls-acme")
	if err := checkOwn(ctx, c, db, "acme"); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, tp.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf("REVOKE %[1]s_acme FROM %[1]s_svc", db)); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"SELECT role_name, tenant FROM whoami", "SELECT tenant_id FROM docs"} {
		rr, err := c.Exec(ctx, sql).ReadAll()
		wantPgErr(t, err, "42501", "could not take on this session's row security role")
		for _, r := range rr {
			if len(r.Rows) > 0 {
				t.Errorf("%s: rows reached the client: %q", sql, r.Rows)
			}
		}
	}
	// Extended protocol too.
	rr := c.ExecParams(ctx, "SELECT role_name FROM whoami", nil, nil, nil, nil).Read()
	if rr.Err == nil || len(rr.Rows) > 0 {
		t.Errorf("extended protocol without the role: %v, %q", rr.Err, rr.Rows)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("GRANT %[1]s_acme TO %[1]s_svc", db)); err != nil {
		t.Fatal(err)
	}
	if err := checkOwn(ctx, c, db, "acme"); err != nil {
		t.Fatal(err)
	}
	checkPoolClean(t, tp, db)
}

// BenchmarkRowSecurity is the cost of pass-through per transaction: the
// same point query on a plain table through a warehouse without row
// security and through one with it (role and settings set ahead of the
// statement in the same write, reset and checked after the answer).
func BenchmarkRowSecurity(b *testing.B) {
	const plain = `
relations:
  public.orders: { tenant_column: tenant_id }
`
	const withRLS = `
row_security:
  role: "DB_{{tenant}}"
  settings: { prefix: app, claims: request.jwt.claims }
relations:
  public.orders: { tenant_column: tenant_id }
`
	for _, bc := range []struct{ name, pol string }{{"plain", plain}, {"passthrough", withRLS}} {
		for _, mode := range []pool.Mode{pool.Transaction, pool.Session} {
			b.Run(bc.name+"/"+string(mode), func(b *testing.B) {
				tp := startRLSProxyWith(b, mode, 2, bc.pol)
				ctx := context.Background()
				c, err := pgconn.Connect(ctx, tp.url("tok-rls-acme", "wh", ""))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close(ctx)
				b.ReportAllocs()
				for b.Loop() {
					rr := c.ExecParams(ctx, "SELECT total FROM orders WHERE order_id = $1", [][]byte{[]byte("2")}, nil, nil, nil).Read()
					if rr.Err != nil || len(rr.Rows) != 1 {
						b.Fatalf("%v, %d rows", rr.Err, len(rr.Rows))
					}
				}
			})
		}
	}
}
