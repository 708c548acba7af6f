package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/config"
)

// A simple-protocol statement of 65,536 constants and more has no prepared
// form (the protocol counts parameters in 16 bits) and runs with its
// literals; 65,535 still runs prepared (its second run: the first probes
// the shape). The rows are right and the connection stays up.
func TestManyConstantsEndToEnd(t *testing.T) {
	r := startServeWith(t, zaptest.NewLogger(t), func(c *config.File) {
		c.Proxy.RewriteTimeout = 10 * time.Minute // the race detector is slow
	})
	conn := r.acmeConn(t)
	ctx := context.Background()
	for _, n := range []int{65535, 65536, 200000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			var b strings.Builder
			b.WriteString("SELECT count(*) FROM orders WHERE order_id IN (")
			for k := 1; k <= n; k++ {
				if k > 1 {
					b.WriteString(", ")
				}
				b.WriteString(strconv.Itoa(k))
			}
			b.WriteString(")")
			want := scalar[int64](t, conn, fmt.Sprintf("SELECT count(*) FROM orders WHERE order_id BETWEEN 1 AND %d", n))
			runs := 1
			if n <= 65535 {
				runs = 2
			}
			for run := 1; run <= runs; run++ {
				var got int64
				if err := conn.QueryRow(ctx, b.String(), pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil {
					t.Fatalf("run %d: %v", run, err)
				}
				if got != want {
					t.Errorf("run %d: count %d, want %d", run, got, want)
				}
			}
			if got := scalar[int](t, conn, "SELECT 1"); got != 1 {
				t.Errorf("after: SELECT 1 = %d", got)
			}
		})
	}
}
