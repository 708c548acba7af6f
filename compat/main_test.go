package compat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/testutil"
)

// demo is the running `pgwarden demo` the whole suite talks to; TestMain sets
// it before any test runs and nothing changes it afterwards.
var demo *demoInfo

// results collects the matrix; subtests record into it from t.Cleanup.
var results = &matrix{}

// demoInfo is what the demo printed: one session per tenant and its config.
type demoInfo struct {
	bin      string
	config   string
	sessions map[string]session
}

// session is one tenant's connection parameters as the demo printed them.
type session struct {
	Tenant, Host, Port, Database, User, Password string
}

// env returns the variables client scripts read their connection from.
func (s session) env() []string {
	return []string{"PGHOST=" + s.Host, "PGPORT=" + s.Port, "PGDATABASE=" + s.Database,
		"PGUSER=" + s.User, "PGPASSWORD=" + s.Password, "PGSSLMODE=disable"}
}

// url is the session as a postgres:// URL (without the password in String()
// output of drivers that log it: pgx and lib/pq do not).
func (s session) url() string {
	return fmt.Sprintf("postgres://%s:%s@%s:%s/%s?sslmode=disable", s.User, s.Password, s.Host, s.Port, s.Database)
}

func (s session) conninfo() string {
	return fmt.Sprintf("host=%s port=%s dbname=%s user=%s sslmode=disable", s.Host, s.Port, s.Database, s.User)
}

func acme(t *testing.T) session {
	t.Helper()
	s, ok := demo.sessions["acme"]
	if !ok {
		t.Fatal("the demo printed no session for acme")
	}
	return s
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "pgwarden-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "compat:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// PGWARDEN_COMPAT_BINARY runs a prebuilt binary (make compat passes
	// bin/pgwarden); by default the suite builds the one of this tree.
	bin := os.Getenv("PGWARDEN_COMPAT_BINARY")
	if bin == "" {
		bin = filepath.Join(tmp, "pgwarden")
		if err := buildBinary(bin); err != nil {
			fmt.Fprintln(os.Stderr, "compat: build pgwarden:", err)
			return 1
		}
	} else if bin, err = filepath.Abs(bin); err != nil {
		fmt.Fprintln(os.Stderr, "compat:", err)
		return 1
	}
	stop, info, err := startDemo(bin, filepath.Join(tmp, "demo"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "compat: start demo:", err)
		if stop != nil {
			stop()
		}
		return 1
	}
	demo = info
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "compat: stop demo:", err)
		code = 1
	}
	results.print(os.Stdout)
	if path := os.Getenv("PGWARDEN_COMPAT_MATRIX"); path != "" {
		var b bytes.Buffer
		results.print(&b)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "compat: write matrix:", err)
			code = 1
		}
	}
	return code
}

func buildBinary(out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, "build", "-o", out, "../cmd/pgwarden")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

var (
	tenantLine = regexp.MustCompile(`^\s*# (\w+)\s*$`)
	psqlLine   = regexp.MustCompile(`PGPASSWORD='([^']+)' psql "host=(\S+) port=(\d+) dbname=(\S+) user=(\S+) sslmode=disable"`)
	configLine = regexp.MustCompile(`^\s*config:\s+(\S+)\s*$`)
)

// startDemo runs `pgwarden demo` and parses its banner. stop sends SIGINT
// (Ctrl-C), as a person would, and waits for a clean exit.
func startDemo(bin, dir string) (stop func() error, info *demoInfo, err error) {
	cmd := exec.Command(bin, "demo", "--dir", dir, "--port", "0", "--http-port", "0", "--metrics-port", "0")
	var stderr testutil.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan error, 1)
	stop = func() error {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				return fmt.Errorf("demo exited with %v after SIGINT; stderr:\n%s", err, stderr.String())
			}
			return nil
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-exited
			return errors.New("demo did not stop within 60s of SIGINT")
		}
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, out)
		exited <- cmd.Wait()
	}()
	info = &demoInfo{bin: bin, sessions: map[string]session{}}
	var tenant string
	timeout := time.After(3 * time.Minute)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return stop, nil, fmt.Errorf("demo output ended before it was ready; stderr:\n%s", stderr.String())
			}
			if m := tenantLine.FindStringSubmatch(line); m != nil {
				tenant = m[1]
			} else if strings.HasPrefix(strings.TrimSpace(line), "# ") {
				tenant = "" // another kind of session (the pass-through one)
			} else if m := psqlLine.FindStringSubmatch(line); m != nil && tenant != "" {
				info.sessions[tenant] = session{Tenant: tenant, Password: m[1], Host: m[2], Port: m[3], Database: m[4], User: m[5]}
			} else if m := configLine.FindStringSubmatch(line); m != nil {
				info.config = m[1]
			}
			if strings.Contains(line, "press Ctrl-C") {
				// Keep draining so that the demo never blocks on a full pipe.
				go func() {
					for range lines {
					}
				}()
				return stop, info, nil
			}
		case <-timeout:
			return stop, nil, errors.New("demo did not come up within 3 minutes")
		}
	}
}

// matrix is the client × check result table printed after the run.
type matrix struct {
	mu   sync.Mutex
	rows []matrixRow
}

type matrixRow struct {
	client, check, result, note string
}

func (m *matrix) record(client, check, result, note string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, matrixRow{client, check, result, note})
}

// print writes one line per client with every check and its result, then the
// notes (why a check was skipped or failed) and the totals.
func (m *matrix) print(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.rows) == 0 {
		return
	}
	var clients []string
	byClient := map[string][]matrixRow{}
	for _, r := range m.rows {
		if _, ok := byClient[r.client]; !ok {
			clients = append(clients, r.client)
		}
		byClient[r.client] = append(byClient[r.client], r)
	}
	width := len("check")
	for _, r := range m.rows {
		if len(r.check) > width {
			width = len(r.check)
		}
	}
	counts := map[string]int{}
	fmt.Fprintf(w, "\npgwarden compatibility matrix (tenant acme, demo data)\n")
	fmt.Fprintf(w, "%-14s %-*s  %s\n", "client", width, "check", "result")
	fmt.Fprintf(w, "%s\n", strings.Repeat("-", 14+1+width+2+6))
	var notes []string
	for _, c := range clients {
		rows := byClient[c]
		for i, r := range rows {
			name := ""
			if i == 0 {
				name = c
			}
			fmt.Fprintf(w, "%-14s %-*s  %s\n", name, width, r.check, r.result)
			counts[r.result]++
			if r.note != "" {
				notes = append(notes, fmt.Sprintf("  %s/%s: %s", r.client, r.check, oneLine(r.note)))
			}
		}
	}
	sort.Strings(notes)
	if len(notes) > 0 {
		fmt.Fprintf(w, "\nnotes:\n%s\n", strings.Join(notes, "\n"))
	}
	fmt.Fprintf(w, "\nmatrix totals: pass %d, fail %d, skip %d\n", counts["PASS"], counts["FAIL"], counts["SKIP"])
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 220 {
		s = s[:220] + "…"
	}
	return s
}
