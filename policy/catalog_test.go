package policy

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadCatalog(t *testing.T) {
	u := pgtest.NewDatabase(t, string(mustRead(t, "../testdata/demo/schema.sql")))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	p, err := Load("../testdata/demo/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := LoadCatalog(ctx, conn, p)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := cat.Relation("public", "customers")
	if !ok {
		t.Fatal("customers missing")
	}
	want := []Column{{"tenant_id", "text", 1}, {"customer_id", "integer", 2}, {"name", "text", 3}, {"email", "text", 4},
		{"phone", "text", 5}, {"country", "text", 6}, {"created_at", "timestamp with time zone", 7}}
	if len(c.Columns) != len(want) {
		t.Fatalf("columns = %+v", c.Columns)
	}
	for i := range want {
		if c.Columns[i] != want[i] {
			t.Errorf("column %d = %+v, want %+v", i, c.Columns[i], want[i])
		}
	}
	if o, _ := cat.Relation("public", "orders"); o.Columns[6].Type != "numeric(12,2)" {
		t.Errorf("orders.total type = %q", o.Columns[6].Type)
	}

	// A listed relation missing from the warehouse is an error naming it.
	p2, err := Parse([]byte("relations:\n  public.orders: {tenant_column: tenant_id}\n  public.ghost: {shared: true}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCatalog(ctx, conn, p2); err == nil || err.Error() != `p.yaml: relations."public.ghost": relation does not exist in the warehouse` {
		t.Errorf("got %v", err)
	}
	p3, _ := Parse([]byte("relations:\n  public.orders: {tenant_column: org_id}\n"), "p.yaml")
	if _, err := LoadCatalog(ctx, conn, p3); err == nil || err.Error() != `p.yaml: relations."public.orders".tenant_column: column "org_id" does not exist` {
		t.Errorf("got %v", err)
	}
}
