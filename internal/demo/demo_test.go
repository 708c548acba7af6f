package demo

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The service account reads the exposed tables, cannot read internal_costs and
// writes only the writable table.
func TestServiceAccountIsLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	u := pgtest.NewDatabase(t, "")
	su, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	if err := Load(ctx, su); err != nil {
		t.Fatal(err)
	}
	role := fmt.Sprintf("svc_%s", RandomSecret(4))
	t.Cleanup(func() {
		su.Exec(context.Background(), "DROP OWNED BY "+role)
		su.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
	})
	pw, err := CreateServiceAccount(ctx, su, role, su.Config().Database)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := pgx.Connect(ctx, pgtest.WithUser(t, u, role, pw))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(ctx)
	var n int
	if err := svc.QueryRow(ctx, "SELECT count(*) FROM orders WHERE tenant_id = 'acme'").Scan(&n); err != nil || n != 1000 {
		t.Fatalf("acme orders = %d, %v; want 1000", n, err)
	}
	for _, sql := range []string{
		"SELECT * FROM internal_costs",
		"UPDATE orders SET total = 0",
		"INSERT INTO tenants VALUES ('x', 'x', 'x', now())",
		"DELETE FROM events",
		"TRUNCATE comments",
		"CREATE TABLE x (a int)",
	} {
		if _, err := svc.Exec(ctx, sql); err == nil {
			t.Errorf("%s: service account was allowed", sql)
		}
	}
	for _, sql := range []string{
		"INSERT INTO comments (tenant_id, order_id, created_by, body) VALUES ('acme', 1, 'u', 'x')",
		"UPDATE comments SET resolved = true WHERE tenant_id = 'acme' AND body = 'x'",
		"DELETE FROM comments WHERE tenant_id = 'acme' AND body = 'x'",
	} {
		if _, err := svc.Exec(ctx, sql); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}
