package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/demo"
)

// running is a provisioned demo served in-process by the same wiring as
// `pgwarden serve`.
type running struct {
	app    *app
	cfg    *config.File
	apiKey string
	demo   *demoRun
	// stop starts the shutdown, as SIGTERM does; exited closes when run
	// has returned.
	stop   context.CancelFunc
	exited <-chan struct{}
}

func startServe(t *testing.T) *running {
	t.Helper()
	return startServeWith(t, zaptest.NewLogger(t), nil)
}

// startServeWith is startServe with a logger of the test's choosing and a
// chance to change the demo's config before the app is built.
func startServeWith(t *testing.T, log *zap.Logger, configure func(*config.File)) *running {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster and the whole service")
	}
	d, err := newDemo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.cleanup(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	cfg, apiKey, err := d.provision(ctx, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(cfg)
	}
	a, exited := serveApp(t, ctx, cancel, cfg, log, "")
	return &running{app: a, cfg: cfg, apiKey: apiKey, demo: d, stop: cancel, exited: exited}
}

// serveApp builds the app of cfg (only: one part, or "" for all) and runs it
// until ctx ends (cancel ends it when the test does); exited closes when run
// has returned.
func serveApp(t *testing.T, ctx context.Context, cancel context.CancelFunc, cfg *config.File, log *zap.Logger, only string) (*app, <-chan struct{}) {
	t.Helper()
	a, err := newApp(ctx, cfg, log, only)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- a.run(ctx, func() { close(ready) })
		close(exited)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		a.close()
	})
	return a, exited
}

func (r *running) connect(t *testing.T, password string) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig("postgres://someone@" + r.cfg.Proxy.Listen + "/" + demoWarehouse + "?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = password
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { conn.Close(context.Background()) })
	}
	return conn, err
}

// acmeConn connects with a fresh querier session of tenant acme.
func (r *running) acmeConn(t *testing.T) *pgx.Conn {
	t.Helper()
	token, _, err := r.app.mintSession(context.Background(), sessionRequest{Tenant: "acme", ExternalID: "a",
		Roles: map[string]string{demoWarehouse: "querier"}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := r.connect(t, token)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func (r *running) post(t *testing.T, path, bearer string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.cfg.Auth.Listen+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// scalar runs sql in the simple protocol, so that each run is rewritten anew.
func scalar[T any](t *testing.T, conn *pgx.Conn, sql string) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(context.Background(), sql, pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// The host application's whole flow over HTTP: mint with the API key,
// exchange, connect with the session token; the ticket itself works once as a
// password; revocation closes an open connection within about a second.
func TestTicketFlowAndRevocation(t *testing.T) {
	r := startServe(t)
	status, tk := r.post(t, "/v1/tickets", r.apiKey, map[string]any{
		"external_id": "alice", "tenant": "globex", "connection_roles": map[string]string{demoWarehouse: "querier"},
	})
	if status != http.StatusCreated {
		t.Fatalf("mint: %d %v", status, tk)
	}
	status, sess := r.post(t, "/v1/sessions", "", map[string]any{"ticket": tk["ticket"]})
	if status != http.StatusCreated {
		t.Fatalf("exchange: %d %v", status, sess)
	}
	token, _ := sess["session_token"].(string)
	sid, _ := sess["session_id"].(string)
	if int(sess["port"].(float64)) == 0 || sess["database"] != demoWarehouse {
		t.Errorf("connection details = %v", sess)
	}
	// The exchanged ticket is spent: as a password too.
	if _, err := r.connect(t, tk["ticket"].(string)); sqlstate(err) != "28P01" || !strings.Contains(err.Error(), "ticket already used") {
		t.Errorf("reused ticket as password: %v, want 28P01 ticket already used", err)
	}
	conn, err := r.connect(t, token)
	if err != nil {
		t.Fatal(err)
	}
	if got := scalar[int64](t, conn, "SELECT count(*) FROM orders"); got != 750 {
		t.Errorf("globex orders = %d, want 750", got)
	}
	// A fresh ticket works once as a password, then never again.
	_, tk2 := r.post(t, "/v1/tickets", r.apiKey, map[string]any{"external_id": "bob", "tenant": "initech",
		"connection_roles": map[string]string{demoWarehouse: "querier"}})
	c2, err := r.connect(t, tk2["ticket"].(string))
	if err != nil {
		t.Fatalf("fresh ticket as password: %v", err)
	}
	if got := scalar[string](t, c2, "SELECT string_agg(DISTINCT tenant_id, ',') FROM customers"); got != "initech" {
		t.Errorf("ticket session sees %q, want initech", got)
	}
	if _, err := r.connect(t, tk2["ticket"].(string)); sqlstate(err) != "28P01" {
		t.Errorf("second use of a ticket: %v, want 28P01", err)
	}

	revokedAt := time.Now()
	if status, body := r.post(t, "/v1/sessions/"+sid+"/revoke", r.apiKey, nil); status/100 != 2 {
		t.Fatalf("revoke: %d %v", status, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := conn.Exec(context.Background(), "SELECT 1")
		if err != nil {
			t.Logf("revocation reached the open connection after %s: %v", time.Since(revokedAt).Round(time.Millisecond), err)
			if c := sqlstate(err); c != "" && c != "28000" {
				t.Errorf("revoked session's statement: %v, want FATAL 28000 or a closed connection", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revoked session still served 5s after revocation")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := r.connect(t, token); sqlstate(err) != "28P01" {
		t.Errorf("reconnect with a revoked session: %v, want 28P01", err)
	}
}

// SIGHUP's reload: a valid new policy takes effect for the next statement; an
// invalid one is rejected with its reason and the old one stays in force.
func TestReloadPolicy(t *testing.T) {
	r := startServe(t)
	conn := r.acmeConn(t)
	const q = "SELECT email FROM customers WHERE customer_id = 1"
	if got := scalar[string](t, conn, q); got != "***@acme.example" {
		t.Fatalf("masked email = %q", got)
	}
	// pgx's default mode prepares this once and binds it again each time:
	// the statement prepared before the reload must follow the new policy.
	const pq = "SELECT email FROM customers WHERE customer_id = $1"
	prepared := func() string {
		t.Helper()
		var v string
		if err := conn.QueryRow(context.Background(), pq, 1).Scan(&v); err != nil {
			t.Fatalf("%s: %v", pq, err)
		}
		return v
	}
	if got := prepared(); got != "***@acme.example" {
		t.Fatalf("masked email (prepared) = %q", got)
	}
	policyPath := r.cfg.Warehouses[demoWarehouse].Policy
	orig, err := os.ReadFile(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	unmasked := strings.Replace(string(orig), "email: { mask: email, unless_groups: [pii] }", "", 1)
	if unmasked == string(orig) {
		t.Fatal("demo policy changed shape; update this test")
	}
	if err := os.WriteFile(policyPath, []byte(unmasked), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.app.reload(context.Background()); err != nil {
		t.Fatalf("reload of a valid policy: %v", err)
	}
	if got := scalar[string](t, conn, q); got != "bob.1@acme.example" {
		t.Errorf("after reload without the mask: %q, want the real email", got)
	}
	if got := prepared(); got != "bob.1@acme.example" {
		t.Errorf("statement prepared before the reload: %q, want the real email", got)
	}

	bad := strings.Replace(string(orig), "mask: email", "mask: emial", 1)
	if err := os.WriteFile(policyPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	err = r.app.reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "emial") || !strings.Contains(err.Error(), "policy.yaml") {
		t.Fatalf("reload of an invalid policy: %v, want an error naming the file and the bad mask", err)
	}
	if got := scalar[string](t, conn, q); got != "bob.1@acme.example" {
		t.Errorf("after a rejected reload: %q, want the previous policy still in force", got)
	}
	// A policy naming a relation the warehouse lacks is rejected too.
	missing := string(orig) + "\n" + strings.ReplaceAll(`relations_extra_marker`, "relations_extra_marker", "")
	missing = strings.Replace(missing, "relations:\n", "relations:\n  public.nope: { tenant_column: tenant_id }\n", 1)
	if err := os.WriteFile(policyPath, []byte(missing), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.app.reload(context.Background()); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("reload with a relation missing from the warehouse: %v, want an error naming it", err)
	}
	if got := scalar[string](t, conn, q); got != "bob.1@acme.example" {
		t.Errorf("after a rejected reload: %q, want the previous policy still in force", got)
	}
}

// /metrics, /healthz and /readyz answer, and the proxy's metrics are there.
func TestOpsEndpoints(t *testing.T) {
	r := startServe(t)
	conn := r.acmeConn(t)
	scalar[int64](t, conn, "SELECT count(*) FROM orders")
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "pgwarden_"} {
		resp, err := http.Get("http://" + r.cfg.Metrics.Listen + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %.200s", path, resp.StatusCode, body)
		}
	}
	_ = demo.Tenants
}

// A client may lower statement_timeout but never lift it above the proxy's
// (60s in the demo config) nor disable it, by any route; RESET returns to it.
func TestStatementTimeoutCap(t *testing.T) {
	r := startServe(t)
	conn := r.acmeConn(t)
	ctx := context.Background()
	if got := scalar[string](t, conn, "SHOW statement_timeout"); got != "1min" {
		t.Fatalf("statement_timeout at connect = %q, want the proxy's 1min", got)
	}
	if _, err := conn.Exec(ctx, "SET statement_timeout = '30s'"); err != nil {
		t.Fatalf("lowering statement_timeout: %v", err)
	}
	if got := scalar[string](t, conn, "SHOW statement_timeout"); got != "30s" {
		t.Errorf("after SET 30s: %q", got)
	}
	for _, sql := range []string{
		"SET statement_timeout = 0",
		"SET statement_timeout = '2min'",
		"SET SESSION statement_timeout TO 600000",
		"SELECT set_config('statement_timeout', '0', false)",
	} {
		if _, err := conn.Exec(ctx, sql); sqlstate(err) != "42501" {
			t.Errorf("%s: %v, want 42501", sql, err)
		}
	}
	if _, err := conn.Exec(ctx, "RESET statement_timeout"); err != nil {
		t.Fatal(err)
	}
	if got := scalar[string](t, conn, "SHOW statement_timeout"); got != "1min" {
		t.Errorf("after RESET: %q, want the proxy's 1min", got)
	}
}
