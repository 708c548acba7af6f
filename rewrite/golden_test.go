package rewrite

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

var update = flag.Bool("update", false, "rewrite golden files in ../testdata/rewrite")

// goldenCase is one case of a golden file:
//
//	session tenant=acme groups=pii
//	SELECT ...
//	----
//	<rewritten SQL | error: CODE message>
type goldenCase struct {
	comments []string
	session  string
	input    string
	want     string
	line     int
}

func readGolden(t *testing.T, path string) []goldenCase {
	t.Helper()
	lines := strings.Split(readFile(t, path), "\n")
	var cases []goldenCase
	var c *goldenCase
	var pending []string
	state := 0 // 0: between cases, 1: input, 2: output
	for i, l := range lines {
		switch state {
		case 0:
			switch {
			case strings.TrimSpace(l) == "":
			case strings.HasPrefix(l, "#"):
				pending = append(pending, l)
			case strings.HasPrefix(l, "session"):
				cases = append(cases, goldenCase{session: l, comments: pending, line: i + 1})
				c = &cases[len(cases)-1]
				pending = nil
				state = 1
			default:
				t.Fatalf("%s:%d: want a session line, got %q", path, i+1, l)
			}
		case 1:
			if l == "----" {
				state = 2
				continue
			}
			if c.input != "" {
				c.input += "\n"
			}
			c.input += l
		case 2:
			if strings.TrimSpace(l) == "" {
				state = 0
				continue
			}
			if c.want != "" {
				c.want += "\n"
			}
			c.want += l
		}
	}
	if state == 1 {
		t.Fatalf("%s: last case has no ----", path)
	}
	return cases
}

func writeGolden(t *testing.T, path string, cases []goldenCase) {
	var b strings.Builder
	for i, c := range cases {
		if i > 0 {
			b.WriteString("\n")
		}
		for _, cm := range c.comments {
			b.WriteString(cm + "\n")
		}
		fmt.Fprintf(&b, "%s\n%s\n----\n%s\n", c.session, c.input, c.want)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func formatOutcome(res *Result, err error) string {
	if err != nil {
		var pe *pgerr.Error
		if !errors.As(err, &pe) {
			return "error: (not a *pgerr.Error) " + err.Error()
		}
		s := fmt.Sprintf("error: %s %s", pe.Code, pe.Message)
		if pe.Position > 0 {
			s += fmt.Sprintf(" (position %d)", pe.Position)
		}
		return s
	}
	return res.SQL
}

func goldenFiles(t *testing.T) []string {
	files, err := filepath.Glob("../testdata/rewrite/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	return files
}

// TestGolden rewrites every case of testdata/rewrite/*.txt and compares; every
// output must parse again.
func TestGolden(t *testing.T) {
	r := demoRewriter(t, Options{CacheBytes: -1, MaxStatementTimeout: 5 * time.Minute, MaxWorkMem: 256 << 20, Database: "analytics"})
	for _, path := range goldenFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			checkGolden(t, path, func(c *goldenCase, id *policy.Identity) string {
				res, rerr := r.Rewrite(context.Background(), c.input, id)
				if rerr == nil {
					if _, err := pg_query.Parse(res.SQL); err != nil {
						t.Errorf("%s:%d: output does not parse: %v\n%s", path, c.line, err, res.SQL)
					}
				}
				return formatOutcome(res, rerr)
			})
		})
	}
}

// checkGolden compares every case of the golden file at path with its
// outcome, or with -update writes the outcomes back to the file.
func checkGolden(t *testing.T, path string, outcome func(c *goldenCase, id *policy.Identity) string) {
	t.Helper()
	cases := readGolden(t, path)
	for i := range cases {
		c := &cases[i]
		id, err := parseSession(c.session)
		if err != nil {
			t.Fatalf("%s:%d: %v", path, c.line, err)
		}
		got := outcome(c, id)
		if *update {
			c.want = got
			continue
		}
		if got != c.want {
			t.Errorf("%s:%d:\ninput: %s\nwant:\n%s\ngot:\n%s", path, c.line, c.input, c.want, got)
		}
	}
	if *update {
		writeGolden(t, path, cases)
	}
}

// demoDB creates a demo database and returns a connection as a read-only role.
func demoDB(t *testing.T) *pgx.Conn {
	t.Helper()
	setup := readFile(t, "../testdata/demo/schema.sql") + readFile(t, "../testdata/demo/data.sql")
	u := pgtest.NewDatabase(t, setup)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	// Roles are cluster-wide: create once, grant per database.
	admin.Exec(ctx, "DO $$BEGIN CREATE ROLE warden_ro LOGIN PASSWORD 'pw'; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
	if _, err := admin.Exec(ctx, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO warden_ro; ALTER ROLE warden_ro SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	conn, err := pgx.Connect(ctx, pgtest.WithUser(t, u, "warden_ro", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestGoldenExecute runs every non-error golden output on the demo database.
func TestGoldenExecute(t *testing.T) {
	if *update {
		t.Skip("updating goldens")
	}
	conn := demoDB(t)
	ctx := context.Background()
	r := demoRewriter(t, Options{CacheBytes: -1, MaxStatementTimeout: 5 * time.Minute, MaxWorkMem: 256 << 20, Database: "analytics"})
	n := 0
	for _, path := range goldenFiles(t) {
		if filepath.Base(path) == "writes.txt" {
			continue // TestWritesGoldenExecute runs them, as a role that may write
		}
		for _, c := range readGolden(t, path) {
			if strings.HasPrefix(c.want, "error:") {
				continue
			}
			id, _ := parseSession(c.session)
			res, err := r.Rewrite(context.Background(), c.input, id)
			if err != nil {
				t.Errorf("%s:%d: %v", path, c.line, err)
				continue
			}
			if res.SQL == "" {
				continue
			}
			n++
			if _, err := conn.PgConn().Exec(ctx, res.SQL).ReadAll(); err != nil {
				t.Errorf("%s:%d: execute: %v\n%s", filepath.Base(path), c.line, err, res.SQL)
			}
			for _, q := range []string{"ROLLBACK", "DISCARD ALL"} {
				if _, err := conn.PgConn().Exec(ctx, q).ReadAll(); err != nil {
					t.Fatalf("cleanup: %v", err)
				}
			}
		}
	}
	t.Logf("executed %d golden outputs", n)
}
