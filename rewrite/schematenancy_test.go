package rewrite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
)

// tenancyFixture is testdata/tenancy: a database with three tenant schemas
// (tenant_acme, tenant_globex and initech_prod by the policy's map), a
// drifted one (tenant_hooli), the model (tenant_template) and a shared
// schema, read as a read-only role.
type tenancyFixture struct {
	admin *pgx.Conn // superuser, to change the warehouse
	ro    *pgx.Conn // what rewritten SQL runs as
	roURL string
	pol   *policy.Policy
	tc    *policy.TenantCatalog
	rw    *Rewriter
}

func newTenancyFixture(t *testing.T, retry time.Duration) *tenancyFixture {
	t.Helper()
	ctx := context.Background()
	u := pgtest.NewDatabase(t, readFile(t, "../testdata/tenancy/schema.sql"))
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	admin.Exec(ctx, "DO $$BEGIN CREATE ROLE warden_ro LOGIN PASSWORD 'pw'; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
	if _, err := admin.Exec(ctx, `DO $$DECLARE s text; BEGIN
		FOR s IN SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema' LOOP
			EXECUTE format('GRANT USAGE ON SCHEMA %I TO warden_ro; GRANT SELECT ON ALL TABLES IN SCHEMA %I TO warden_ro', s, s);
		END LOOP; END$$`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO warden_ro"); err != nil {
		t.Fatal(err)
	}
	roURL := pgtest.WithUser(t, u, "warden_ro", "pw")
	ro, err := pgx.Connect(ctx, roURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close(context.Background()) })
	p, err := policy.Load("../testdata/tenancy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := policy.LoadCatalog(ctx, ro, p)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := policy.NewTenantCatalog(p, cat, policy.DialLoader(func(ctx context.Context) (*pgx.Conn, error) {
		return pgx.Connect(ctx, roURL)
	}), retry, nil)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := New(p, cat, Options{CacheBytes: -1, Database: "analytics", TenantSchemas: tc})
	if err != nil {
		t.Fatal(err)
	}
	return &tenancyFixture{admin: admin, ro: ro, roURL: roURL, pol: p, tc: tc, rw: rw}
}

// run rewrites sql for the session line and runs it on the warehouse,
// returning every row as text (or the error of either step).
func (f *tenancyFixture) run(t *testing.T, rw *Rewriter, session, sql string) ([]string, string, error) {
	t.Helper()
	id, err := parseSession(session)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rw.Rewrite(context.Background(), sql, id)
	if err != nil {
		return nil, "", err
	}
	rows, err := f.ro.Query(context.Background(), res.SQL, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, res.SQL, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, res.SQL, err
		}
		out = append(out, fmt.Sprint(vals...))
	}
	return out, res.SQL, rows.Err()
}

// TestSchemaTenancyGolden rewrites testdata/tenancy/rewrite.txt and runs
// every output that is not an error on the warehouse.
func TestSchemaTenancyGolden(t *testing.T) {
	f := newTenancyFixture(t, 0)
	path := "../testdata/tenancy/rewrite.txt"
	checkGolden(t, path, func(c *goldenCase, id *policy.Identity) string {
		res, rerr := f.rw.Rewrite(context.Background(), c.input, id)
		if rerr == nil {
			if _, err := pg_query.Parse(res.SQL); err != nil {
				t.Errorf("%s:%d: output does not parse: %v", path, c.line, err)
			}
			if _, err := f.ro.PgConn().Exec(context.Background(), res.SQL).ReadAll(); err != nil {
				t.Errorf("%s:%d: execute: %v\n%s", filepath.Base(path), c.line, err, res.SQL)
			}
			f.ro.PgConn().Exec(context.Background(), "RESET ALL").ReadAll()
		}
		return formatOutcome(res, rerr)
	})
}
