package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/config"
)

// The statements of issue 20's section 2, end to end: the demo served
// in-process, real clients over loopback, in both pool modes.

var poolModes = []string{"session", "transaction"}

func startServeMode(t *testing.T, mode string, size int) *running {
	t.Helper()
	return startServeWith(t, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)), func(cfg *config.File) {
		w := cfg.Warehouses[demoWarehouse]
		w.Pool.Mode = mode
		if size > 0 {
			w.Pool.Size = size
		}
		cfg.Warehouses[demoWarehouse] = w
	})
}

// acmeToken mints a querier session of tenant acme outside group pii.
func (r *running) acmeToken(t *testing.T) string {
	t.Helper()
	token, _, err := r.app.mintSession(context.Background(), sessionRequest{Tenant: "acme", ExternalID: "a",
		Roles: map[string]string{demoWarehouse: "querier"}})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func (r *running) url(token string) string {
	return "postgres://someone:" + token + "@" + r.cfg.Proxy.Listen + "/" + demoWarehouse + "?sslmode=disable"
}

// copyOut runs a COPY ... TO STDOUT in the simple protocol (pgx's CopyTo).
func copyOut(t *testing.T, conn *pgx.Conn, sql string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	_, err := conn.PgConn().CopyTo(context.Background(), &buf, sql)
	return buf.String(), err
}

func csvRecords(t *testing.T, data string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v\n%.300s", err, data)
	}
	return recs
}

func TestCopyToStdout(t *testing.T) {
	for _, mode := range poolModes {
		t.Run(mode, func(t *testing.T) {
			r := startServeMode(t, mode, 0)
			conn := r.acmeConn(t)
			customers := scalar[int64](t, conn, "SELECT count(*) FROM customers")
			orders := scalar[int64](t, conn, "SELECT count(*) FROM orders")
			if customers == 0 || orders == 0 {
				t.Fatalf("acme has %d customers and %d orders", customers, orders)
			}

			// A relation's COPY: SELECT *'s columns (phone denied, email masked).
			out, err := copyOut(t, conn, "COPY customers TO STDOUT WITH (FORMAT csv, HEADER)")
			if err != nil {
				t.Fatal(err)
			}
			recs := csvRecords(t, out)
			if got := strings.Join(recs[0], ","); got != "tenant_id,customer_id,name,email,country,created_at" {
				t.Errorf("header %q: want SELECT *'s columns without phone", got)
			}
			if int64(len(recs)-1) != customers {
				t.Errorf("COPY customers: %d rows, acme has %d", len(recs)-1, customers)
			}
			for _, rec := range recs[1:] {
				if rec[0] != "acme" || !strings.HasPrefix(rec[3], "***@") {
					t.Fatalf("row of another tenant or unmasked: %q", rec)
				}
			}

			// A query's COPY, text format.
			out, err = copyOut(t, conn, "COPY (SELECT tenant_id, order_id FROM orders) TO STDOUT")
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if int64(len(lines)) != orders {
				t.Errorf("COPY (SELECT ... FROM orders): %d rows, acme has %d", len(lines), orders)
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "acme\t") {
					t.Fatalf("row of another tenant: %q", l)
				}
			}

			// Binary, with a column list.
			out, err = copyOut(t, conn, "COPY orders (order_id, total) TO STDOUT (FORMAT binary)")
			if err != nil || !strings.HasPrefix(out, "PGCOPY\n\xff\r\n\x00") {
				t.Errorf("binary COPY: %v, %q", err, out[:min(len(out), 11)])
			}

			// Refusals leave the connection usable.
			for sql, code := range map[string]string{
				"COPY customers (customer_id, phone) TO STDOUT": "42501",
				"COPY orders FROM STDIN":                        "42501",
				"COPY orders TO '/tmp/pgwarden-orders'":         "42501",
				"COPY (SELECT 1) TO PROGRAM 'true'":             "42501",
				"COPY internal_costs TO STDOUT":                 "42501",
				"COPY orders TO STDOUT (ENCODING 'LATIN1')":     "0A000",
			} {
				if _, err := copyOut(t, conn, sql); sqlstate(err) != code {
					t.Errorf("%s: %v, want %s", sql, err, code)
				}
			}
			if n := scalar[int64](t, conn, "SELECT count(*) FROM orders"); n != orders {
				t.Errorf("after the refusals: %d orders", n)
			}

			// In a transaction block, between other statements.
			ctx := context.Background()
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if out, err = copyOut(t, conn, "COPY (SELECT count(*) FROM orders) TO STDOUT"); err != nil || out != fmt.Sprintf("%d\n", orders) {
				t.Errorf("COPY in a transaction: %q, %v", out, err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}

			copyExtended(t, r, orders)
			copyPsql(t, r, customers, orders)
		})
	}
}

// copyExtended runs a COPY through Parse, Bind, Describe, Execute and Sync,
// as drivers that use the extended protocol for everything send it.
func copyExtended(t *testing.T, r *running, orders int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, r.url(r.acmeToken(t)))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	fe := hc.Frontend
	fe.Send(&pgproto3.Parse{Query: "COPY (SELECT tenant_id, total FROM orders) TO STDOUT WITH (FORMAT csv)"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Describe{ObjectType: 'P'})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	hc.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	var kinds []string
	var rows int64
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", kinds, err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			rows++
			if !bytes.HasPrefix(m.Data, []byte("acme,")) {
				t.Fatalf("row of another tenant: %q", m.Data)
			}
			continue
		case *pgproto3.ErrorResponse:
			t.Fatalf("extended COPY: %s %s", m.Code, m.Message)
		case *pgproto3.ParameterStatus:
			continue
		}
		kinds = append(kinds, fmt.Sprintf("%T", msg))
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	want := "[*pgproto3.ParseComplete *pgproto3.BindComplete *pgproto3.NoData *pgproto3.CopyOutResponse *pgproto3.CopyDone *pgproto3.CommandComplete *pgproto3.ReadyForQuery]"
	if got := fmt.Sprint(kinds); got != want || rows != orders {
		t.Errorf("extended COPY: %d rows (want %d), messages %s, want %s", rows, orders, got, want)
	}
}

// copyPsql exports with psql's \copy, when psql is installed.
func copyPsql(t *testing.T, r *running, customers, orders int64) {
	t.Helper()
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Log("psql not installed: \\copy not tried")
		return
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "customers.csv")
	cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", r.url(r.acmeToken(t)),
		"-c", `\copy (SELECT tenant_id, order_id FROM orders) to stdout`,
		"-c", `\copy customers to '`+file+`' csv header`)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=20")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql \\copy: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, "acme\t") {
			t.Fatalf("psql \\copy: a row of another tenant: %q", l)
		}
	}
	if int64(len(lines)) != orders {
		t.Errorf("psql \\copy of orders: %d rows, want %d", len(lines), orders)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	recs := csvRecords(t, string(data))
	if int64(len(recs)-1) != customers || strings.Contains(strings.Join(recs[0], ","), "phone") {
		t.Errorf("psql \\copy customers: %d rows (want %d), header %q", len(recs)-1, customers, recs[0])
	}
	for _, rec := range recs[1:] {
		if rec[0] != "acme" || !strings.HasPrefix(rec[3], "***@") {
			t.Fatalf("psql \\copy customers: row of another tenant or unmasked: %q", rec)
		}
	}
}

// arrayScript is a pgbench script taking slices of an array literal. pgbench
// reads [:r] as [ and the variable r, so the slice up to r is written
// [: :r] (which reaches the server as [: 2], or [: $1]).
const arrayScript = `\set r random(1, 3)
SELECT count(*) FROM orders WHERE region = ANY ((ARRAY['EU','NA','APAC'])[: :r]);
SELECT (ARRAY['EU','NA','APAC'])[1: :r] AS regions, (ARRAY['EU','NA','APAC'])[:r];
`

// Subscripts and slices of ARRAY[...] run in the simple, extended and
// prepared protocols (pgx's modes, and pgbench's when it is installed),
// and count only acme's orders.
func TestArraySubscriptProtocols(t *testing.T) {
	r := startServeMode(t, "transaction", 0)
	ctx := context.Background()
	conn := r.acmeConn(t)
	want := map[int]int64{}
	for i, in := range []string{"'EU'", "'EU','NA'", "'EU','NA','APAC'"} {
		want[i+1] = scalar[int64](t, conn, "SELECT count(*) FROM orders WHERE region IN ("+in+")")
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg, err := pgx.ParseConfig(r.url(r.acmeToken(t)))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = mode
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			for round := 0; round < 2; round++ {
				for n := 1; n <= 3; n++ {
					var got int64
					var regions []string
					var last, name string
					if err := c.QueryRow(ctx, "SELECT count(*) FROM orders WHERE region = ANY ((ARRAY['EU','NA','APAC'])[:$1])", n).Scan(&got); err != nil {
						t.Fatalf("slice [:%d]: %v", n, err)
					}
					if got != want[n] {
						t.Errorf("slice [:%d]: %d orders, want acme's %d", n, got, want[n])
					}
					rows, err := c.Query(ctx, "SELECT (ARRAY['EU','NA','APAC'])[1:$1], (ARRAY['EU','NA','APAC'])[$1]", n)
					if err != nil {
						t.Fatal(err)
					}
					name = string(rows.FieldDescriptions()[1].Name)
					for rows.Next() {
						if err := rows.Scan(&regions, &last); err != nil {
							t.Fatal(err)
						}
					}
					if err := rows.Err(); err != nil {
						t.Fatal(err)
					}
					if len(regions) != n || last != []string{"EU", "NA", "APAC"}[n-1] || name != "array" {
						t.Errorf("[1:%d] = %v, [%d] = %q named %q", n, regions, n, last, name)
					}
				}
			}
		})
	}
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		t.Log("pgbench not installed: the script ran through pgx only")
		return
	}
	script := filepath.Join(t.TempDir(), "array.sql")
	if err := os.WriteFile(script, []byte(arrayScript), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run("pgbench-"+mode, func(t *testing.T) {
			cmd := exec.Command(pgbench, "-n", "-M", mode, "-c", "2", "-t", "20", "-f", script, r.url(r.acmeToken(t)))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "number of failed transactions: 0") {
				t.Fatalf("pgbench -M %s: %v\n%s", mode, err, out)
			}
			if !strings.Contains(string(out), "number of transactions actually processed: 40/40") {
				t.Errorf("pgbench -M %s:\n%s", mode, out)
			}
		})
	}
}

// Three-part names, TABLESAMPLE, CTE SEARCH/CYCLE and EXPLAIN through the proxy.
func TestBISQLStatements(t *testing.T) {
	r := startServeMode(t, "transaction", 0)
	ctx := context.Background()
	conn := r.acmeConn(t)
	orders := scalar[int64](t, conn, "SELECT count(*) FROM orders")

	if n := scalar[int64](t, conn, "SELECT count(*) FROM "+demoWarehouse+".public.orders"); n != orders {
		t.Errorf("%s.public.orders: %d orders, want %d", demoWarehouse, n, orders)
	}
	if n := scalar[int64](t, conn, "SELECT count(DISTINCT "+demoWarehouse+".public.orders.region) FROM "+demoWarehouse+".public.orders"); n == 0 {
		t.Errorf("four-part column reference: no regions")
	}
	_, err := conn.Exec(ctx, "SELECT count(*) FROM other.public.orders")
	if pe := pgErr(err); pe == nil || pe.Code != "0A000" || pe.Message != `cross-database references are not implemented: "other.public.orders"` {
		t.Errorf("another database: %v", err)
	}

	// TABLESAMPLE: a sample of acme's rows only (100% is all of them).
	if n := scalar[int64](t, conn, "SELECT count(*) FROM orders TABLESAMPLE BERNOULLI (100)"); n != orders {
		t.Errorf("BERNOULLI (100): %d orders, want %d", n, orders)
	}
	for _, q := range []string{
		"SELECT string_agg(DISTINCT tenant_id, ',') FROM orders TABLESAMPLE SYSTEM (60)",
		"SELECT string_agg(DISTINCT tenant_id, ',') FROM customers c TABLESAMPLE BERNOULLI (60) WHERE c.email LIKE '***@%'",
	} {
		if got := scalar[string](t, conn, q); got != "acme" {
			t.Errorf("%s: tenants %q", q, got)
		}
	}
	if _, err := conn.Exec(ctx, "SELECT * FROM orders TABLESAMPLE SYSTEM (10) REPEATABLE (1)"); sqlstate(err) != "0A000" {
		t.Errorf("REPEATABLE: %v, want 0A000", err)
	}

	// CTE SEARCH and CYCLE.
	if n := scalar[int64](t, conn, `WITH RECURSIVE r(order_id, customer_id) AS (
		SELECT order_id, customer_id FROM orders WHERE order_id = (SELECT min(order_id) FROM orders)
		UNION ALL SELECT o.order_id, o.customer_id FROM orders o JOIN r ON o.customer_id = r.customer_id)
		CYCLE order_id SET is_cycle USING path SELECT count(DISTINCT order_id) FROM r`); n == 0 || n > orders {
		t.Errorf("CYCLE: %d orders", n)
	}
	if got := scalar[string](t, conn, `WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3)
		SEARCH DEPTH FIRST BY n SET ord SELECT string_agg(n::text, ',' ORDER BY ord) FROM t`); got != "1,2,3" {
		t.Errorf("SEARCH: %q", got)
	}

	// EXPLAIN: the plan without estimates; ANALYZE refused.
	rows, err := conn.Query(ctx, "EXPLAIN SELECT region, count(*) FROM orders WHERE total > 10 GROUP BY 1", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if strings.Contains(text, "rows=") || strings.Contains(text, "cost=") || !strings.Contains(text, "tenant_id = 'acme'") {
		t.Errorf("EXPLAIN shows estimates or lacks the fence:\n%s", text)
	}
	for _, q := range []string{"EXPLAIN ANALYZE SELECT * FROM orders", "EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF) SELECT * FROM orders"} {
		if _, err := conn.Exec(ctx, q); sqlstate(err) != "42501" {
			t.Errorf("%s: %v, want 42501", q, err)
		}
	}
}

// Planner and session settings a tool sends on connect: SET, then SHOW
// answers them, and they follow their client across the transaction pool's
// connections (one connection shared by two clients here) without reaching
// the other client.
func TestSettingsFollowClient(t *testing.T) {
	r := startServeMode(t, "transaction", 1)
	ctx := context.Background()
	a, b := r.acmeConn(t), r.acmeConn(t)
	defaults := map[string]string{}
	sets := map[string]string{"work_mem": "8MB", "enable_nestloop": "off", "jit": "off", "random_page_cost": "1.5",
		"lock_timeout": "5s", "idle_in_transaction_session_timeout": "10min", "extra_float_digits": "2",
		"DateStyle": "SQL, DMY", "IntervalStyle": "iso_8601", "TimeZone": "Asia/Tokyo", "application_name": "bi-tool"}
	for name := range sets {
		defaults[name] = scalar[string](t, b, "SHOW "+name)
	}
	for name, v := range sets {
		if _, err := a.Exec(ctx, fmt.Sprintf("SET %s = '%s'", name, v)); err != nil {
			t.Fatalf("SET %s: %v", name, err)
		}
	}
	for round := 0; round < 2; round++ {
		for name, v := range sets {
			if got := scalar[string](t, a, "SHOW "+name); got != v {
				t.Errorf("client a: SHOW %s = %q, want %q", name, got, v)
			}
			if got := scalar[string](t, b, "SHOW "+name); got != defaults[name] {
				t.Errorf("client b: SHOW %s = %q, want its own %q", name, got, defaults[name])
			}
		}
		if got := scalar[string](t, a, "SELECT current_setting('work_mem')"); got != "8MB" {
			t.Errorf("current_setting('work_mem') = %q", got)
		}
	}
	for _, q := range []string{"SET work_mem = '1GB'", "SELECT set_config('work_mem', '1GB', false)", "SET max_parallel_workers_per_gather = 64", "SET row_security = off"} {
		_, err := a.Exec(ctx, q)
		if sqlstate(err) != "42501" {
			t.Errorf("%s: %v, want 42501", q, err)
		}
	}
	if _, err := a.Exec(ctx, "SET session_replication_role = replica"); err == nil || !strings.Contains(err.Error(), "session_replication_role") {
		t.Errorf("refusal does not name the setting: %v", err)
	}
	if got := scalar[string](t, a, "SHOW work_mem"); got != "8MB" {
		t.Errorf("after the refusals: work_mem %q", got)
	}

	// search_path: what tools send when a user picks a schema, kept for
	// SHOW with PostgreSQL's transaction semantics; one that would change
	// what a name means is refused.
	orders := scalar[int64](t, a, "SELECT count(*) FROM orders")
	if _, err := a.Exec(ctx, `SET search_path = "$user", public`); err != nil {
		t.Fatal(err)
	}
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SET search_path = public, pg_catalog"); err != nil {
		t.Fatal(err)
	}
	if got := scalar[string](t, a, "SHOW search_path"); got != "public, pg_catalog" {
		t.Errorf("in the transaction: search_path %q", got)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		if got := scalar[string](t, a, "SHOW search_path"); got != `"$user", public` {
			t.Errorf("client a: search_path %q after the rollback", got)
		}
		if got := scalar[string](t, b, "SELECT current_setting('search_path')"); got != "public" {
			t.Errorf("client b: search_path %q, want the policy's", got)
		}
		if n := scalar[int64](t, a, "SELECT count(*) FROM orders"); n != orders {
			t.Errorf("orders after SET search_path: %d, want %d", n, orders)
		}
	}
	if _, err := a.Exec(ctx, "SET search_path TO pg_temp_1"); sqlstate(err) != "42501" {
		t.Errorf("SET search_path TO pg_temp_1: %v, want 42501", err)
	}
	if _, err := a.Exec(ctx, "RESET search_path"); err != nil {
		t.Fatal(err)
	}
	if got := scalar[string](t, a, "SHOW search_path"); got != "public" {
		t.Errorf("after RESET: search_path %q", got)
	}
}

func pgErr(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}
