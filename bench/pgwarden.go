package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgwarden/pgwarden/internal/pgcluster"
)

// Warehouse names pgwarden exposes (the client's database name).
const (
	whBench = "bench"
	whDemo  = "demo"
)

// The pgwarden policies of the two warehouses; the rewriter benchmarks in
// rewritebench use the same files.
var (
	//go:embed testdata/pgbench/policy.yaml
	benchPolicy string
	//go:embed testdata/bi/policy.yaml
	demoPolicy string
)

// warden is a running `pgwarden serve`.
type warden struct {
	bin         string
	dir         string
	cfgPath     string
	ProxyPort   int
	HTTPPort    int
	MetricsPort int
	APIKey      string
	cmd         *exec.Cmd
	exited      chan struct{}
}

// keys are generated once and shared by every pgwarden the bench starts.
type wardenKeys struct {
	Dir       string
	APIKey    string
	APIKeyHex string
}

func makeWardenKeys(ctx context.Context, bin, work string) (*wardenKeys, error) {
	dir := filepath.Join(work, "pgwarden-keys")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, bin, "keygen", "--dir", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgwarden keygen --dir: %w: %s", err, tail(string(out), 500))
	}
	out, err := exec.CommandContext(ctx, bin, "keygen", "--api-key").Output()
	if err != nil {
		return nil, fmt.Errorf("pgwarden keygen --api-key: %w", err)
	}
	k := &wardenKeys{Dir: dir}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(name) {
		case "key":
			k.APIKey = strings.TrimSpace(val)
		case "sha256":
			k.APIKeyHex = strings.TrimSpace(val)
		}
	}
	if k.APIKey == "" || k.APIKeyHex == "" {
		return nil, errors.New("pgwarden keygen --api-key: expected lines \"key: …\" and \"sha256: …\"")
	}
	return k, nil
}

// wardenOptions are the settings a bench part may change from the defaults
// of startWarden.
type wardenOptions struct {
	// PoolSize, when set, pins the bench warehouse's pool to transaction
	// mode with this many warehouse connections (pgwarden's default mode
	// and size otherwise, which are the same today).
	PoolSize int
	// MaxClientConns is proxy.max_client_conns (10,000 when zero).
	MaxClientConns int
	// RewriteTimeout is proxy.rewrite_timeout (pgwarden's default when
	// zero).
	RewriteTimeout time.Duration
	// PoolYAML, when set, is the bench warehouse's pool section (a YAML
	// flow mapping); it overrides PoolSize.
	PoolYAML string
	// BenchPolicy, when set, replaces the bench warehouse's policy.
	BenchPolicy string
}

// startWarden writes a configuration for the bench cluster and runs
// `pgwarden serve` on fresh ports.
func startWarden(ctx context.Context, bin, work string, keys *wardenKeys, c *cluster, name string) (*warden, error) {
	return startWardenWith(ctx, bin, work, keys, c, name, wardenOptions{})
}

// startWardenWith is startWarden with opts.
func startWardenWith(ctx context.Context, bin, work string, keys *wardenKeys, c *cluster, name string, opts wardenOptions) (*warden, error) {
	dir := filepath.Join(work, "pgwarden-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	w := &warden{bin: bin, dir: dir, APIKey: keys.APIKey}
	for _, p := range []*int{&w.ProxyPort, &w.HTTPPort, &w.MetricsPort} {
		port, err := pgcluster.FreePort()
		if err != nil {
			return nil, err
		}
		*p = port
	}
	policy := benchPolicy
	if opts.BenchPolicy != "" {
		policy = opts.BenchPolicy
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-policy.yaml"), []byte(policy), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "demo-policy.yaml"), []byte(demoPolicy), 0o600); err != nil {
		return nil, err
	}
	svc := c.pg.UserDSN(dbBench, roleSvc, c.passwords[roleSvc])
	svcDemo := c.pg.UserDSN(dbDemo, roleSvc, c.passwords[roleSvc])
	store := c.pg.UserDSN(dbControl, roleCtl, c.passwords[roleCtl])
	maxClients := opts.MaxClientConns
	if maxClients == 0 {
		maxClients = 10000
	}
	benchPool := ""
	if opts.PoolSize > 0 {
		benchPool = fmt.Sprintf(", pool: {mode: transaction, size: %d}", opts.PoolSize)
	}
	if opts.PoolYAML != "" {
		benchPool = ", pool: " + opts.PoolYAML
	}
	rewriteTimeout := ""
	if opts.RewriteTimeout > 0 {
		rewriteTimeout = fmt.Sprintf("\n  rewrite_timeout: %s", opts.RewriteTimeout)
	}
	cfg := fmt.Sprintf(`proxy:
  listen: 127.0.0.1:%d
  statement_timeout: 60s
  max_client_conns: %d%s
warehouses:
  %s: {dsn: %q, policy: bench-policy.yaml%s}
  %s: {dsn: %q, policy: demo-policy.yaml}
auth:
  listen: 127.0.0.1:%d
  signing_key_file: %s
  verify_key_files: [%s]
  store_dsn: %q
  api_keys: [{name: bench, sha256: %s, rate_per_second: 1000000, burst: 1000000}]
metrics: {listen: 127.0.0.1:%d, pprof: true}
log: {level: warn}
`, w.ProxyPort, maxClients, rewriteTimeout, whBench, svc, benchPool, whDemo, svcDemo, w.HTTPPort,
		filepath.Join(keys.Dir, "signing.pem"), filepath.Join(keys.Dir, "signing.pub.pem"), store, keys.APIKeyHex, w.MetricsPort)
	w.cfgPath = filepath.Join(dir, "pgwarden.yaml")
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "pgwarden.log"))
	if err != nil {
		return nil, err
	}
	w.cmd = exec.Command(bin, "serve", "--config", w.cfgPath)
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	if err := w.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start pgwarden: %w", err)
	}
	w.exited = make(chan struct{})
	go func() { w.cmd.Wait(); logf.Close(); close(w.exited) }()
	if err := w.waitReady(ctx, 30*time.Second); err != nil {
		w.stop()
		log, _ := os.ReadFile(filepath.Join(dir, "pgwarden.log"))
		return nil, fmt.Errorf("pgwarden serve did not become ready: %w\n%s", err, tail(string(log), 1500))
	}
	return w, nil
}

func (w *warden) waitReady(ctx context.Context, timeout time.Duration) error {
	if err := waitTCPWhile(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(w.ProxyPort)), timeout, w.exited); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", w.MetricsPort)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /readyz: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.exited:
			return errors.New("pgwarden exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sessionToken mints a session token for tenant with `pgwarden ticket`.
func (w *warden) sessionToken(ctx context.Context, tenant string) (string, error) {
	out, err := exec.CommandContext(ctx, w.bin, "ticket", "--config", w.cfgPath, "--tenant", tenant,
		"--external-id", "bench", "--session").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("pgwarden ticket: %w: %s", err, tail(string(ee.Stderr), 500))
		}
		return "", fmt.Errorf("pgwarden ticket: %w", err)
	}
	tok := strings.TrimSpace(string(out))
	if tok == "" || strings.ContainsAny(tok, " \n") {
		return "", fmt.Errorf("pgwarden ticket --session printed %d lines, want just the token", strings.Count(tok, "\n")+1)
	}
	return tok, nil
}

func (w *warden) pid() int { return w.cmd.Process.Pid }

func (w *warden) stop() {
	if w == nil || w.cmd == nil || w.cmd.Process == nil {
		return
	}
	stopChild(w.cmd.Process, w.exited, syscall.SIGTERM, 10*time.Second)
}
