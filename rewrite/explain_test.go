package rewrite

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
)

const bigSchema = `
CREATE TABLE metrics (tenant_id text NOT NULL, id int NOT NULL, v int NOT NULL, label text NOT NULL);
CREATE INDEX metrics_tenant ON metrics (tenant_id);
CREATE UNIQUE INDEX metrics_tenant_id ON metrics (tenant_id, id);
INSERT INTO metrics SELECT 't' || (i % 50), i, i % 1000, 'l' || i FROM generate_series(1, 200000) i;
ANALYZE metrics;
`

const bigPolicy = `
relations:
  public.metrics:
    tenant_column: tenant_id
    columns:
      label: { mask: hash }
`

// TestFenceKeepsTenantIndex: the OFFSET 0 fence must not cost the tenant
// index, and the client's quals stay above the fenced scan.
func TestFenceKeepsTenantIndex(t *testing.T) {
	conn, r, id := bigRewriter(t)
	text := explain(t, conn, r, id, "EXPLAIN (COSTS OFF) SELECT count(*) FROM metrics m WHERE v / (v - 3) > 1 AND label <> 'x'")
	if !strings.Contains(text, "metrics_tenant") || !(strings.Contains(text, "Index Scan") || strings.Contains(text, "Bitmap")) {
		t.Errorf("tenant index not used:\n%s", text)
	}
	// The client's qual is a filter of the subquery scan, above the tenant scan.
	sub := strings.Index(text, "Subquery Scan")
	div := strings.Index(text, "v - 3)")
	idx := strings.Index(text, "metrics_tenant")
	if sub < 0 || div < sub || idx < div {
		t.Errorf("client qual not kept above the fenced scan:\n%s", text)
	}
}

// bigRewriter is a rewriter over a fresh database with bigSchema and
// bigPolicy, and a session of tenant t7.
func bigRewriter(t *testing.T) (*pgx.Conn, *Rewriter, *policy.Identity) {
	t.Helper()
	p, err := policy.Parse([]byte(bigPolicy), "big.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conn, r := liveRewriter(t, pgtest.NewDatabase(t, bigSchema), p)
	return conn, r, &policy.Identity{Kind: policy.KindEmbed, Tenant: "t7", Role: policy.RoleQuerier}
}

func explain(t *testing.T, conn *pgx.Conn, r *Rewriter, id *policy.Identity, sql string) string {
	t.Helper()
	res, err := r.Rewrite(context.Background(), sql, id)
	if err != nil {
		t.Fatal(err)
	}
	text := plan(t, conn, res.SQL)
	t.Logf("%s\nplan:\n%s", sql, text)
	return text
}

// plan runs an EXPLAIN and returns its lines.
func plan(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// TestPushdownUsesIndexes: leakproof conjuncts pushed into the fence let
// PostgreSQL use the (tenant_id, id) index for point lookups, parameters too.
func TestPushdownUsesIndexes(t *testing.T) {
	ctx := context.Background()
	conn, r, id := bigRewriter(t)
	for _, sql := range []string{
		"EXPLAIN (COSTS OFF) SELECT v FROM metrics WHERE id = 57",
		"EXPLAIN (COSTS OFF) SELECT m.v FROM metrics m WHERE m.id >= 57 AND m.id < 60",
	} {
		if text := explain(t, conn, r, id, sql); !strings.Contains(text, "Index Cond: ((tenant_id = 't7'::text) AND (id") {
			t.Errorf("%s: (tenant_id, id) index not used for both conditions:\n%s", sql, text)
		}
	}
	// A masked column is never compared inside the fence (it would compare raw values).
	if text := explain(t, conn, r, id, "EXPLAIN (COSTS OFF) SELECT v FROM metrics WHERE label = 'x'"); strings.Contains(text, "Index Cond: ((tenant_id = 't7'::text) AND") ||
		!strings.Contains(text, "Subquery Scan") {
		t.Errorf("masked column pushed down:\n%s", text)
	}
	res, err := r.Rewrite(context.Background(), "PREPARE q(bigint) AS SELECT v FROM metrics WHERE id = $1", id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, res.SQL); err != nil {
		t.Fatal(err)
	}
	if text := plan(t, conn, "EXPLAIN (COSTS OFF) EXECUTE q(57)"); !strings.Contains(text, "Index Cond: ((tenant_id = 't7'::text) AND (id =") {
		t.Errorf("parameter not pushed:\n%s", text)
	}
}

// TestPartitionedTable: ONLY would read no rows from a partitioned parent.
func TestPartitionedTable(t *testing.T) {
	u := pgtest.NewDatabase(t, `
CREATE TABLE hits (tenant_id text NOT NULL, day date NOT NULL, n int NOT NULL) PARTITION BY RANGE (day);
CREATE TABLE hits_2024 PARTITION OF hits FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO hits VALUES ('a', '2024-03-01', 1), ('a', '2024-04-01', 2), ('b', '2024-03-01', 40);`)
	p, err := policy.Parse([]byte("relations:\n  public.hits: {tenant_column: tenant_id}\n"), "hits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, r := liveRewriter(t, u, p)
	res, err := r.Rewrite(context.Background(), "SELECT sum(n) FROM hits", &policy.Identity{Kind: policy.KindEmbed, Tenant: "a", Role: policy.RoleQuerier})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	if err := conn.QueryRow(ctx, res.SQL).Scan(&sum); err != nil || sum != 3 {
		t.Errorf("sum = %d, %v (want 3)\n%s", sum, err, res.SQL)
	}
}

// TestParameterRangesPushdown: a range over parameters reaches the (tenant_id,
// id) index when the parameters are certain to have the column's type, and
// the rows are the same as with the tenant filter written by hand, whatever
// the pushdown does.
func TestParameterRangesPushdown(t *testing.T) {
	conn, r, id := bigRewriter(t)
	const rng = "SELECT count(*), coalesce(sum(v), 0) FROM metrics WHERE id > $1 AND id < $2"
	tests := []struct {
		name   string
		sql    string
		types  []uint32
		pushed bool
	}{
		{"unspecified types", rng, nil, true},
		{"declared integer", rng, []uint32{23, 23}, true},
		{"declared bigint", rng, []uint32{20, 0}, false}, // $1::integer could round; $2 still goes in
		{"declared numeric", rng, []uint32{1700, 1700}, false},
		{"a second use", "SELECT count(*), coalesce(sum(v), 0) FROM metrics WHERE id > $1 AND id < $2 AND v <> $1", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.RewriteParams(context.Background(), tt.sql, id, tt.types)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(res.SQL, "id > $1::int"); got != tt.pushed {
				t.Errorf("pushed = %v, want %v:\n%s", got, tt.pushed, res.SQL)
			}
			// Prepared with the declared types, as the client would.
			args := [][]byte{[]byte("1006"), []byte("3000")}
			if tt.types != nil && tt.types[0] == 1700 {
				// id 1007 is t7's: $1::integer would round 1006.5 up to
				// 1007 and the fence would drop it.
				args = [][]byte{[]byte("1006.5"), []byte("3000.5")}
			}
			hand := strings.Replace(tt.sql, "WHERE", "WHERE tenant_id = 't7' AND", 1)
			got, want := runPrepared(t, conn, res.SQL, tt.types, args), runPrepared(t, conn, hand, tt.types, args)
			if got != want || strings.HasPrefix(got, "0 ") {
				t.Errorf("rewritten: %s, by hand: %s", got, want)
			}
		})
	}
	res, err := r.RewriteParams(context.Background(), "EXPLAIN (COSTS OFF) "+rng, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if text := plan(t, conn, res.SQL, 1006, 3000); !strings.Contains(text, "Index Cond: ((tenant_id = 't7'::text) AND (id >") {
		t.Errorf("range not pushed to the index:\n%s", text)
	}
	// BETWEEN goes in as its two comparisons.
	if res, err := r.RewriteParams(context.Background(), "SELECT count(*) FROM metrics WHERE id BETWEEN $1 AND $2", id, nil); err != nil ||
		!strings.Contains(res.SQL, "tenant_id = 't7' AND id >= $1::int AND id <= $2::int ") {
		t.Errorf("BETWEEN of parameters: %v\n%v", err, res)
	}
	// The simple protocol's Rewrite knows no declared types: = only.
	if res, _ := r.Rewrite(context.Background(), rng, id); strings.Contains(res.SQL, "id > $1::int") {
		t.Errorf("Rewrite pushed a parameter range without knowing its type:\n%s", res.SQL)
	}
}

// runPrepared prepares sql with the parameter types and runs it with text
// arguments; it returns the first row's columns joined by spaces.
func runPrepared(t *testing.T, conn *pgx.Conn, sql string, types []uint32, args [][]byte) string {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.PgConn().Prepare(ctx, "", sql, types); err != nil {
		t.Fatalf("prepare: %v\n%s", err, sql)
	}
	res := conn.PgConn().ExecPrepared(ctx, "", args, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		t.Fatalf("execute: %v (%d rows)\n%s", res.Err, len(res.Rows), sql)
	}
	var cols []string
	for _, c := range res.Rows[0] {
		cols = append(cols, string(c))
	}
	return strings.Join(cols, " ")
}
