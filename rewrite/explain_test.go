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
	u := pgtest.NewDatabase(t, bigSchema)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	p, err := policy.Parse([]byte(bigPolicy), "big.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := policy.LoadCatalog(ctx, conn, p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(p, cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "t7", Role: policy.RoleQuerier}
	res, err := r.Rewrite("EXPLAIN (COSTS OFF) SELECT count(*) FROM metrics m WHERE v / (v - 3) > 1 AND label <> 'x'", id)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, res.SQL)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	text := strings.Join(plan, "\n")
	t.Logf("plan:\n%s", text)
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
