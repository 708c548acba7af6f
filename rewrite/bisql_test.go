package rewrite

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/policy"
)

// TestBISQLNoLeak runs issue 20's statements (COPY, subscripts of ARRAY[...],
// three-part names, TABLESAMPLE, SEARCH/CYCLE, EXPLAIN, full-text search) as acme with
// functions that show every value they see, and checks that nothing the
// client sees mentions another tenant or a raw email.
func TestBISQLNoLeak(t *testing.T) {
	s, r := leakSetup(t)
	r.opts.Database = "analytics"
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	copies := []string{
		`COPY customers TO STDOUT WITH (FORMAT csv, HEADER)`,
		`COPY (SELECT * FROM customers WHERE leak(name) AND leak(email)) TO STDOUT`,
		`COPY (SELECT c.name, o.total FROM orders o JOIN customers c USING (tenant_id, customer_id) WHERE boom(c.name)) TO STDOUT (FORMAT csv)`,
		`COPY orders (tenant_id, order_id) TO STDOUT`,
		`COPY (SELECT tenant_id FROM analytics.public.orders TABLESAMPLE SYSTEM (100) WHERE leak(tenant_id)) TO STDOUT`,
	}
	queries := []string{
		`SELECT (ARRAY[name, email])[1:2], (ARRAY[tenant_id])[1] FROM customers WHERE leak((ARRAY[name, email])[2])`,
		`SELECT count(*) FROM customers WHERE boom((ARRAY[name, tenant_id])[1])`,
		`SELECT analytics.public.customers.name FROM analytics.public.customers WHERE leak(analytics.public.customers.email)`,
		`SELECT name FROM customers TABLESAMPLE BERNOULLI (100) WHERE leak(name) AND leak(email)`,
		`SELECT c.name FROM customers AS c TABLESAMPLE SYSTEM (100) WHERE boom(c.name)`,
		`WITH RECURSIVE r(id, name) AS (SELECT customer_id, name FROM customers WHERE leak(name) UNION ALL SELECT c.customer_id, c.name FROM customers c JOIN r ON c.customer_id = r.id + 1 WHERE boom(c.name)) CYCLE id SET cyc USING path SELECT name FROM r`,
		`WITH RECURSIVE r(id) AS (SELECT customer_id FROM customers UNION ALL SELECT id + 1 FROM r WHERE id < 3) SEARCH BREADTH FIRST BY id SET ord SELECT count(*) FROM r`,
		`SELECT ts_headline(name, plainto_tsquery('x')), to_tsvector(email) FROM customers WHERE leak(to_tsvector('simple', name || ' ' || email)::text)`,
		`SELECT count(*) FROM customers WHERE to_tsvector('simple', name) @@ to_tsquery('simple', 'globex | initech') AND boom(name)`,
		`SELECT pg_size_pretty(sum(total)::bigint) FROM orders WHERE leak(tenant_id)`,
		`EXPLAIN (VERBOSE, FORMAT JSON) SELECT * FROM customers WHERE leak(name) AND email = 'someone@example.com'`,
	}
	see := func(sql, out string) {
		t.Helper()
		for _, other := range append(otherTenants, "alice.", "bob.", "carol.", "dave.") {
			if strings.Contains(out, other) {
				t.Errorf("%q shows %s:\n%s", sql, other, firstLines(out, 5))
				return
			}
		}
	}
	for _, sql := range copies {
		res, err := r.Rewrite(context.Background(), sql, id)
		if err != nil {
			t.Errorf("%q: rewrite: %v", sql, err)
			continue
		}
		s.mu.Lock()
		s.notices = nil
		s.mu.Unlock()
		var buf bytes.Buffer
		if _, err := s.conn.PgConn().CopyTo(context.Background(), &buf, res.SQL); err != nil {
			t.Errorf("%q: %v", sql, err)
		}
		s.mu.Lock()
		out := buf.String() + strings.Join(s.notices, "\n")
		s.mu.Unlock()
		see(sql, out)
		if !strings.Contains(out, "acme") && !strings.Contains(sql, "boom") {
			t.Errorf("%q: expected acme's rows:\n%s", sql, firstLines(out, 5))
		}
	}
	for _, sql := range queries {
		res, err := r.Rewrite(context.Background(), sql, id)
		if err != nil {
			t.Errorf("%q: rewrite: %v", sql, err)
			continue
		}
		out, _ := s.run(res.SQL)
		see(sql, out)
		if strings.HasPrefix(sql, "EXPLAIN") && (strings.Contains(out, "Plan Rows") || strings.Contains(out, "Total Cost")) {
			t.Errorf("%q shows estimates:\n%s", sql, firstLines(out, 5))
		}
	}
}

func TestParseMemory(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"65536", 64 << 20, true}, {"64MB", 64 << 20, true}, {" 1GB ", 1 << 30, true}, {"1.5MB", 3 << 19, true},
		{"512kB", 512 << 10, true}, {"100B", 100, true}, {"1TB", 1 << 40, true},
		{"64mb", 0, false}, {"lots", 0, false}, {"-1", 0, false}, {"", 0, false}, {"1PB", 0, false}, {"9999999999TB", 0, false},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseMemory(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("parseMemory(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
	if got := formatMemory(256 << 20); got != "256MB" {
		t.Errorf("formatMemory = %q", got)
	}
}
