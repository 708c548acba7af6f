package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// scriptResult is one check's outcome as a client script prints it: the
// script runs the statements, the Go side decides pass or fail.
type scriptResult struct {
	Error    string            `json:"error"`    // the exception, when the check raised one
	SQLState string            `json:"sqlstate"` // of an expected refusal
	Tenants  []string          `json:"tenants"`  // distinct tenant_ids seen
	Counts   map[string]int64  `json:"counts"`   // named counts (customers, orders, rows, ...)
	Names    []string          `json:"names"`    // tables, columns, key columns, ...
	Values   map[string]string `json:"values"`   // anything else worth asserting
}

// validator judges a script's result for one check.
type validator func(r scriptResult) error

// scriptCheck is one matrix cell of a script client.
type scriptCheck struct {
	name     string
	validate validator
}

func vSelect(r scriptResult) error {
	return firstErr(onlyAcme(r.Tenants), wantCount("customers", r.Counts["customers"], acmeCustomers),
		wantCount("orders", r.Counts["orders"], acmeOrders))
}

// vRows checks a streamed read of all of acme's orders.
func vRows(r scriptResult) error {
	return firstErr(onlyAcme(r.Tenants), wantCount("rows", r.Counts["rows"], acmeOrders))
}

// vParams checks a parameter naming another tenant: it must not widen the filter.
func vParams(r scriptResult) error {
	return firstErr(wantCount("orders WHERE tenant_id = acme", r.Counts["acme"], acmeOrders),
		wantCount("orders WHERE tenant_id = globex", r.Counts["globex"], 0))
}

func vRefused(r scriptResult) error {
	if r.SQLState != "42501" {
		return fmt.Errorf("SELECT * FROM internal_costs: got SQLSTATE %q, want 42501", r.SQLState)
	}
	return wantCount("customers, on the same connection after the refusal", r.Counts["after"], acmeCustomers)
}

func vTables(r scriptResult) error { return sameSet("tables listed", r.Names, exposedTables) }
func vColumns(r scriptResult) error {
	return sameList("columns of customers (phone hidden without group pii)", r.Names, customersColumns)
}
func vPKeys(r scriptResult) error   { return sameList("primary key of orders", r.Names, ordersPK) }
func vFKeys(r scriptResult) error   { return sameSet("foreign keys of orders", r.Names, ordersFKs) }
func vNoError(r scriptResult) error { return nil }

// runScript runs a client script once (it runs all its checks on its own
// connections) and then asserts on each check as a subtest.
func runScript(t *testing.T, client string, checks []scriptCheck, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), acme(t).env()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var out map[string]scriptResult
	if jerr := json.Unmarshal(stdout.Bytes(), &out); err != nil || jerr != nil {
		results.record(client, "*", "FAIL", fmt.Sprintf("script failed: %v %v", err, jerr))
		t.Fatalf("%s %s: %v; json: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, jerr, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("stderr of %s:\n%s", client, stderr.String())
	}
	for _, c := range checks {
		c := c
		check(t, client, c.name, func() error {
			r, ok := out[c.name]
			if !ok {
				return errors.New("the script reported nothing for this check")
			}
			if r.Error != "" {
				return errors.New(r.Error)
			}
			return c.validate(r)
		})
	}
	for name := range out {
		found := false
		for _, c := range checks {
			found = found || c.name == name
		}
		if !found {
			t.Errorf("script reported check %q that the suite does not assert on", name)
		}
	}
}

func clientDir(parts ...string) string {
	return filepath.Join(append([]string{"clients"}, parts...)...)
}

// python is Debian's interpreter, whose dist-packages hold python3-psycopg2,
// python3-psycopg and python3-sqlalchemy (a pyenv or venv python may not).
func python(t *testing.T, client, module string) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import "+module).Run() == nil {
			return path
		}
	}
	missingRuntime(t, client, fmt.Sprintf("no python3 can import %s (apt-get install python3-%s)", module, strings.ToLower(module)))
	return ""
}

func testPsycopg2(t *testing.T) {
	py := python(t, "psycopg2", "psycopg2")
	runScript(t, "psycopg2", []scriptCheck{
		{"select", vSelect}, {"params", vParams}, {"named-cursor", vRows}, {"named-cursor-withhold", vRows},
		{"named-cursor-mixed-case", vRows}, {"refused", vRefused},
	}, py, clientDir("python", "psycopg2_client.py"))
}

func testPsycopg3(t *testing.T) {
	py := python(t, "psycopg", "psycopg")
	runScript(t, "psycopg", []scriptCheck{
		{"select", vSelect}, {"prepared", vParams}, {"binary", func(r scriptResult) error {
			return firstErr(onlyAcme(r.Tenants), wantCount("orders", r.Counts["orders"], acmeOrders),
				sameList("python types of sum(total), max(ordered_at), count(*)", []string{r.Values["types"]}, []string{"Decimal,datetime,int"}))
		}}, {"server-cursor", vRows}, {"pipeline", vSelect}, {"refused", vRefused},
	}, py, clientDir("python", "psycopg_client.py"))
}

func testSQLAlchemy(t *testing.T) {
	py := python(t, "sqlalchemy", "sqlalchemy")
	python(t, "sqlalchemy", "psycopg2")
	runScript(t, "sqlalchemy", []scriptCheck{
		{"connect", func(r scriptResult) error {
			if !strings.HasPrefix(r.Values["server_version_info"], "(1") || r.Values["default_schema_name"] != "public" {
				return fmt.Errorf("dialect initialize: %v", r.Values)
			}
			return nil
		}},
		{"select", vSelect}, {"tables", vTables}, {"columns", vColumns}, {"pkeys", vPKeys}, {"fkeys", vFKeys},
	}, py, clientDir("python", "sqlalchemy_client.py"))
}

func testNode(t *testing.T) {
	needRuntime(t, "node-pg", "node")
	if _, err := os.Stat(clientDir("node", "node_modules", "pg", "package.json")); err != nil {
		missingRuntime(t, "node-pg", "node_modules/pg missing (run compat/install.sh: npm ci in compat/clients/node)")
	}
	runScript(t, "node-pg", []scriptCheck{
		{"simple", vSelect}, {"extended", vParams}, {"prepared", vSelect}, {"refused", vRefused},
	}, "node", clientDir("node", "client.js"))
}

// jdbcJar is Debian's libpostgresql-jdbc-java.
const jdbcJar = "/usr/share/java/postgresql.jar"

func testJDBC(t *testing.T) {
	needRuntime(t, "pgjdbc", "javac", "java")
	if _, err := os.Stat(jdbcJar); err != nil {
		missingRuntime(t, "pgjdbc", jdbcJar+" missing (apt-get install libpostgresql-jdbc-java)")
	}
	classes := t.TempDir()
	out, err := exec.Command("javac", "-d", classes, "-cp", jdbcJar, clientDir("java", "Compat.java")).CombinedOutput()
	if err != nil {
		results.record("pgjdbc", "*", "FAIL", "javac failed")
		t.Fatalf("javac: %v\n%s", err, out)
	}
	runScript(t, "pgjdbc", []scriptCheck{
		{"connect", func(r scriptResult) error {
			if r.Values["product"] != "PostgreSQL" || !strings.HasPrefix(r.Values["version"], "1") || r.Values["valid"] != "true" || r.Values["schema"] != "public" {
				return fmt.Errorf("DatabaseMetaData: %v", r.Values)
			}
			return nil
		}},
		{"select", vSelect}, {"prepared", vParams}, {"fetchsize", vRows}, {"types", func(r scriptResult) error {
			return sameList("array elements, jsonb type", []string{r.Values["regions"], r.Values["payload_type"]}, []string{"ok", "jsonb"})
		}}, {"refused", vRefused},
		{"tables", vTables}, {"columns", vColumns}, {"pkeys", vPKeys}, {"fkeys", vFKeys},
		{"schemas", func(r scriptResult) error {
			for _, n := range r.Names {
				if n != "public" && n != "pg_catalog" && n != "information_schema" {
					return fmt.Errorf("getSchemas lists %q (all: %q): want only public and the system schemas", n, r.Names)
				}
			}
			if !slices.Contains(r.Names, "public") {
				return fmt.Errorf("getSchemas: no public in %q", r.Names)
			}
			return nil
		}},
		{"catalogs", func(r scriptResult) error { return sameList("getCatalogs", r.Names, []string{acme(t).Database}) }},
		{"resultset-metadata", func(r scriptResult) error {
			got := []string{r.Values["nullable"], r.Values["autoincrement"], r.Values["table"]}
			return sameList("isNullable(order_id), isAutoIncrement(order_id), getTableName", got, []string{"0", "false", "orders"})
		}},
	}, "java", "-cp", classes+string(os.PathListSeparator)+jdbcJar, "Compat")
}

// psql runs psql (-X: no psqlrc) as acme and returns its stdout.
func psql(ctx context.Context, t *testing.T, args ...string) (string, error) {
	s := acme(t)
	cmd := exec.CommandContext(ctx, "psql", append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-d", s.conninfo()}, args...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+s.Password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("psql %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// psqlTable parses unaligned output (-A) with a header into rows of fields.
func psqlTable(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || !strings.Contains(line, "|") {
			continue
		}
		rows = append(rows, strings.Split(line, "|"))
	}
	return rows
}

func column(rows [][]string, header string) []string {
	if len(rows) == 0 {
		return nil
	}
	idx := -1
	for i, h := range rows[0] {
		if h == header {
			idx = i
		}
	}
	var out []string
	for _, r := range rows[1:] {
		if idx >= 0 && idx < len(r) && len(r) == len(rows[0]) {
			out = append(out, r[idx])
		}
	}
	return out
}

// psqlFooter returns the entries under a footer heading of psql's \d.
func psqlFooter(out, heading string) []string {
	var entries []string
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case l == heading:
			in = true
		case in && strings.HasPrefix(l, "    "):
			entries = append(entries, strings.TrimSpace(l))
		default:
			in = false
		}
	}
	return entries
}

var psqlFooterFK = regexp.MustCompile(`FOREIGN KEY \(([^)]*)\) REFERENCES (\w+)\(([^)]*)\)`)

func testPsql(t *testing.T) {
	needRuntime(t, "psql", "psql")
	ctx := testCtx(t)
	check(t, "psql", "select", func() error {
		out, err := psql(ctx, t, "-A", "-t", "-c", tenantsSQL, "-c", "SELECT count(*) FROM customers", "-c", "SELECT count(*) FROM orders")
		if err != nil {
			return err
		}
		lines := strings.Fields(out)
		if len(lines) < 3 {
			return fmt.Errorf("unexpected output %q", out)
		}
		n := len(lines)
		return firstErr(onlyAcme(lines[:n-2]), sameList("counts", lines[n-2:], []string{"200", "1000"}))
	})
	check(t, "psql", "dt", func() error {
		out, err := psql(ctx, t, "-A", "-c", `\dt`)
		if err != nil {
			return err
		}
		rows := psqlTable(out)
		return firstErr(sameSet(`\dt names`, column(rows, "Name"), exposedTables))
	})
	check(t, "psql", "d-orders", func() error {
		out, err := psql(ctx, t, "-A", "-c", `\d orders`)
		if err != nil {
			return err
		}
		if err := sameList(`\d orders columns`, column(psqlTable(out), "Column"), ordersColumns); err != nil {
			return err
		}
		if !strings.Contains(out, `PRIMARY KEY, btree (tenant_id, order_id)`) {
			return fmt.Errorf(`\d orders: no primary key (tenant_id, order_id) in:\n%s`, out)
		}
		// Every line of both foreign key footers: a wrong definition on any
		// of them (each used to get the first constraint's) fails.
		fks := append(psqlFooter(out, "Foreign-key constraints:"), psqlFooter(out, "Referenced by:")...)
		for _, l := range fks {
			if !psqlFooterFK.MatchString(l) {
				return fmt.Errorf(`\d orders: foreign key line %q is not a FOREIGN KEY definition in:\n%s`, l, out)
			}
		}
		return sameList(`\d orders foreign keys`, fks, ordersFKLines)
	})
	check(t, "psql", "d-customers", func() error {
		out, err := psql(ctx, t, "-A", "-c", `\d customers`)
		if err != nil {
			return err
		}
		return sameList(`\d customers columns (phone hidden without group pii)`, column(psqlTable(out), "Column"), customersColumns)
	})
	check(t, "psql", "dn", func() error {
		out, err := psql(ctx, t, "-A", "-c", `\dn`)
		if err != nil {
			return err
		}
		return sameSet(`\dn names`, column(psqlTable(out), "Name"), []string{"public"})
	})
	check(t, "psql", "refused", func() error {
		_, err := psql(ctx, t, "-c", "SELECT * FROM internal_costs")
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			return fmt.Errorf("SELECT * FROM internal_costs: got %v, want permission denied", err)
		}
		return nil
	})
}
