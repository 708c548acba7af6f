package rewrite

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
)

var diffTenants = []string{"acme", "globex", "initech"}

// oracleSchema copies tenant's rows (and all rows of shared relations) into
// schema, then applies mask: the session's masks, denials and filters.
func oracleSchema(t *testing.T, conn *pgx.Conn, p *policy.Policy, schema, tenant, mask string) {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE SCHEMA %s;\n", schema)
	for _, key := range sortedKeys(p.Relations) {
		rel := p.Relations[key]
		fmt.Fprintf(&b, "CREATE TABLE %s.%s AS SELECT * FROM %s", schema, rel.Name, key)
		if rel.TenantColumn != "" {
			fmt.Fprintf(&b, " WHERE %s = '%s'", rel.TenantColumn, tenant)
		}
		b.WriteString(";\n")
	}
	b.WriteString(strings.ReplaceAll(mask, "{schema}", schema))
	if _, err := conn.Exec(ctx, b.String()); err != nil {
		t.Fatalf("oracle schema: %v", err)
	}
}

// rowsOf runs sql (after setup) and returns its rows as sorted text lines.
func rowsOf(conn *pgx.Conn, setup, sql string) ([]string, error) {
	ctx := context.Background()
	if setup != "" {
		if _, err := conn.Exec(ctx, setup); err != nil {
			return nil, err
		}
	}
	results, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	return rowsLines(results[len(results)-1])
}

// rowsLines is r's rows as sorted text lines.
func rowsLines(r *pgconn.Result) ([]string, error) {
	lines := make([]string, 0, len(r.Rows))
	for _, row := range r.Rows {
		vals := make([]string, len(row))
		for i, v := range row {
			if v == nil {
				vals[i] = "NULL"
			} else {
				vals[i] = string(v)
			}
		}
		lines = append(lines, strings.Join(vals, "|"))
	}
	sort.Strings(lines)
	return lines, nil
}

type corpus struct {
	name, schema, data, policy string
	queries                    []string
	sessions                   []diffSession
}

// diffSession is one kind of session and what the oracle must do to its
// copy of the data to match (masks, denials, filters).
type diffSession struct {
	name string
	id   func(tenant string) *policy.Identity
	mask string
}

func runDifferential(t *testing.T, c corpus) {
	setup := readFile(t, c.schema) + readFile(t, c.data)
	u := pgtest.NewDatabase(t, setup)
	p, err := policy.Load(c.policy)
	if err != nil {
		t.Fatal(err)
	}
	conn, r := liveRewriter(t, u, p)
	nonEmpty, runs := 0, 0
	for si, sess := range c.sessions {
		for _, tenant := range diffTenants {
			schema := fmt.Sprintf("only_%s_%d", tenant, si)
			oracleSchema(t, conn, p, schema, tenant, sess.mask)
			for qi, q := range c.queries {
				runs++
				where := fmt.Sprintf("%s #%d as %s (%s)", c.name, qi+1, tenant, sess.name)
				res, err := r.Rewrite(context.Background(), q, sess.id(tenant))
				if err != nil {
					t.Errorf("%s: rewrite: %v", where, err)
					continue
				}
				got, err := rowsOf(conn, "SET search_path = public", res.SQL)
				if err != nil {
					t.Errorf("%s: rewritten query: %v\n%s", where, err, res.SQL)
					continue
				}
				want, err := rowsOf(conn, "SET search_path = "+schema, q)
				if err != nil {
					t.Errorf("%s: oracle: %v", where, err)
					continue
				}
				if len(got) > 0 {
					nonEmpty++
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s: %d rows through the rewriter, %d in the oracle\nquery: %s\nfirst got:  %v\nfirst want: %v",
						where, len(got), len(want), firstLines(q, 3), head(got), head(want))
				}
			}
		}
	}
	t.Logf("%s: %d queries x %d tenants x %d sessions = %d runs, %d non-empty results",
		c.name, len(c.queries), len(diffTenants), len(c.sessions), runs, nonEmpty)
}

func head(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

func splitStatements(t testing.TB, sql string) []string {
	t.Helper()
	stmts, err := pg_query.SplitWithParser(sql, true)
	if err != nil {
		t.Fatal(err)
	}
	return stmts
}

func tpchQueries(t testing.TB) []string {
	files, err := filepath.Glob("../testdata/tpch/q*.sql")
	if err != nil || len(files) != 22 {
		t.Fatalf("want 22 TPC-H queries, got %d (%v)", len(files), err)
	}
	sort.Strings(files)
	qs := make([]string, len(files))
	for i, f := range files {
		qs[i] = readFile(t, f)
	}
	return qs
}

func TestDifferentialTPCH(t *testing.T) {
	runDifferential(t, corpus{
		name:    "tpch",
		schema:  "../testdata/rewrite/tpch/schema.sql",
		data:    "../testdata/rewrite/tpch/data.sql",
		policy:  "../testdata/rewrite/tpch/policy.yaml",
		queries: tpchQueries(t),
		sessions: []diffSession{{
			name: "querier",
			id: func(tenant string) *policy.Identity {
				return &policy.Identity{Kind: policy.KindEmbed, Tenant: tenant, Role: policy.RoleQuerier}
			},
			mask: "UPDATE {schema}.customer SET c_address = '***';",
		}},
	})
}

func TestDifferentialDemo(t *testing.T) {
	runDifferential(t, corpus{
		name:    "demo",
		schema:  "../testdata/demo/schema.sql",
		data:    "../testdata/demo/data.sql",
		policy:  "../testdata/demo/policy.yaml",
		queries: splitStatements(t, readFile(t, "../testdata/rewrite/differential/demo.sql")),
		sessions: []diffSession{
			{
				name: "no groups",
				id: func(tenant string) *policy.Identity {
					return &policy.Identity{Kind: policy.KindEmbed, Tenant: tenant, Role: policy.RoleQuerier}
				},
				mask: `UPDATE {schema}.customers SET email = '***@' || split_part(email, '@', 2);
ALTER TABLE {schema}.customers DROP COLUMN phone;
UPDATE {schema}.events SET payload = '{}';`,
			},
			{
				name: "pii+analysts, regions EU,NA",
				id: func(tenant string) *policy.Identity {
					return &policy.Identity{Kind: policy.KindEmbed, Tenant: tenant, Role: policy.RoleQuerier,
						Groups: []string{"pii", "analysts"}, Attributes: map[string][]string{"regions": {"EU", "NA"}}}
				},
				mask: `DELETE FROM {schema}.orders WHERE region NOT IN ('EU', 'NA');`,
			},
			{
				name: "internal",
				id: func(tenant string) *policy.Identity {
					return &policy.Identity{Kind: policy.KindInternal, Tenant: tenant, Role: policy.RoleQuerier}
				},
			},
		},
	})
}
