package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Statements nested 10^3..10^6 deep, through the real proxy and rewriter by
// simple Query and by Parse: each is answered (54001 or 42601, or a result
// when it is flat), the same connection keeps working, and another
// tenant's session on another connection is served throughout. Before the
// depth bound, the first of these took the whole process down.
func TestDeepStatements(t *testing.T) {
	r := startServe(t)
	conn := r.acmeConn(t)
	token, _, err := r.app.mintSession(context.Background(), sessionRequest{Tenant: "globex", ExternalID: "g",
		Roles: map[string]string{demoWarehouse: "querier"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := r.connect(t, token)
	if err != nil {
		t.Fatal(err)
	}
	const otherQuery = "SELECT count(*) FROM orders"
	want := scalar[int64](t, other, otherQuery)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	served := 0
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var got int64
			if err := other.QueryRow(context.Background(), otherQuery, pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil || got != want {
				t.Errorf("other tenant during deep statements: %d, %v (want %d)", got, err, want)
				return
			}
			served++
		}
	}()

	rep := strings.Repeat
	cases := []struct {
		name string
		gen  func(n int) string
		max  int
		flat bool
	}{
		{"plus", func(n int) string { return "SELECT 1" + rep("+1", n) }, 1e6, false},
		{"columns", func(n int) string { return "SELECT total" + rep(" + total", n) + " FROM orders" }, 1e5, false},
		{"cast", func(n int) string { return "SELECT 1" + rep("::int", n) }, 1e5, false},
		{"paren", func(n int) string { return "SELECT " + rep("(", n) + "1" + rep(")", n) }, 1e5, false},
		{"subquery", func(n int) string { return "SELECT " + rep("(SELECT ", n) + "1" + rep(")", n) }, 1e5, false},
		{"union", func(n int) string { return "SELECT 1" + rep(" UNION SELECT 1", n) }, 1e5, false},
		{"join", func(n int) string { return "SELECT 1 FROM orders o" + rep(" JOIN orders ON true", n) }, 1e4, false},
		{"in_list", func(n int) string { return "SELECT 1 WHERE 1 IN (1" + rep(",1", n) + ")" }, 1e4, true},
		{"and", func(n int) string { return "SELECT 1 WHERE true" + rep(" AND true", n) }, 1e4, true},
	}
	ctx := context.Background()
	for _, c := range cases {
		for n := 1000; n <= c.max; n *= 10 {
			start := time.Now()
			sql := c.gen(n)
			if len(sql) > r.cfg.Proxy.MaxMessageBytes-1024 {
				continue
			}
			// Simple Query, then Parse (the extended protocol).
			_, qerr := conn.PgConn().Exec(ctx, sql).ReadAll()
			_, perr := conn.PgConn().Prepare(ctx, "", sql, nil)
			for proto, err := range map[string]error{"simple": qerr, "extended": perr} {
				switch code := sqlstate(err); {
				case err == nil && c.flat:
				case code == "54001" || code == "42601":
					if c.flat {
						t.Errorf("%s %d by %s: %v, want a result", c.name, n, proto, err)
					}
				default:
					t.Errorf("%s %d by %s: %v, want 54001 or 42601", c.name, n, proto, err)
				}
			}
			t.Logf("%s %d: %v", c.name, n, time.Since(start))
			if got := scalar[int](t, conn, "SELECT 1"); got != 1 {
				t.Fatalf("after %s %d: SELECT 1 = %d", c.name, n, got)
			}
		}
	}
	close(stop)
	wg.Wait()
	if served == 0 {
		t.Error("the other tenant's session was never served")
	}
}
