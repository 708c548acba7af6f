package compat

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	_ "github.com/lib/pq"
)

// TestClients is the matrix: one subtest per client, one per check below it.
// Go clients always run; the others run when their runtime is installed.
func TestClients(t *testing.T) {
	t.Run("pgx", testPgx)
	t.Run("libpq", testLibPQ)
	t.Run("chatter", testChatter)
	t.Run("wire", testWire)
	t.Run("policy", testPolicy)
	t.Run("bi-sql", testBISQL)
	t.Run("psql", testPsql)
	t.Run("pgjdbc", testJDBC)
	t.Run("psycopg2", testPsycopg2)
	t.Run("psycopg", testPsycopg3)
	t.Run("sqlalchemy", testSQLAlchemy)
	t.Run("node-pg", testNode)
	t.Run("pgcli", testPgcli)
	t.Run("pandas", testPandas)
	t.Run("malloy", testMalloy)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pgxConnect opens a pgx connection as acme in the given execution mode.
func pgxConnect(ctx context.Context, t *testing.T, mode pgx.QueryExecMode) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(acme(t).url())
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = mode
	return pgx.ConnectConfig(ctx, cfg)
}

// withPgx runs fn on a fresh connection that is closed afterwards.
func withPgx(ctx context.Context, t *testing.T, mode pgx.QueryExecMode, fn func(*pgx.Conn) error) func() error {
	return func() error {
		conn, err := pgxConnect(ctx, t, mode)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer conn.Close(ctx)
		return fn(conn)
	}
}

func pgxStrings(ctx context.Context, conn *pgx.Conn, sql string, args ...any) ([]string, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", oneLine(sql), err)
	}
	return out, nil
}

func pgxInt(ctx context.Context, conn *pgx.Conn, sql string, args ...any) (int64, error) {
	var n int64
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", oneLine(sql), err)
	}
	return n, nil
}

// acmeBasics is the core isolation check every client repeats: the tenants
// seen across all tenant tables, and acme's exact row counts.
func pgxAcmeBasics(ctx context.Context, conn *pgx.Conn) error {
	tenants, err := pgxStrings(ctx, conn, tenantsSQL)
	if err != nil {
		return err
	}
	nc, err := pgxInt(ctx, conn, "SELECT count(*) FROM customers")
	if err != nil {
		return err
	}
	no, err := pgxInt(ctx, conn, "SELECT count(*) FROM orders")
	if err != nil {
		return err
	}
	return firstErr(onlyAcme(tenants), wantCount("customers", nc, acmeCustomers), wantCount("orders", no, acmeOrders))
}

func testPgx(t *testing.T) {
	ctx := testCtx(t)
	check(t, "pgx", "simple", withPgx(ctx, t, pgx.QueryExecModeSimpleProtocol, func(conn *pgx.Conn) error {
		return pgxAcmeBasics(ctx, conn)
	}))
	check(t, "pgx", "extended", withPgx(ctx, t, pgx.QueryExecModeCacheStatement, func(conn *pgx.Conn) error {
		if err := pgxAcmeBasics(ctx, conn); err != nil {
			return err
		}
		// A parameter naming another tenant must not widen the filter.
		for _, tc := range []struct {
			tenant string
			want   int64
		}{{"acme", acmeOrders}, {"globex", 0}, {"initech", 0}, {"acme", acmeOrders}} {
			n, err := pgxInt(ctx, conn, "SELECT count(*) FROM orders WHERE tenant_id = $1", tc.tenant)
			if err != nil {
				return err
			}
			if err := wantCount("orders WHERE tenant_id = "+tc.tenant, n, tc.want); err != nil {
				return err
			}
		}
		rows, err := conn.Query(ctx, "SELECT tenant_id, count(*) FROM orders o JOIN customers c USING (tenant_id, customer_id) WHERE o.ordered_at < $1 GROUP BY 1", time.Now().Add(24*time.Hour))
		if err != nil {
			return err
		}
		type tc struct {
			Tenant string
			N      int64
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[tc])
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0] != (tc{"acme", acmeOrders}) {
			return fmt.Errorf("orders joined to customers by tenant: got %v, want [{acme %d}]", got, acmeOrders)
		}
		return nil
	}))
	check(t, "pgx", "describe-exec", withPgx(ctx, t, pgx.QueryExecModeDescribeExec, func(conn *pgx.Conn) error {
		return pgxAcmeBasics(ctx, conn)
	}))
	check(t, "pgx", "batch", withPgx(ctx, t, pgx.QueryExecModeCacheStatement, func(conn *pgx.Conn) error {
		b := &pgx.Batch{}
		var nc, no, nOther int64
		var tenants []string
		b.Queue("SELECT count(*) FROM customers").QueryRow(func(r pgx.Row) error { return r.Scan(&nc) })
		b.Queue("SELECT count(*) FROM orders").QueryRow(func(r pgx.Row) error { return r.Scan(&no) })
		b.Queue(tenantsSQL).Query(func(rows pgx.Rows) error {
			var err error
			tenants, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		b.Queue("SELECT count(*) FROM order_items WHERE tenant_id <> $1", "acme").QueryRow(func(r pgx.Row) error { return r.Scan(&nOther) })
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		return firstErr(onlyAcme(tenants), wantCount("customers", nc, acmeCustomers), wantCount("orders", no, acmeOrders),
			wantCount("order_items of other tenants", nOther, 0))
	}))
	check(t, "pgx", "batch-refused", withPgx(ctx, t, pgx.QueryExecModeCacheStatement, func(conn *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue("SELECT count(*) FROM customers")
		b.Queue("SELECT * FROM internal_costs")
		b.Queue("SELECT count(*) FROM orders")
		err := conn.SendBatch(ctx, b).Close()
		if err := wantRefused("batch with internal_costs", err); err != nil {
			return err
		}
		return pgxAcmeBasics(ctx, conn)
	}))
	check(t, "pgx", "refused", withPgx(ctx, t, pgx.QueryExecModeCacheStatement, func(conn *pgx.Conn) error {
		for _, q := range []string{
			"SELECT * FROM internal_costs",
			"SELECT phone FROM customers",
			"INSERT INTO orders SELECT * FROM orders LIMIT 1",
			"SELECT * FROM public.internal_costs",
		} {
			_, err := conn.Exec(ctx, q)
			if err := wantRefused(q, err); err != nil {
				return err
			}
		}
		return pgxAcmeBasics(ctx, conn)
	}))
	check(t, "pgx", "cancel", withPgx(ctx, t, pgx.QueryExecModeCacheStatement, func(conn *pgx.Conn) error {
		// A CancelRequest on its own connection, with the key the proxy issued,
		// must reach the warehouse backend of this session. It is repeated until
		// the query ends: one that arrives before the query reaches the
		// warehouse cancels nothing.
		done, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			tick := time.NewTicker(300 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					conn.PgConn().CancelRequest(ctx)
				}
			}
		}()
		_, err := conn.Exec(ctx, "SELECT count(*) FROM generate_series(1, 100000000000)")
		close(done)
		<-stopped
		// Let a cancel still in flight land on the idle backend (where it is
		// ignored), not on the next statement.
		time.Sleep(200 * time.Millisecond)
		if code := sqlState(err); code != "57014" {
			return fmt.Errorf("cancelled query: got %v, want SQLSTATE 57014", err)
		}
		return pgxAcmeBasics(ctx, conn)
	}))
	check(t, "pgx", "binary-types", withPgx(ctx, t, pgx.QueryExecModeCacheStatement, func(conn *pgx.Conn) error {
		var (
			sum     pgtype.Numeric
			latest  time.Time
			regions []string
			payload map[string]any
			n       int64
		)
		err := conn.QueryRow(ctx, `SELECT sum(total), max(ordered_at), array_agg(DISTINCT region ORDER BY region), count(*) FROM orders`).
			Scan(&sum, &latest, &regions, &n)
		if err != nil {
			return err
		}
		if err := conn.QueryRow(ctx, "SELECT payload FROM events ORDER BY event_id LIMIT 1").Scan(&payload); err != nil {
			return fmt.Errorf("jsonb payload: %w", err)
		}
		if !sum.Valid || latest.IsZero() {
			return fmt.Errorf("sum %v, max(ordered_at) %v: want values", sum, latest)
		}
		for _, r := range regions {
			if r != "EU" && r != "NA" && r != "APAC" {
				return fmt.Errorf("regions %q: unexpected %q", regions, r)
			}
		}
		return wantCount("orders", n, acmeOrders)
	}))
	check(t, "pgx", "transaction", withPgx(ctx, t, pgx.QueryExecModeCacheStatement, func(conn *pgx.Conn) error {
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
			return err
		}
		if err := wantCount("orders", n, acmeOrders); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		// The demo policy opens writes (its comments), so READ WRITE is accepted.
		if _, err := conn.Exec(ctx, "BEGIN READ WRITE"); err != nil {
			return fmt.Errorf("BEGIN READ WRITE: %w", err)
		}
		_, err = conn.Exec(ctx, "ROLLBACK")
		return err
	}))
}

func openPQ(t *testing.T) (*sql.DB, error) {
	db, err := sql.Open("postgres", acme(t).url())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func withPQ(ctx context.Context, t *testing.T, fn func(*sql.DB) error) func() error {
	return func() error {
		db, err := openPQ(t)
		if err != nil {
			return err
		}
		defer db.Close()
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		return fn(db)
	}
}

func sqlStrings(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func sqlInt(ctx context.Context, db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, q string, args ...any) (int64, error) {
	var n int64
	if err := db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", oneLine(q), err)
	}
	return n, nil
}

func testLibPQ(t *testing.T) {
	ctx := testCtx(t)
	// lib/pq uses the simple protocol for queries without arguments and the
	// extended protocol (unnamed statement) for queries with arguments.
	check(t, "libpq", "simple", withPQ(ctx, t, func(db *sql.DB) error {
		tenants, err := sqlStrings(ctx, db, tenantsSQL)
		if err != nil {
			return err
		}
		nc, err := sqlInt(ctx, db, "SELECT count(*) FROM customers")
		if err != nil {
			return err
		}
		no, err := sqlInt(ctx, db, "SELECT count(*) FROM orders")
		if err != nil {
			return err
		}
		return firstErr(onlyAcme(tenants), wantCount("customers", nc, acmeCustomers), wantCount("orders", no, acmeOrders))
	}))
	check(t, "libpq", "extended", withPQ(ctx, t, func(db *sql.DB) error {
		tenants, err := sqlStrings(ctx, db, "SELECT DISTINCT tenant_id FROM orders WHERE total >= $1", 0)
		if err != nil {
			return err
		}
		na, err := sqlInt(ctx, db, "SELECT count(*) FROM orders WHERE tenant_id = $1", "acme")
		if err != nil {
			return err
		}
		ng, err := sqlInt(ctx, db, "SELECT count(*) FROM orders WHERE tenant_id = $1", "globex")
		if err != nil {
			return err
		}
		return firstErr(onlyAcme(tenants), wantCount("acme orders", na, acmeOrders), wantCount("globex orders", ng, 0))
	}))
	check(t, "libpq", "prepared", withPQ(ctx, t, func(db *sql.DB) error {
		stmt, err := db.PrepareContext(ctx, "SELECT count(*) FROM customers WHERE country <> $1")
		if err != nil {
			return err
		}
		defer stmt.Close()
		var total int64
		for _, c := range []string{"", "no such country"} {
			if err := stmt.QueryRowContext(ctx, c).Scan(&total); err != nil {
				return err
			}
			if err := wantCount("customers", total, acmeCustomers); err != nil {
				return err
			}
		}
		return nil
	}))
	check(t, "libpq", "transaction", withPQ(ctx, t, func(db *sql.DB) error {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelSerializable})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		n, err := sqlInt(ctx, tx, "SELECT count(*) FROM order_items WHERE tenant_id <> 'acme'")
		if err != nil {
			return err
		}
		if err := wantCount("order_items of other tenants", n, 0); err != nil {
			return err
		}
		return tx.Commit()
	}))
	check(t, "libpq", "refused", withPQ(ctx, t, func(db *sql.DB) error {
		_, err := db.ExecContext(ctx, "SELECT * FROM internal_costs")
		if err := wantRefused("internal_costs", err); err != nil {
			return err
		}
		_, err = db.ExecContext(ctx, "SELECT phone FROM customers WHERE customer_id = $1", 1)
		if err := wantRefused("customers.phone", err); err != nil {
			return err
		}
		n, err := sqlInt(ctx, db, "SELECT count(*) FROM customers")
		if err != nil {
			return errors.New("connection unusable after a refusal: " + err.Error())
		}
		return wantCount("customers", n, acmeCustomers)
	}))
}

// firstLine is for error messages about multi-line output.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
