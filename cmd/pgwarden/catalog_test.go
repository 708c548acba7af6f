package main

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden"
	"github.com/pgwarden/pgwarden/internal/demo"
)

// hiddenObjects are created in the demo warehouse beside the exposed tables:
// objects of another owner and of no policy, which no session may learn of.
const hiddenObjects = `
CREATE ROLE globex_owner;
CREATE SCHEMA globex_private AUTHORIZATION globex_owner;
CREATE TABLE globex_private.secrets (tenant_id text, secret text);
ALTER TABLE internal_costs OWNER TO globex_owner;
CREATE VIEW hidden_view AS SELECT tenant_id, infra_cost FROM internal_costs;
CREATE MATERIALIZED VIEW hidden_mv AS SELECT tenant_id, sum(infra_cost) AS infra_total FROM internal_costs GROUP BY 1;
CREATE FUNCTION hidden_fn(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1';
CREATE TYPE hidden_enum AS ENUM ('globex_only');
CREATE INDEX internal_costs_infra ON internal_costs (infra_cost);
COMMENT ON TABLE internal_costs IS 'hidden_comment';
`

var hiddenNames = []string{"internal_costs", "globex", "secrets", "hidden_view", "hidden_mv", "hidden_fn", "hidden_enum",
	"infra_cost", "hidden_comment", "pgwarden_control", "phone"}

// psqlCommands are psql's schema-browsing commands: each is run through
// pgwarden as tenant acme and, with the same psql, on a database holding
// only what acme may see; the outputs must be the same.
var psqlCommands = []string{`\d`, `\dt`, `\dt+`, `\d orders`, `\d+ orders`, `\d customers`, `\d+ customers`,
	`\di`, `\di+`, `\dv`, `\dm`, `\ds`, `\dT`, `\dT+`, `\df`, `\dx`, `\dn`, `\dn+`, `\d orders_pkey`, `\dd`,
	`\dp`, `\dE`, `\dy`, `\dL`, `\dD`, `\dc`, `\dC`, `\do`, `\dF`, `\dRp`, `\dX`, `\des`, `\dew`, `\db`, `\ddp`, `\dA`, `\dO`}

var (
	psqlSize = regexp.MustCompile(`\b\d+ (bytes|kB|MB)\b`)
	psqlRule = regexp.MustCompile(`(?m)^-+(\+-+)*$`)
)

// psqlOut runs one psql command and returns its output.
func psqlOut(t *testing.T, psql, url, cmd string) (string, error) {
	t.Helper()
	out, err := exec.Command(psql, "-X", "-v", "ON_ERROR_STOP=1", "-P", "pager=off", "-c", cmd, url).CombinedOutput()
	return string(out), err
}

// TestPsqlCatalogCommands runs psql's backslash commands through pgwarden
// and compares what they print with psql on a database of the exposed
// objects alone (acme's view: customers.phone denied). Sizes are masked
// through pgwarden and compared as "<size>".
func TestPsqlCatalogCommands(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not installed")
	}
	r := startServeMode(t, "session", 0)
	ctx := context.Background()
	su, err := pgx.Connect(ctx, r.demo.cluster.DSN("demo"))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	if _, err := su.Exec(ctx, hiddenObjects); err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(ctx, "CREATE DATABASE oracle"); err != nil {
		t.Fatal(err)
	}
	oc, err := pgx.Connect(ctx, r.demo.cluster.DSN("oracle"))
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close(ctx)
	// The service account's grants, as demo.CreateServiceAccount makes them.
	grants := "REVOKE ALL ON DATABASE oracle FROM PUBLIC; GRANT CONNECT ON DATABASE oracle TO pgwarden_svc; GRANT USAGE ON SCHEMA public TO pgwarden_svc;"
	for _, tbl := range demo.ExposedTables {
		grants += "GRANT SELECT ON public." + tbl + " TO pgwarden_svc;"
	}
	grants += "GRANT INSERT, UPDATE, DELETE ON public.comments TO pgwarden_svc;" // the demo opens writes on comments
	if _, err := oc.Exec(ctx, pgwarden.DemoSchema+"DROP TABLE internal_costs; ALTER TABLE customers DROP COLUMN phone;"+grants); err != nil {
		t.Fatal(err)
	}
	oracleURL := r.demo.cluster.DSN("oracle")
	url := r.url(r.acmeToken(t))
	// Sizes are masked, which changes the widths of psql's columns too.
	normalize := func(s string) string {
		lines := strings.Split(psqlRule.ReplaceAllString(psqlSize.ReplaceAllString(s, "<size>"), "<rule>"), "\n")
		for i, l := range lines {
			cells := strings.Split(l, "|")
			for j, c := range cells {
				cells[j] = strings.TrimSpace(c)
			}
			lines[i] = strings.Join(cells, "|")
		}
		return strings.Join(lines, "\n")
	}
	for _, cmd := range psqlCommands {
		got, err := psqlOut(t, psql, url, cmd)
		if err != nil {
			t.Errorf("%s through pgwarden: %v\n%s", cmd, err, got)
			continue
		}
		for _, h := range hiddenNames {
			if strings.Contains(got, h) {
				t.Errorf("%s through pgwarden shows %q:\n%s", cmd, h, got)
			}
		}
		want, err := psqlOut(t, psql, oracleURL, cmd)
		if err != nil {
			t.Errorf("%s on the exposed database: %v\n%s", cmd, err, want)
			continue
		}
		if normalize(got) != normalize(want) {
			t.Errorf("%s answers differently from PostgreSQL on the exposed objects alone:\n--- pgwarden\n%s\n--- PostgreSQL\n%s", cmd, got, want)
		}
	}

	// Subscriptions carry connection strings: refused, with PostgreSQL's
	// message for a relation the session may not read.
	if out, err := psqlOut(t, psql, url, `\dRs`); err == nil || !strings.Contains(out, "permission denied for relation pg_subscription") {
		t.Errorf(`\dRs: %v, want refused:\n%s`, err, out)
	}

	// \l: the warehouse alone, under the name clients connect with.
	got, err := psqlOut(t, psql, url, `\l`)
	if err != nil {
		t.Fatalf(`\l: %v\n%s`, err, got)
	}
	t.Logf("\\l:\n%s", got)
	if !strings.Contains(got, "(1 row)") || !strings.Contains(got, " "+demoWarehouse+" ") {
		t.Errorf(`\l: want the one database %s:\n%s`, demoWarehouse, got)
	}
	for _, h := range append(hiddenNames, "oracle", "template", "demo ") {
		if strings.Contains(got, h) {
			t.Errorf(`\l shows %q:\n%s`, h, got)
		}
	}
	// \du: the session's role and the owners of what it sees, no other.
	got, err = psqlOut(t, psql, url, `\du`)
	if err != nil {
		t.Fatalf(`\du: %v\n%s`, err, got)
	}
	t.Logf("\\du:\n%s", got)
	if !strings.Contains(got, "pgwarden_svc") || !strings.Contains(got, "postgres") {
		t.Errorf(`\du: want pgwarden_svc and postgres:\n%s`, got)
	}
	for _, h := range hiddenNames {
		if strings.Contains(got, h) {
			t.Errorf(`\du shows %q:\n%s`, h, got)
		}
	}
}
