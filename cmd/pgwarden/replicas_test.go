package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/config"
)

// replicaSet is three proxy-only replicas of one deployment (the ticket
// service runs apart, in the demo's app) that can be restarted one by one.
type replicaSet struct {
	t      *testing.T
	cfgs   []*config.File
	stops  []context.CancelFunc
	exited []<-chan struct{}
}

func (rs *replicaSet) start(i int) {
	ctx, cancel := context.WithCancel(context.Background())
	log := zaptest.NewLogger(rs.t, zaptest.Level(zap.WarnLevel)).With(zap.Int("replica", i+1))
	_, exited := serveApp(rs.t, ctx, cancel, rs.cfgs[i], log, onlyProxy)
	rs.stops[i], rs.exited[i] = cancel, exited
}

// restart drains replica i as SIGTERM does and starts it again on the same
// address.
func (rs *replicaSet) restart(i int) {
	rs.stops[i]()
	select {
	case <-rs.exited[i]:
	case <-time.After(60 * time.Second):
		rs.t.Errorf("replica %d did not drain", i+1)
		return
	}
	rs.start(i)
}

// metric sums a counter with one label value over every replica.
func (rs *replicaSet) metric(name, label string) int {
	total := 0
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\{[^}]*"` + regexp.QuoteMeta(label) + `"\} (\d+)`)
	for _, c := range rs.cfgs {
		resp, err := http.Get("http://" + c.Metrics.Listen + "/metrics")
		if err != nil {
			rs.t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.Atoi(m[1])
				total += n
			}
		}
		resp.Body.Close()
	}
	return total
}

// Three replicas behind a real TCP load balancer (HAProxy, round robin):
// tickets stay single-use, a revocation closes the session's connections on
// every replica, a CancelRequest that lands on another replica cancels the
// statement, and a rolling restart under a 60-second pgbench load fails no
// transaction except with 57P01 on a drained connection.
func TestReplicasBehindLoadBalancer(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if haproxy, err = exec.LookPath("/usr/sbin/haproxy"); err != nil {
			t.Fatal("haproxy not installed: scripts/deps.sh --test installs it")
		}
	}
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		t.Fatal("pgbench not installed (PostgreSQL's client binaries)")
	}
	r := startServe(t)
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	secretFile := filepath.Join(dir, "peer.secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	rs := &replicaSet{t: t, stops: make([]context.CancelFunc, 3), exited: make([]<-chan struct{}, 3)}
	peers := map[int]string{}
	for i := range 3 {
		peers[i+1] = freeLoopback(t)
	}
	for i := range 3 {
		cfg := *r.cfg
		cfg.Auth.SigningKeyFile, cfg.Auth.VerifyKeyFiles, cfg.Auth.Listen = "", nil, ""
		cfg.Auth.JWKSURL = "http://" + r.cfg.Auth.Listen + "/.well-known/jwks.json"
		cfg.Proxy.Listen, cfg.Metrics.Listen = peers[i+1], freeLoopback(t)
		cfg.Proxy.PeerID, cfg.Proxy.Peers, cfg.Proxy.PeerSecretFile = i+1, peers, secretFile
		cfg.Proxy.ShutdownTimeout = 10 * time.Second
		// HAProxy checks /readyz every 300ms and takes a replica out after
		// one failure: a second is plenty.
		cfg.Proxy.DrainDelay = time.Second
		rs.cfgs = append(rs.cfgs, &cfg)
		rs.start(i)
	}
	lb := startHAProxy(t, haproxy, dir, rs.cfgs)
	url := func(password string) string {
		return "postgres://someone:" + password + "@" + lb + "/" + demoWarehouse + "?sslmode=disable"
	}
	ctx := context.Background()
	connect := func(password string) (*pgx.Conn, error) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		c, err := pgx.Connect(cctx, url(password))
		if err == nil {
			t.Cleanup(func() { c.Close(context.Background()) })
		}
		return c, err
	}

	t.Run("single-use tickets", func(t *testing.T) {
		status, tk := r.post(t, "/v1/tickets", r.apiKey, map[string]any{"external_id": "lb", "tenant": "acme",
			"connection_roles": map[string]string{demoWarehouse: "querier"}})
		if status != http.StatusCreated {
			t.Fatalf("mint: %d %v", status, tk)
		}
		ticket := tk["ticket"].(string)
		if _, err := connect(ticket); err != nil {
			t.Fatalf("first use of the ticket: %v", err)
		}
		// Round robin sends each of these to another replica.
		for i := range 3 {
			if _, err := connect(ticket); err == nil || !strings.Contains(err.Error(), "28P01") {
				t.Errorf("use %d of the ticket: %v, want 28P01", i+2, err)
			}
		}
	})

	t.Run("revocation reaches every replica", func(t *testing.T) {
		token, sid := r.httpSession(t, "globex")
		var conns []*pgx.Conn
		for range 6 {
			c, err := connect(token)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		if status, body := r.post(t, "/v1/sessions/"+sid+"/revoke", r.apiKey, nil); status/100 != 2 {
			t.Fatalf("revoke: %d %v", status, body)
		}
		for i, c := range conns {
			eventually(t, fmt.Sprintf("connection %d closed after revocation", i), func() error {
				if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
					return errors.New("still served")
				}
				return nil
			})
		}
		if _, err := connect(token); err == nil {
			t.Error("a revoked session logged in again")
		}
	})

	t.Run("cancel across replicas", func(t *testing.T) {
		token, _ := r.httpSession(t, "acme")
		before := rs.metric("pgwarden_proxy_cancel_requests_total", "peer_forwarded")
		conn, err := connect(token)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			done := make(chan error, 1)
			go func() {
				_, err := conn.Exec(ctx, "SELECT count(*) FROM generate_series(1, 2000000000)")
				done <- err
			}()
			time.Sleep(500 * time.Millisecond)
			// A new TCP connection through the balancer: the next replica.
			if err := conn.PgConn().CancelRequest(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "57014" {
					t.Fatalf("cancel %d: %v, want 57014", i+1, err)
				}
			case <-time.After(25 * time.Second):
				t.Fatalf("cancel %d through the balancer did not cancel the statement", i+1)
			}
		}
		if n := rs.metric("pgwarden_proxy_cancel_requests_total", "peer_forwarded") - before; n < 2 {
			t.Errorf("%d of 3 cancels forwarded between replicas, want at least 2 (round robin)", n)
		}
	})

	t.Run("rolling restart under load", func(t *testing.T) {
		token, _ := r.httpSession(t, "acme")
		script := filepath.Join(dir, "select.sql")
		os.WriteFile(script, []byte("SELECT count(*) FROM orders WHERE status = 'placed';\n"), 0o644)
		// -C: a connection per transaction, as a BI tool's short-lived
		// connections; a drained replica's listener is closed and HAProxy
		// sends new connections to the others.
		cmd := exec.Command(pgbench, "-n", "-C", "-c", "6", "-j", "2", "-T", "60", "-f", script, url(token))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3 {
				time.Sleep(12 * time.Second)
				rs.restart(i)
			}
		}()
		err := cmd.Wait()
		wg.Wait()
		text := out.String()
		t.Logf("pgbench through HAProxy, restarting each replica in turn:\n%s", lastLines(text, 14))
		var drained int
		for _, line := range strings.Split(text, "\n") {
			l := strings.ToLower(line)
			if !strings.Contains(l, "error") && !strings.Contains(l, "aborted") && !strings.Contains(l, "fatal") {
				continue
			}
			if strings.Contains(line, "terminating connection due to administrator command") {
				drained++
				continue
			}
			if strings.Contains(l, "aborted") && !strings.Contains(l, "fatal") && !strings.Contains(l, "error") {
				continue // the summary line of the clients above
			}
			t.Errorf("pgbench: %s", line)
		}
		m := regexp.MustCompile(`number of transactions actually processed: (\d+)`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("pgbench did not report its transactions (%v)", err)
		}
		if n, _ := strconv.Atoi(m[1]); n < 100 {
			t.Errorf("only %d transactions in 60s", n)
		}
		if err != nil {
			t.Errorf("pgbench: %v", err)
		}
		if drained > 0 {
			t.Errorf("%d client(s) ended by 57P01 on a drained replica", drained)
		}
	})
}

// startHAProxy runs HAProxy in TCP mode, round robin over the replicas'
// proxy listeners, checking their /readyz and redispatching failed
// connects, and returns its address.
func startHAProxy(t *testing.T, bin, dir string, replicas []*config.File) string {
	t.Helper()
	addr := freeLoopback(t)
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn 2000
  log stderr format short local0 info
defaults
  log global
  option tcplog
  mode tcp
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  retries 3
  option redispatch 1
listen pgwarden
  bind %s
  balance roundrobin
  option httpchk GET /readyz
`, addr)
	for i, c := range replicas {
		_, metricsPort, _ := net.SplitHostPort(c.Metrics.Listen)
		fmt.Fprintf(&b, "  server replica%d %s check port %s inter 300ms fall 1 rise 1\n", i+1, c.Proxy.Listen, metricsPort)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", cfg, "-db")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy (connections that did not end cleanly, and state changes):\n%s", unclean(log.String()))
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not listen: %v\n%s", err, log.String())
		}
	}
	// Every server healthy before the test begins.
	time.Sleep(time.Second)
	return addr
}

// unclean keeps HAProxy's log lines other than connections that ended
// normally (termination state "--").
func unclean(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, " -- ") {
			out = append(out, l)
		}
	}
	return lastLines(strings.Join(out, "\n"), 60)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
