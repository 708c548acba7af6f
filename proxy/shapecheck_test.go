package proxy

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/proxy/pool"
)

// A client told a statement's result shape from the pool's cache gets
// 0A000 once the result type changed, also where the connection prepared
// the statement already (as on a fresh connection,
// TestPoolCachedDescribeChecksShape), and the session goes on.
func TestPoolCachedShapeOnPreparedConnection(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 1}, nil)
	ctx := ctxT(t)
	const q = "SELECT total FROM orders WHERE order_id = $1"
	a := tp.connect(t, ctx, "tok-acme")
	if _, err := a.Prepare(ctx, "s", q, nil); err != nil {
		t.Fatal(err)
	}
	// Prepared on the pool's only connection, where it stays.
	if _, err := a.ExecPrepared(ctx, "s", [][]byte{[]byte("1")}, nil, nil).Close(); err != nil {
		t.Fatal(err)
	}
	b := tp.connect(t, ctx, "tok-acme")
	for i := range 3 { // the same text parsed before every execution, answered from the cache
		if _, err := b.ExecParams(ctx, q, [][]byte{[]byte("1")}, nil, nil, nil).Close(); err != nil {
			t.Fatalf("execution %d: %v", i, err)
		}
	}
	admin := tp.connectDirect(t, ctx)
	if _, err := admin.Exec(ctx, "ALTER TABLE orders ALTER total TYPE bigint").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if !cachedShapeRefused(t, ctx, b, "s2", q) {
		t.Fatal("not described from the cache")
	}
}

// connectDirect connects to the warehouse itself, past the proxy.
func (tp *testProxy) connectDirect(t *testing.T, ctx context.Context) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(ctx, tp.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}
