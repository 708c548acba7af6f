package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/proxy/pool"
)

// A Parse that repeats the unnamed statement between transactions keeps
// it (reparsedLocked), and every other Parse makes a new one: another
// text, other declared types, inside a transaction, after the warehouse
// rejected it, after a policy reload. The answers are the same either way.
func TestReparsedUnnamedStatement(t *testing.T) {
	rw := &cachingRewriter{}
	tp := startPool(t, pool.Config{Size: 2}, func(_ *Config, d *Deps) { d.Warehouses["wh"].SetRewriter(rw) })
	ctx := ctxT(t)
	c := tp.connect(t, ctx, "tok-acme")
	const q = "SELECT total FROM orders WHERE order_id = $1"
	run := func(sql, arg string, oids []uint32) (string, error) {
		t.Helper()
		res := c.ExecParams(ctx, sql, [][]byte{[]byte(arg)}, oids, nil, nil).Read()
		if res.Err != nil || len(res.Rows) != 1 {
			return "", res.Err
		}
		return string(res.Rows[0][0]), nil
	}
	want := func(sql, arg string, oids []uint32, total string) *clientStmt {
		t.Helper()
		got, err := run(sql, arg, oids)
		if err != nil || got != total {
			t.Fatalf("%s with %s: %q, %v; want %q", sql, arg, got, err, total)
		}
		return unnamedStmt(t, tp, "acme")
	}

	first := want(q, "1", nil, "10")
	if st := want(q, "2", nil, "20"); st != first {
		t.Error("the same text parsed again between transactions: a new statement")
	}
	if st := want(q, "3", nil, "30"); st != first {
		t.Error("parsed a third time: a new statement")
	}
	// globex's order: the tenant filter holds on the kept statement.
	if _, err := run(q, "4", nil); err != nil {
		t.Fatal(err)
	} else if got, _ := run(q, "4", nil); got != "" {
		t.Fatalf("another tenant's row through the kept statement: %q", got)
	}

	other := want("SELECT total + 0 FROM orders WHERE order_id = $1", "1", nil, "10")
	if other == first {
		t.Error("another text kept the statement")
	}
	again := want(q, "1", nil, "10")
	if again == first || again == other {
		t.Error("the first text again, after another: not a new statement")
	}
	if st := want(q, "1", []uint32{23}, "10"); st == again {
		t.Error("declared parameter types kept the statement declared without")
	}

	if _, err := c.Exec(ctx, "BEGIN").ReadAll(); err != nil {
		t.Fatal(err)
	}
	inTx := want(q, "2", nil, "20")
	if st := want(q, "2", nil, "20"); st == inTx {
		t.Error("kept inside a transaction")
	}
	if _, err := c.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		t.Fatal(err)
	}

	const bad = "SELECT no_such_column FROM orders WHERE order_id = $1"
	_, err := run(bad, "1", nil)
	wantPgErr(t, err, "42703", "no_such_column")
	failed := unnamedStmt(t, tp, "acme")
	_, err = run(bad, "1", nil)
	wantPgErr(t, err, "42703", "no_such_column")
	if unnamedStmt(t, tp, "acme") == failed {
		t.Error("a statement the warehouse rejected was kept")
	}

	before := want(q, "1", nil, "10")
	tp.deps.Warehouses["wh"].SetRewriter(&cachingRewriter{})
	if st := want(q, "1", nil, "10"); st == before {
		t.Error("kept across a policy reload")
	}
}

// The unnamed statement kept (reparsedLocked) is checked as a new one
// would be: a client parsing before every execution gets 0A000 once the
// result type changed, whether or not its rewriter answers a repeated text
// with the same result.
func TestReparsedUnnamedShapeChange(t *testing.T) {
	for _, tc := range []struct {
		name string
		rw   Rewriter
	}{{"new result", fakeRewriter{}}, {"same result", &cachingRewriter{}}} {
		t.Run(tc.name, func(t *testing.T) {
			tp := startPool(t, pool.Config{Size: 1}, func(_ *Config, d *Deps) { d.Warehouses["wh"].SetRewriter(tc.rw) })
			ctx := ctxT(t)
			const q = "SELECT total FROM orders WHERE order_id = $1"
			c := tp.connect(t, ctx, "tok-acme")
			exec := func() *pgconn.ResultReader { return c.ExecParams(ctx, q, [][]byte{[]byte("1")}, nil, nil, nil) }
			for i := range 3 {
				if _, err := exec().Close(); err != nil {
					t.Fatalf("execution %d: %v", i, err)
				}
			}
			admin := tp.connectDirect(t, ctx)
			if _, err := admin.Exec(ctx, "ALTER TABLE orders ALTER total TYPE bigint").ReadAll(); err != nil {
				t.Fatal(err)
			}
			_, err := exec().Close()
			wantPgErr(t, err, "0A000", "cached plan must not change result type")
			if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
				t.Fatalf("connection unusable after 0A000: %v", err)
			}
		})
	}
}

// unnamedStmt is the unnamed statement of tenant's session (there is one).
func unnamedStmt(t *testing.T, tp *testProxy, tenant string) *clientStmt {
	t.Helper()
	var c *clientConn
	tp.srv.mu.Lock()
	for cc := range tp.srv.conns {
		if cc.session != nil && cc.session.Tenant == tenant {
			c = cc
		}
	}
	tp.srv.mu.Unlock()
	if c == nil {
		t.Fatalf("no session of %s", tenant)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[""]
}
