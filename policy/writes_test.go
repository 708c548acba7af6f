package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// The demo's writable comments has no unique key without tenant_id; a
// relation with one is named.
func TestWriteWarnings(t *testing.T) {
	schema := string(mustRead(t, "../testdata/demo/schema.sql")) +
		"CREATE TABLE labels (tenant_id text NOT NULL, label_id int NOT NULL, name text UNIQUE, PRIMARY KEY (tenant_id, label_id));"
	u := pgtest.NewDatabase(t, schema)
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
	if w, err := WriteWarnings(ctx, conn, p); err != nil || len(w) != 0 {
		t.Errorf("demo policy: %q %v, want no warnings", w, err)
	}
	src := strings.Replace(string(mustRead(t, "../testdata/demo/policy.yaml")), "  public.orders:",
		"  public.labels:\n    tenant_column: tenant_id\n    writes: { roles: [querier], insert: true }\n  public.orders:", 1)
	p, err = Parse([]byte(src), "labels.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, err := WriteWarnings(ctx, conn, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 1 || !strings.Contains(w[0], `relations."public.labels".writes: unique index labels_name_key does not include the tenant column tenant_id`) {
		t.Errorf("warnings %q, want one for labels_name_key", w)
	}
}
