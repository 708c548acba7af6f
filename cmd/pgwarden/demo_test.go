package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// demoSession is one tenant's printed psql command, parsed.
type demoSession struct {
	tenant, password, conninfo string
}

var psqlLine = regexp.MustCompile(`PGPASSWORD='([^']+)' psql "([^"]+)"`)

// startDemo runs `pgwarden demo` as a user would and returns the sessions it
// printed, its config path and every line it printed. The demo stops when the
// test ends, and the test checks that it removed what it created.
func startDemo(t *testing.T) (map[string]demoSession, string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	rest := make(chan string, 1) // what the demo prints after it is ready
	go func() {
		code := run(ctx, []string{"demo", "--dir", dir, "--port", "0", "--http-port", "0", "--metrics-port", "0"}, pw, os.Stderr)
		pw.Close()
		done <- code
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("pgwarden demo exited %d after Ctrl-C, want 0", code)
			}
		case <-time.After(90 * time.Second):
			t.Error("pgwarden demo did not stop within 90s of Ctrl-C")
		}
		select {
		case out := <-rest:
			if !strings.Contains(out, "stopping the demo") || !strings.Contains(out, "pgwarden demo stopped.") {
				t.Errorf("demo printed on shutdown %q, want what it stops and that it stopped", out)
			}
		case <-time.After(10 * time.Second):
			t.Error("demo output did not end after it stopped")
		}
		for _, name := range []string{"keys", "pgwarden.yaml", "policy.yaml", "rowsecurity.yaml", "audit.jsonl"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				t.Errorf("demo left %s behind", name)
			}
		}
	})
	sessions := map[string]demoSession{}
	var cfgPath, tenant string
	var lines []string
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	deadline := time.AfterFunc(3*time.Minute, func() { pw.CloseWithError(errors.New("demo did not come up in 3 minutes")) })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "# "):
			tenant = strings.TrimPrefix(strings.TrimSpace(line), "# ")
		case psqlLine.MatchString(line):
			m := psqlLine.FindStringSubmatch(line)
			sessions[tenant] = demoSession{tenant: tenant, password: m[1], conninfo: m[2]}
		case strings.HasPrefix(strings.TrimSpace(line), "config:"):
			cfgPath = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "config:"))
		}
		if strings.Contains(line, "press Ctrl-C") {
			go func() {
				b, _ := io.ReadAll(pr)
				rest <- string(b)
			}()
			return sessions, cfgPath, lines
		}
	}
	t.Fatalf("demo output ended before it was ready: %v", sc.Err())
	return nil, "", nil
}

func connectDemo(t *testing.T, s demoSession) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(s.conninfo)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = s.password
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect as %s: %v", s.tenant, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestDemo is the "what done looks like": make demo, then the printed
// psql command for acme sees only acme, internal_costs is refused, and
// globex's command sees only globex.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster and the whole service")
	}
	sessions, cfgPath, lines := startDemo(t)
	for _, tenant := range []string{"acme", "globex", "initech"} {
		if _, ok := sessions[tenant]; !ok {
			t.Fatalf("demo printed no psql command for %s (got %v)", tenant, sessions)
		}
	}
	if _, err := os.Stat(cfgPath); err != nil {
		t.Fatalf("printed config path %q: %v", cfgPath, err)
	}
	ctx := context.Background()
	for _, tenant := range []string{"acme", "globex"} {
		conn := connectDemo(t, sessions[tenant])
		rows, err := conn.Query(ctx, "SELECT DISTINCT tenant_id FROM orders")
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != tenant {
			t.Errorf("%s: SELECT DISTINCT tenant_id FROM orders = %v, want [%s]", tenant, got, tenant)
		}
		_, err = conn.Exec(ctx, "SELECT * FROM internal_costs")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: SELECT * FROM internal_costs: %v, want SQLSTATE 42501", tenant, err)
		}
		// The connection stays usable after a refusal.
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil {
			t.Fatalf("%s: after refusal: %v", tenant, err)
		}
		want := map[string]int{"acme": 200, "globex": 150}[tenant]
		if n != want {
			t.Errorf("%s: count(*) FROM customers = %d, want %d", tenant, n, want)
		}
	}

	checkSuggestions(t, sessions, lines)
	checkTenancyDemo(t, sessions, cfgPath, lines)

	// The printed command works as printed, in the real psql.
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not installed")
	}
	s := sessions["acme"]
	cmd := exec.Command(psql, s.conninfo, "-XAtc", "SELECT DISTINCT tenant_id FROM orders")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+s.password)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "acme" {
		t.Errorf("psql as acme: %q, %v; want \"acme\"", out, err)
	}
}

// queryCheck judges what a suggested query answered (rows as text).
type queryCheck func(rows [][]string, err error) error

func wantRows(want ...string) queryCheck {
	return func(rows [][]string, err error) error {
		var got []string
		for _, r := range rows {
			got = append(got, strings.Join(r, "|"))
		}
		if err != nil || !slices.Equal(got, want) {
			return fmt.Errorf("got %q, %v; want %q", got, err, want)
		}
		return nil
	}
}

func wantSQLState(code string) queryCheck {
	return func(rows [][]string, err error) error {
		if sqlstate(err) != code {
			return fmt.Errorf("got %v (%d rows), want SQLSTATE %s", err, len(rows), code)
		}
		return nil
	}
}

// suggestionChecks say, for each query the demo suggests, what showing "what
// it is meant to show" means for acme (demoQueries) and for the printed pii
// ticket command's session (demoPIIQueries). Demo data: customers 1-3 of
// acme are Bob, Carol and Dave, all with a phone.
var suggestionChecks = map[string]queryCheck{
	"SELECT DISTINCT tenant_id FROM orders;": wantRows("acme"),
	"SELECT name, email FROM customers ORDER BY customer_id LIMIT 3;": wantRows(
		"Bob acme 1|***@acme.example", "Carol acme 2|***@acme.example", "Dave acme 3|***@acme.example"),
	"SELECT name, phone FROM customers LIMIT 3;":                                   wantSQLState("42501"),
	"SELECT * FROM internal_costs;":                                                wantSQLState("42501"),
	"INSERT INTO comments (order_id, body) VALUES (1, 'hi') RETURNING created_by;": wantRows(fmt.Sprintf("%x", md5.Sum([]byte("acme-analyst")))),
	"UPDATE comments SET body = 'mine' WHERE comment_id = 3;":                      wantRows(),
	"SELECT name, email, phone FROM customers ORDER BY customer_id LIMIT 3;": wantRows(
		"Bob acme 1|bob.1@acme.example|+1-555-0097", "Carol acme 2|carol.2@acme.example|+1-555-0194",
		"Dave acme 3|dave.3@acme.example|+1-555-0291"),
	"SELECT DISTINCT region FROM orders;":                                                              wantRows("EU"),
	"SELECT current_user, count(*) FROM support_tickets;":                                              wantRows("tenant_acme|5"),
	"SELECT DISTINCT o.tenant_id, t.tenant_id FROM orders o JOIN support_tickets t USING (tenant_id);": wantRows("acme|acme"),
	"SET app.tenant = 'globex';":                                                                       wantSQLState("42501"),
}

// runSuggested runs sql as psql would (simple protocol) and returns its rows as text.
func runSuggested(conn *pgx.Conn, sql string) ([][]string, error) {
	rows, err := conn.Query(context.Background(), sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
		vals, err := r.Values()
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = fmt.Sprint(v)
		}
		return out, err
	})
}

// printedCommand finds the printed line running pgwarden with sub and returns
// its arguments after the program, checking that the program as printed
// runs from this shell (it used to print a bare `pgwarden`, not on PATH).
func printedCommand(t *testing.T, lines []string, sub string) []string {
	t.Helper()
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 2 && f[1] == sub && f[2] == "--config" {
			if _, err := exec.LookPath(f[0]); err != nil {
				t.Errorf("demo prints %q: %v", l, err)
			}
			return f[1:]
		}
	}
	t.Fatalf("demo printed no %s command", sub)
	return nil
}

// checkSuggestions runs every query the demo suggests and the commands it
// prints (a pii session from ticket --session, then revoke), as a user would
// copy them, and checks that the README suggests the same queries.
func checkSuggestions(t *testing.T, sessions map[string]demoSession, lines []string) {
	acme := sessions["acme"]
	out := strings.Join(lines, "\n")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range slices.Concat(demoQueries, demoPIIQueries, demoRLSQueries) {
		if !strings.Contains(out, q.SQL+" ") || !strings.Contains(out, "-- "+q.Shows) {
			t.Errorf("demo did not print %q -- %s", q.SQL, q.Shows)
		}
		if !strings.Contains(string(readme), q.SQL) {
			t.Errorf("README does not suggest %q, which the demo does", q.SQL)
		}
		if suggestionChecks[q.SQL] == nil {
			t.Errorf("no check of what %q shows: add one to suggestionChecks", q.SQL)
		}
	}
	check := func(conn *pgx.Conn, qs []demoQuery) {
		for _, q := range qs {
			if c := suggestionChecks[q.SQL]; c != nil {
				rows, err := runSuggested(conn, q.SQL)
				if err := c(rows, err); err != nil {
					t.Errorf("%s (meant to show: %s): %v", q.SQL, q.Shows, err)
				}
			}
		}
	}
	check(connectDemo(t, acme), demoQueries)
	rls, ok := sessions["acme, pass-through"]
	if !ok || !strings.Contains(rls.conninfo, "dbname="+demoRLSWarehouse) {
		t.Fatalf("demo printed no pass-through session (%v)", sessions)
	}
	check(connectDemo(t, rls), demoRLSQueries)

	code, token, errOut := runCLI(t, printedCommand(t, lines, "ticket")...)
	if code != 0 {
		t.Fatalf("printed ticket command: exit %d: %s", code, errOut)
	}
	m := regexp.MustCompile(`session id: (\S+) \(revoke it with: (.*)\)`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("ticket --session said on stderr %q, want the session id and how to revoke it", errOut)
	}
	sid := m[1]
	pii := connectDemo(t, demoSession{tenant: "acme", password: strings.TrimSpace(token),
		conninfo: strings.Replace(acme.conninfo, "user=acme", "user=alice", 1)})
	check(pii, demoPIIQueries)

	revoke := printedCommand(t, lines, "revoke")
	if i := slices.Index(revoke, "SESSION_ID"); i < 0 {
		t.Fatalf("printed revoke command %q has no SESSION_ID to fill in", revoke)
	} else {
		revoke[i] = sid
	}
	if hint := strings.Fields(m[2]); !slices.Equal(hint[1:], revoke) {
		t.Errorf("ticket --session suggests %q, the demo %q", hint[1:], revoke)
	}
	if code, out, errOut := runCLI(t, revoke...); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("printed revoke command: exit %d: %s%s", code, out, errOut)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := pii.Exec(context.Background(), "SELECT 1"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revoked session still served 10s after pgwarden revoke")
		}
		time.Sleep(50 * time.Millisecond)
	}
	revoke[len(revoke)-1] = "no-such-session"
	if code, _, errOut := runCLI(t, revoke...); code != 1 || !strings.Contains(errOut, "no session") {
		t.Errorf("revoke of an unknown session: exit %d %s, want exit 1 naming it", code, errOut)
	}
}
