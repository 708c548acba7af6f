package compat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden"
	demodb "github.com/pgwarden/pgwarden/internal/demo"
	"github.com/pgwarden/pgwarden/internal/pgcluster"
)

// The corpus (testdata/corpus/<tool>.sql) is the SQL that BI and SQL tools
// send, each statement named and sourced. TestCorpus runs every statement as
// acme through the running demo and, as the oracle, on a database that holds
// acme's rows alone and exposes exactly what acme's session may see
// (acmeExposed), in the simple and in the extended protocol, and compares.
const corpusDir = "../testdata/corpus"

// acmeExposed turns a copy of the demo database into what the demo policy
// exposes to an acme querier outside groups pii and analysts: acme's rows
// only, internal_costs (not in the policy) absent, comments' author hashed,
// customers.phone (denied) absent, email and payload masked as the rewriter
// masks them. The column is dropped rather than left out so that attnums
// keep the real numbering, as the virtual catalog does. comments.comment_id
// stays an identity column: through pgwarden it is one (an INSERT without it
// numbers the row), and PostgreSQL has no identity without its sequence,
// which the virtual catalogs show as part of the column (its parameters,
// never its values).
const acmeExposed = `
DELETE FROM comments WHERE tenant_id <> 'acme';
UPDATE comments SET created_by = md5(created_by::text);
DELETE FROM order_items WHERE tenant_id <> 'acme';
DELETE FROM orders WHERE tenant_id <> 'acme';
DELETE FROM events WHERE tenant_id <> 'acme';
DELETE FROM customers WHERE tenant_id <> 'acme';
DELETE FROM tenants WHERE tenant_id <> 'acme';
DROP TABLE internal_costs;
ALTER TABLE customers DROP COLUMN phone;
UPDATE customers SET email = '***@' || split_part(email, '@', 2);
UPDATE events SET payload = '{}';
`

// corpusEntry is one statement of the corpus.
type corpusEntry struct {
	tool, name, source string
	sql                string
	volatile           map[string]bool // output columns whose values differ between any two servers
	// unordered: the ORDER BY leaves ties, so the row order is not part of
	// the answer; rowcount: a LIMIT without ORDER BY picks any rows, so only
	// their number is.
	unordered, rowcount bool
	file                string
	line                int
}

var (
	entryDirective = regexp.MustCompile(`^-- (name|source|volatile):\s*(.*)$`)
	entryFlag      = regexp.MustCompile(`^-- (unordered|rowcount)\s*$`)
	oidPlaceholder = regexp.MustCompile(`\{\{oid:([a-z_.]+)\}\}`)
)

// readCorpus parses every testdata/corpus/*.sql file. An entry starts with
// "-- name: tool/short-name", then "-- source: repository path: where",
// optional "-- volatile: col, col", "-- unordered" and "-- rowcount" lines,
// then one SQL statement.
func readCorpus(t *testing.T) []corpusEntry {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files in %s (%v)", corpusDir, err)
	}
	sort.Strings(files)
	var out []corpusEntry
	names := map[string]bool{}
	for _, f := range files {
		tool := strings.TrimSuffix(filepath.Base(f), ".sql")
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cur *corpusEntry
		var sql []string
		flush := func() {
			if cur == nil {
				return
			}
			cur.sql = strings.TrimSpace(strings.Join(sql, "\n"))
			cur.sql = strings.TrimSpace(strings.TrimSuffix(cur.sql, ";"))
			switch {
			case cur.source == "":
				t.Errorf("%s:%d: %s has no -- source: line", f, cur.line, cur.name)
			case cur.sql == "":
				t.Errorf("%s:%d: %s has no statement", f, cur.line, cur.name)
			case names[cur.name]:
				t.Errorf("%s:%d: %s named twice", f, cur.line, cur.name)
			}
			names[cur.name] = true
			out = append(out, *cur)
			cur, sql = nil, nil
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for ln := 1; sc.Scan(); ln++ {
			line := sc.Text()
			m := entryDirective.FindStringSubmatch(line)
			switch {
			case m != nil && m[1] == "name":
				flush()
				if !strings.HasPrefix(m[2], tool+"/") {
					t.Errorf("%s:%d: entry %q must be named %s/…", f, ln, m[2], tool)
				}
				cur = &corpusEntry{tool: tool, name: m[2], file: f, line: ln, volatile: map[string]bool{}}
			case cur == nil:
				// The file's header comment.
			case m != nil && m[1] == "source" && len(sql) == 0:
				cur.source = m[2]
			case entryFlag.MatchString(line) && len(sql) == 0:
				f := entryFlag.FindStringSubmatch(line)[1]
				cur.unordered = cur.unordered || f == "unordered"
				cur.rowcount = cur.rowcount || f == "rowcount"
			case m != nil && m[1] == "volatile" && len(sql) == 0:
				for _, c := range strings.Split(m[2], ",") {
					cur.volatile[strings.TrimSpace(c)] = true
				}
			default:
				sql = append(sql, line)
			}
		}
		flush()
	}
	return out
}

// readKnownGaps reads testdata/corpus/known_gaps.txt: "tool/name  reason".
func readKnownGaps(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir, "known_gaps.txt"))
	if err != nil {
		t.Fatal(err)
	}
	gaps := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, reason, ok := strings.Cut(line, " ")
		if !ok || strings.TrimSpace(reason) == "" {
			t.Errorf("known_gaps.txt:%d: want \"tool/name reason\", got %q", i+1, line)
			continue
		}
		gaps[name] = strings.TrimSpace(reason)
	}
	return gaps
}

// corpusSide is one server the corpus runs on: pgwarden or the oracle.
type corpusSide struct {
	url  string
	oids map[string]string // "public.orders" -> its oid on this side
	// names maps this side's oids of the database's own objects to names, so
	// that the two sides' answers compare.
	names map[string]string
}

// corpusAnswer is everything a statement answered that the comparison reads.
type corpusAnswer struct {
	cols []string
	rows []string
	code string // SQLSTATE of the error, "" for none
	msg  string
}

func (a corpusAnswer) String() string {
	if a.code != "" {
		return "ERROR " + a.code + " " + a.msg
	}
	return fmt.Sprintf("columns %q, %d rows, first %q", a.cols, len(a.rows), head(a.rows, 3))
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// run sends sql on conn in the simple or the extended protocol and returns
// the last result's columns and rows (normalized) or its error.
func (s *corpusSide) run(ctx context.Context, conn *pgconn.PgConn, e corpusEntry, extended bool) corpusAnswer {
	sql := oidPlaceholder.ReplaceAllStringFunc(e.sql, func(m string) string {
		if oid, ok := s.oids[oidPlaceholder.FindStringSubmatch(m)[1]]; ok {
			return oid
		}
		return "0"
	})
	var res *pgconn.Result
	if extended {
		res = conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	} else {
		all, err := conn.Exec(ctx, sql).ReadAll()
		if err != nil {
			res = &pgconn.Result{Err: err}
		} else if len(all) > 0 {
			res = all[len(all)-1]
		} else {
			res = &pgconn.Result{}
		}
	}
	// Each statement starts outside a transaction block, as the tool's
	// next statement would after its own COMMIT or ROLLBACK.
	if conn.TxStatus() != 'I' {
		conn.Exec(ctx, "ROLLBACK").ReadAll()
	}
	var a corpusAnswer
	if res.Err != nil {
		var pe *pgconn.PgError
		if errors.As(res.Err, &pe) {
			a.code, a.msg = pe.Code, pe.Message
		} else {
			a.code, a.msg = "client", res.Err.Error()
		}
		return a
	}
	volatile := make([]bool, len(res.FieldDescriptions))
	for i, f := range res.FieldDescriptions {
		a.cols = append(a.cols, f.Name)
		volatile[i] = e.volatile[f.Name]
	}
	for _, row := range res.Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			switch {
			case i < len(volatile) && volatile[i]:
				cells[i] = "<volatile>"
			case v == nil:
				cells[i] = "NULL"
			default:
				cells[i] = s.normalize(string(v))
			}
		}
		a.rows = append(a.rows, strings.Join(cells, " | "))
	}
	if e.rowcount {
		a.rows = []string{fmt.Sprintf("<%d rows>", len(a.rows))}
	}
	if e.unordered || !ordered(sql) {
		sort.Strings(a.rows)
	}
	return a
}

// oidWord is an oid-sized number inside a cell (an oidvector, an array, a
// regclass-less catalog value).
var oidWord = regexp.MustCompile(`\b[0-9]{5,10}\b`)

// normalize replaces the oids of the database's own objects (which differ
// between two databases built from the same DDL) by the objects' names.
func (s *corpusSide) normalize(cell string) string {
	if name, ok := s.names[cell]; ok {
		return "<" + name + ">"
	}
	return oidWord.ReplaceAllStringFunc(cell, func(w string) string {
		if name, ok := s.names[w]; ok {
			return "<" + name + ">"
		}
		return w
	})
}

// ordered reports whether the statement's top-level query has an ORDER BY:
// only then is row order part of the answer.
func ordered(sql string) bool {
	tree, err := pg_query.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 {
		return false
	}
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	return sel != nil && len(sel.SortClause) > 0
}

// objectNamesSQL names the oids that two databases built from the same DDL
// give differently: the database's own relations, types, constraints,
// defaults, the database itself and its roles. Run on the warehouse directly
// as the service account, and on the oracle.
const objectNamesSQL = `
SELECT oid::text, 'rel ' || relname FROM pg_class WHERE relnamespace = 'public'::regnamespace
UNION ALL SELECT oid::text, 'type ' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace
UNION ALL SELECT oid::text, 'con ' || conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT a.oid::text, 'default ' || c.relname || '.' || a.adnum FROM pg_attrdef a JOIN pg_class c ON c.oid = a.adrelid
UNION ALL SELECT oid::text, 'database ' || CASE WHEN datname = current_database() THEN 'current' ELSE datname END FROM pg_database WHERE oid >= 16384
UNION ALL SELECT oid::text, 'role ' || rolname FROM pg_roles WHERE oid >= 16384
UNION ALL SELECT 'public.' || relname, oid::text FROM pg_class WHERE relnamespace = 'public'::regnamespace`

func loadObjectNames(ctx context.Context, url string, s *corpusSide) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, objectNamesSQL)
	if err != nil {
		return err
	}
	s.names, s.oids = map[string]string{}, map[string]string{}
	var a, b string
	_, err = pgx.ForEachRow(rows, []any{&a, &b}, func() error {
		if strings.HasPrefix(a, "public.") {
			s.oids[a] = b
		} else {
			s.names[a] = b
		}
		return nil
	})
	return err
}

// startOracle starts a PostgreSQL of the same version as the demo's, with a
// database named like the demo's (analytics) holding acmeExposed, read by a
// service account named like the demo's.
func startOracle(ctx context.Context, t *testing.T) string {
	t.Helper()
	// No autovacuum: its ANALYZE would change reltuples under the test.
	c, err := pgcluster.Start(ctx, pgcluster.Options{Settings: map[string]string{"autovacuum": "off"}})
	if err != nil {
		t.Fatalf("oracle cluster: %v", err)
	}
	t.Cleanup(func() { c.Stop() })
	admin, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE analytics"); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	conn, err := pgx.Connect(ctx, c.DSN("analytics"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{pgwarden.DemoSchema, pgwarden.DemoData, acmeExposed} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("oracle database: %v", err)
		}
	}
	pw, err := demodb.CreateServiceAccount(ctx, conn, "pgwarden_svc", "analytics")
	if err != nil {
		t.Fatal(err)
	}
	// The policy's search_path (public) is every session's: the
	// database's default, not a setting of the role (which pg_roles would
	// show in rolconfig, where pgwarden's service account has none).
	if _, err := conn.Exec(ctx, "ALTER DATABASE analytics SET search_path = public"); err != nil {
		t.Fatal(err)
	}
	// The session sees one database: the cluster's others (postgres and the
	// templates) go, so that pg_database holds what the policy exposes.
	for _, sql := range []string{"ALTER DATABASE template0 IS_TEMPLATE false", "ALTER DATABASE template1 IS_TEMPLATE false",
		"DROP DATABASE template0", "DROP DATABASE template1", "DROP DATABASE postgres"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("oracle cluster: %s: %v", sql, err)
		}
	}
	// The oracle must hold acme's rows alone: a copy of the whole warehouse
	// would agree with a leaking proxy.
	var orders, customers int64
	var tenants []string
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM customers), "+
		"(SELECT array_agg(DISTINCT tenant_id) FROM ("+tenantsSQL+") t)").Scan(&orders, &customers, &tenants); err != nil {
		t.Fatal(err)
	}
	if err := firstErr(onlyAcme(tenants), wantCount("oracle orders", orders, acmeOrders),
		wantCount("oracle customers", customers, acmeCustomers)); err != nil {
		t.Fatalf("oracle database: %v", err)
	}
	resetOracleStatistics(ctx, t, conn)
	return c.UserDSN("analytics", "pgwarden_svc", pw)
}

// resetOracleStatistics makes the oracle a database whose statistics were
// never gathered. The policy exposes no statistics: pgwarden answers
// reltuples -1, relpages 0 and every counter of the pg_stat_* views 0 (NULL
// timestamps), whatever the warehouse counted across all tenants. A
// database holding only acme's rows that exposes exactly that is one never
// analyzed (autovacuum is off) whose cumulative statistics were reset after
// it was loaded: its counters then count only what the corpus itself does
// on it, and n_live_tup (what Metabase's table sync reads) stays 0 as no
// corpus statement writes. Sizes are no statistic: a relation with rows has
// pages in any oracle, so size functions stay listed in known_gaps.txt.
// conn is the connection that loaded the oracle: its pending statistics are
// flushed first (before the statement's ReadyForQuery), so that none arrive
// after the reset.
func resetOracleStatistics(ctx context.Context, t *testing.T, conn *pgx.Conn) {
	t.Helper()
	var live int64
	for _, sql := range []string{"SELECT pg_stat_force_next_flush()", "SELECT pg_stat_reset()"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("oracle statistics: %s: %v", sql, err)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT COALESCE(sum(n_live_tup), 0)::int8 FROM pg_stat_user_tables").Scan(&live); err != nil || live != 0 {
		t.Fatalf("oracle statistics: n_live_tup %d after pg_stat_reset() (%v)", live, err)
	}
}

// warehouseURL is the demo's service-account DSN from its config: the
// pgwarden side's oids are looked up there, past the virtual catalog.
func warehouseURL(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(demo.config)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*dsn:\s*(postgres://\S+)\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no warehouse dsn in %s", demo.config)
	}
	return string(m[1])
}

// corpusTally counts one tool's outcomes.
type corpusTally struct{ ok, wrong, refused int }

func TestCorpus(t *testing.T) {
	entries := readCorpus(t)
	gaps := readKnownGaps(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	oracleURL := startOracle(ctx, t)
	proxy := &corpusSide{url: acme(t).url()}
	oracle := &corpusSide{url: oracleURL}
	if err := loadObjectNames(ctx, warehouseURL(t), proxy); err != nil {
		t.Fatalf("warehouse object names: %v", err)
	}
	if err := loadObjectNames(ctx, oracleURL, oracle); err != nil {
		t.Fatalf("oracle object names: %v", err)
	}
	listed := map[string]bool{}
	for _, e := range entries {
		listed[e.name] = true
	}
	for name := range gaps {
		if !listed[name] {
			t.Errorf("known_gaps.txt lists %s, which is not in the corpus", name)
		}
	}

	// One connection pair per tool and protocol: a tool's statements run in
	// order on one session, as the tool sends them.
	tallies := map[string]*corpusTally{}
	var tools []string
	conns := map[string][2]*pgconn.PgConn{}
	connect := func(tool string, extended bool) ([2]*pgconn.PgConn, error) {
		key := fmt.Sprintf("%s/%v", tool, extended)
		if c, ok := conns[key]; ok {
			return c, nil
		}
		var c [2]*pgconn.PgConn
		for i, u := range []string{proxy.url, oracle.url} {
			conn, err := pgconn.Connect(ctx, u)
			if err != nil {
				return c, err
			}
			t.Cleanup(func() { conn.Close(context.Background()) })
			c[i] = conn
		}
		conns[key] = c
		return c, nil
	}
	for _, e := range entries {
		if tallies[e.tool] == nil {
			tallies[e.tool] = &corpusTally{}
			tools = append(tools, e.tool)
		}
		tally := tallies[e.tool]
		t.Run(e.name, func(t *testing.T) {
			outcome, detail := "ok", ""
			for _, extended := range []bool{false, true} {
				c, err := connect(e.tool, extended)
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				got := proxy.run(ctx, c[0], e, extended)
				want := oracle.run(ctx, c[1], e, extended)
				protocol := map[bool]string{false: "simple", true: "extended"}[extended]
				switch {
				case got.code != "" && want.code == "":
					outcome, detail = "refused", fmt.Sprintf("%s protocol: pgwarden: %s; oracle: %s", protocol, got, want)
				case got.code != want.code || strings.Join(got.cols, ",") != strings.Join(want.cols, ",") ||
					strings.Join(got.rows, "\n") != strings.Join(want.rows, "\n"):
					outcome, detail = "wrong", fmt.Sprintf("%s protocol: pgwarden: %s\noracle: %s%s", protocol, got, want, firstDiff(got.rows, want.rows))
				default:
					continue
				}
				break
			}
			switch outcome {
			case "ok":
				tally.ok++
			case "wrong":
				tally.wrong++
			case "refused":
				tally.refused++
			}
			reason, gap := gaps[e.name]
			if outcome == "ok" {
				if gap {
					t.Logf("known gap %s passes now: remove it from known_gaps.txt", e.name)
				}
				return
			}
			msg := fmt.Sprintf("%s (%s:%d, %s): %s\n%s", outcome, filepath.Base(e.file), e.line, e.source, detail, oneLine(e.sql))
			if gap && !strict {
				t.Skipf("known gap: %s\n%s", reason, msg)
			}
			t.Error(msg)
		})
	}
	var total corpusTally
	var b strings.Builder
	fmt.Fprintf(&b, "\ncorpus (testdata/corpus): each statement as acme through pgwarden vs. on acme's exposed data alone, simple and extended protocol\n")
	fmt.Fprintf(&b, "%-10s %5s %5s %7s %6s\n", "tool", "ok", "wrong", "refused", "total")
	for _, tool := range tools {
		n := tallies[tool]
		if n.ok+n.wrong+n.refused == 0 {
			continue // not selected by -run
		}
		fmt.Fprintf(&b, "%-10s %5d %5d %7d %6d\n", tool, n.ok, n.wrong, n.refused, n.ok+n.wrong+n.refused)
		total.ok, total.wrong, total.refused = total.ok+n.ok, total.wrong+n.wrong, total.refused+n.refused
		res := "PASS"
		if n.wrong+n.refused > 0 {
			res = "SKIP"
			if strict {
				res = "FAIL"
			}
		}
		results.record("corpus", tool, res, fmt.Sprintf("ok %d, wrong %d, refused %d", n.ok, n.wrong, n.refused))
	}
	all := total.ok + total.wrong + total.refused
	fmt.Fprintf(&b, "%-10s %5d %5d %7d %6d  (%.1f%% identical)\n", "all", total.ok, total.wrong, total.refused, all,
		100*float64(total.ok)/float64(max(all, 1)))
	res := "PASS"
	if total.wrong+total.refused > 0 {
		res = map[bool]string{false: "SKIP", true: "FAIL"}[strict]
	}
	results.record("corpus", "all", res, fmt.Sprintf("ok %d of %d (%.1f%% identical), wrong %d, refused %d",
		total.ok, all, 100*float64(total.ok)/float64(max(all, 1)), total.wrong, total.refused))
	t.Log(b.String())
}

// firstDiff names the first row where two answers part.
func firstDiff(got, want []string) string {
	for i := 0; i < len(got) || i < len(want); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("\nfirst difference at row %d:\n  pgwarden: %s\n  oracle:   %s", i+1, g, w)
		}
	}
	return ""
}
