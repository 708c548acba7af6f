package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
// printed and its config path. The demo stops when the test ends, and the test
// checks that it removed what it created.
func startDemo(t *testing.T) (map[string]demoSession, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
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
		for _, name := range []string{"keys", "pgwarden.yaml", "policy.yaml", "audit.jsonl"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				t.Errorf("demo left %s behind", name)
			}
		}
	})
	sessions := map[string]demoSession{}
	var cfgPath, tenant string
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	deadline := time.AfterFunc(3*time.Minute, func() { pw.CloseWithError(errors.New("demo did not come up in 3 minutes")) })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
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
			go io.Copy(io.Discard, pr)
			return sessions, cfgPath
		}
	}
	t.Fatalf("demo output ended before it was ready: %v", sc.Err())
	return nil, ""
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
	sessions, cfgPath := startDemo(t)
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
