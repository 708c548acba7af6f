package rewrite

import (
	"context"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
)

const maskSchema = `
CREATE TABLE people (tenant_id text NOT NULL, id int NOT NULL, name text, email text, phone text, ssn text,
  born date, score numeric(6,2), owner text, grp text, seen timestamptz, flag boolean, doc jsonb);
INSERT INTO people VALUES
  ('t1', 1, 'Alice Anders', 'alice@one.example', '+1-555-0101', '123-45-6789', '1990-05-01', 12.50, 'u1', 'red',  '2024-01-01 10:00+00', true, '{"a":1}'),
  ('t1', 2, 'Bo', 'bo@one.example', '555', '987-65-4321', '1985-01-01', 7.25, 'u2', 'blue', '2024-01-02 10:00+00', false, '{"a":2}'),
  ('t2', 1, 'Zed Zulu', 'zed@two.example', '+1-555-0202', '111-11-1111', '1970-01-02', 99.00, 'u1', 'red', '2024-01-03 10:00+00', true, '{"a":3}');
CREATE TABLE colors (name text NOT NULL, secret text NOT NULL);
INSERT INTO colors VALUES ('red', 's1'), ('blue', 's2');
`

const maskPolicy = `
groups: [admins, red, blue]
relations:
  public.people:
    tenant_column: tenant_id
    filters:
      - sql: "owner = {{external_id}}"
        when_absent: ignore
      - sql: "grp = ANY({{groups}}) OR 'admins' = ANY({{groups}})"
    columns:
      name:  { mask: partial, keep_first: 2, keep_last: 1 }
      email: { mask: email }
      phone: { mask: last4, unless_groups: [admins] }
      ssn:   { mask: hash }
      born:  { mask: redact }
      score: { mask: redact }
      seen:  { mask: null }
      flag:  { mask: redact }
      doc:   { mask: sql, sql: "jsonb_build_object('a', (doc->>'a')::int * 0)" }
  public.colors:
    shared: true
    columns:
      secret: { deny: true, unless_groups: [admins] }
`

func TestMasksAndFiltersOnPostgres(t *testing.T) {
	u := pgtest.NewDatabase(t, maskSchema)
	p, err := policy.Parse([]byte(maskPolicy), "masks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, r := liveRewriter(t, u, p)
	const all = "SELECT id, name, email, phone, ssn, born, score, seen, flag, doc FROM people ORDER BY id"
	tests := []struct {
		name string
		id   policy.Identity
		sql  string
		want string
	}{
		{"masks for group red", policy.Identity{Tenant: "t1", Groups: []string{"red"}}, all,
			"1|Al***s|***@one.example|***0101|f9b1b3d1c8a0b5c4a4c1a9b7e9d1f7c2|1970-01-01|0.00|NULL|f|{\"a\": 0}"},
		{"short values are fully masked", policy.Identity{Tenant: "t1", Groups: []string{"blue"}}, all,
			"2|***|***@one.example|***|HASH|1970-01-01|0.00|NULL|f|{\"a\": 0}"},
		{"admins see phone, all groups' rows", policy.Identity{Tenant: "t1", Groups: []string{"admins"}},
			"SELECT id, phone FROM people ORDER BY id", "1|+1-555-0101\n2|555"},
		{"external_id filter", policy.Identity{Tenant: "t1", Groups: []string{"admins"}, ExternalID: "u2"},
			"SELECT id FROM people", "2"},
		{"no groups, no rows", policy.Identity{Tenant: "t1"}, "SELECT count(*) FROM people", "0"},
		{"other tenant", policy.Identity{Tenant: "t2", Groups: []string{"red"}}, "SELECT id, email FROM people", "1|***@two.example"},
		{"tenant values are constants, never SQL text", policy.Identity{Tenant: "t1' OR 'x' = 'x", Groups: []string{"admins"}},
			"SELECT count(*) FROM people", "0"},
		{"attribute values too", policy.Identity{Tenant: "t1", Groups: []string{"admins'] OR true OR 'x' = ANY(ARRAY['"}},
			"SELECT count(*) FROM people", "0"},
		{"shared relation keeps rows, hides denied column", policy.Identity{Tenant: "t1"},
			"SELECT * FROM colors ORDER BY name", "blue\nred"},
		{"shared relation for admins", policy.Identity{Tenant: "t1", Groups: []string{"admins"}},
			"SELECT * FROM colors ORDER BY name", "blue|s2\nred|s1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			id.Kind, id.Role = policy.KindEmbed, policy.RoleQuerier
			res, err := r.Rewrite(context.Background(), tc.sql, &id)
			if err != nil {
				t.Fatal(err)
			}
			results, err := conn.PgConn().Exec(ctx, res.SQL).ReadAll()
			if err != nil {
				t.Fatalf("%v\n%s", err, res.SQL)
			}
			var lines []string
			for _, row := range results[0].Rows {
				var vals []string
				for i, v := range row {
					s := string(v)
					if v == nil {
						s = "NULL"
					}
					if results[0].FieldDescriptions[i].Name == "ssn" {
						if len(s) != 32 || strings.Contains(s, "-") {
							t.Errorf("ssn not hashed: %q", s)
						}
						s = "HASH"
					}
					vals = append(vals, s)
				}
				lines = append(lines, strings.Join(vals, "|"))
			}
			want := strings.ReplaceAll(tc.want, "f9b1b3d1c8a0b5c4a4c1a9b7e9d1f7c2", "HASH")
			if got := strings.Join(lines, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s\nsql: %s", got, want, res.SQL)
			}
		})
	}
	id := &policy.Identity{Kind: policy.KindEmbed, Role: policy.RoleQuerier, Tenant: "t1"}
	if _, err := r.Rewrite(context.Background(), "SELECT secret FROM colors", id); err == nil || !strings.Contains(err.Error(), "permission denied for column secret of relation colors") {
		t.Errorf("denied column of a shared relation: %v", err)
	}
}

// TestRiskyFilterRunsOnlyOnOwnRows: a policy filter that fails on another
// tenant's row (division by zero on t2's score) must not fail for t1.
func TestRiskyFilterRunsOnlyOnOwnRows(t *testing.T) {
	u := pgtest.NewDatabase(t, maskSchema+"CREATE INDEX ON people (tenant_id);")
	p, err := policy.Parse([]byte(`
relations:
  public.people:
    tenant_column: tenant_id
    filters:
      - sql: "100 / (score - 99) <> 12345"
`), "risky.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, r := liveRewriter(t, u, p)
	res, err := r.Rewrite(context.Background(), "SELECT count(*) FROM people", &policy.Identity{Kind: policy.KindEmbed, Tenant: "t1", Role: policy.RoleQuerier})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.SQL, "CASE WHEN tenant_id = 't1' THEN") {
		t.Errorf("risky filter not guarded: %s", res.SQL)
	}
	// Force a sequential scan so that every row meets the WHERE.
	if _, err := conn.Exec(ctx, "SET enable_indexscan = off; SET enable_bitmapscan = off"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, res.SQL).Scan(&n); err != nil || n != 2 {
		t.Errorf("count = %d, %v (want 2)\n%s", n, err, res.SQL)
	}
}
