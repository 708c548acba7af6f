package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v5"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/policy"
)

// Issue 18 end to end: the demo served in-process with the policy of
// testdata/rewrite/sealed (a content allow-list, learning for tenant
// initech, events granted to group analysts) and embed sessions bound to
// 127.0.0.1.

func startSealed(t *testing.T, networks []string) *running {
	t.Helper()
	pol, err := os.ReadFile("../../testdata/rewrite/sealed/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return startServeWith(t, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)), func(cfg *config.File) {
		if err := os.WriteFile(cfg.Warehouses[demoWarehouse].Policy, pol, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.Proxy.EmbedContext.Networks = networks
	})
}

func (r *running) session(t *testing.T, tenant, role string, groups ...string) string {
	t.Helper()
	token, _, err := r.app.mintSession(context.Background(), sessionRequest{Tenant: tenant, ExternalID: tenant + "-" + role,
		Groups: groups, Roles: map[string]string{demoWarehouse: role}})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// connectFrom logs in with token from local address from (all of 127/8
// reaches lo on Linux).
func (r *running) connectFrom(t *testing.T, token, from string) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig("postgres://someone@" + r.cfg.Proxy.Listen + "/" + demoWarehouse + "?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = token
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	cfg.DialFunc = d.DialContext
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { conn.Close(context.Background()) })
	}
	return conn, err
}

func wantState(t *testing.T, err error, code, msg string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code || !strings.Contains(pe.Message, msg) {
		t.Fatalf("error = %v, want %s containing %q", err, code, msg)
	}
}

func TestSealedEmbedContext(t *testing.T) {
	r := startSealed(t, []string{"127.0.0.1/32"})
	token := r.session(t, "acme", "querier")
	conn, err := r.connectFrom(t, token, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if n := scalar[int64](t, conn, "SELECT count(*) FROM orders"); n == 0 {
		t.Fatal("no orders")
	}
	_, err = r.connectFrom(t, token, "127.0.0.2")
	wantState(t, err, "28000", "embed session used outside its embed context")

	// A ticket pinned to the address that exchanged it (over HTTP, from
	// 127.0.0.1): the same session from 127.0.0.2 is refused even with
	// the network allowed.
	r2 := startSealed(t, []string{"127.0.0.0/8"})
	pinned := r2.httpPinnedSession(t)
	if _, err := r2.connectFrom(t, pinned, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	_, err = r2.connectFrom(t, pinned, "127.0.0.2")
	wantState(t, err, "28000", "embed session used outside its embed context")
	if _, err := r2.connectFrom(t, r2.session(t, "acme", "querier"), "127.0.0.2"); err != nil {
		t.Fatalf("unpinned session from 127.0.0.2: %v", err)
	}
}

func (r *running) httpPinnedSession(t *testing.T) string {
	t.Helper()
	base := "http://" + r.cfg.Auth.Listen
	body := `{"external_id":"pinned","tenant":"acme","connection_roles":{"` + demoWarehouse + `":"querier"},"pin_client_address":true}`
	req, _ := http.NewRequest("POST", base+"/v1/tickets", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.apiKey)
	var tk struct{ Ticket string }
	doJSON(t, req, http.StatusCreated, &tk)
	req, _ = http.NewRequest("POST", base+"/v1/sessions", strings.NewReader(`{"ticket":"`+tk.Ticket+`"}`))
	var s struct {
		SessionToken string `json:"session_token"`
	}
	doJSON(t, req, http.StatusCreated, &s)
	return s.SessionToken
}

func doJSON(t *testing.T, req *http.Request, want int, into any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

// dashboards are the demo's BI dashboards (the rewriter benchmark's BI
// corpus), by file name.
func dashboards(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("../../bench/testdata/bi/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = string(b)
	}
	return out
}

// Learn, then enforce: a viewer of the learning tenant runs the dashboards,
// `pgwarden content write` puts what was learned into the policy, and after
// a reload every tenant's viewer may run exactly those.
func TestSealedLearnThenEnforce(t *testing.T) {
	r := startSealed(t, []string{"127.0.0.1/32"})
	dash := dashboards(t)
	names := make([]string, 0, len(dash))
	for n := range dash {
		names = append(names, n)
	}
	sort.Strings(names)
	ctx := context.Background()

	acme, err := r.connect(t, r.session(t, "acme", "viewer", "analysts"))
	if err != nil {
		t.Fatal(err)
	}
	// Before learning: a listed statement runs, a dashboard does not.
	if _, err := acme.Exec(ctx, "SELECT region, sum(total) AS revenue FROM orders WHERE ordered_at >= '2024-01-01' GROUP BY region ORDER BY region"); err != nil {
		t.Fatal(err)
	}
	_, err = acme.Exec(ctx, dash[names[0]])
	wantState(t, err, "42501", "viewer sessions may run only the statements listed")
	// Drivers' introspection stays allowed.
	var n int
	if err := acme.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = 'public' AND c.relkind = 'r'").Scan(&n); err != nil || n == 0 {
		t.Fatalf("catalog: %d, %v", n, err)
	}

	learner, err := r.connect(t, r.session(t, "initech", "viewer", "analysts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		// Twice: the second run comes from the rewrite cache and is not
		// recorded again.
		for range 2 {
			if _, err := learner.Exec(ctx, dash[name], pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatalf("%s while learning: %v", name, err)
			}
		}
	}

	code, out, errOut := runCLI(t, "content", "list", "--warehouse", demoWarehouse, "--config", r.cfg.Path, "--json")
	if code != 0 {
		t.Fatalf("content list: %d %s", code, errOut)
	}
	var listed struct {
		Statements []struct {
			Fingerprint, Normalized, Example, Tenant string
			Sightings                                int64
		}
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.Statements) != len(dash) {
		t.Fatalf("learned %d statements, want %d (one per dashboard): %s", len(listed.Statements), len(dash), out)
	}
	for _, l := range listed.Statements {
		if l.Tenant != "initech" || l.Sightings != 1 || !strings.Contains(l.Example, "SELECT") {
			t.Errorf("learned %+v", l)
		}
	}
	t.Logf("learned on the %d demo dashboards: %d fingerprints", len(dash), len(listed.Statements))

	// The ticket service lists them for the API key that minted the
	// session; `pgwarden ticket` (no API key) minted these, so the demo's
	// key sees none of them.
	req, _ := http.NewRequest("GET", "http://"+r.cfg.Auth.Listen+"/v1/content?warehouse="+demoWarehouse, nil)
	req.Header.Set("Authorization", "Bearer "+r.apiKey)
	var api struct{ Statements []json.RawMessage }
	doJSON(t, req, http.StatusOK, &api)
	if len(api.Statements) != 0 {
		t.Errorf("API key sees %d statements learned from sessions it did not mint", len(api.Statements))
	}

	if code, _, errOut := runCLI(t, "content", "write", "--warehouse", demoWarehouse, "--config", r.cfg.Path); code != 0 {
		t.Fatalf("content write: %d %s", code, errOut)
	}
	pol, err := policy.Load(r.cfg.Warehouses[demoWarehouse].Policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		fp, _ := pg_query.Fingerprint(dash[name])
		if pol.Content.Match(fp, nil) == nil {
			t.Errorf("%s: fingerprint %s not in the written policy", name, fp)
		}
	}
	if code, out, _ := runCLI(t, "content", "list", "--warehouse", demoWarehouse, "--config", r.cfg.Path); code != 0 || strings.Contains(out, "(new)") {
		t.Errorf("after write, list says: %s", out)
	}
	if err := r.app.reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, err := acme.Exec(ctx, dash[name]); err != nil {
			t.Errorf("%s after enforcing: %v", name, err)
		}
	}
	_, err = acme.Exec(ctx, "SELECT * FROM customers")
	wantState(t, err, "42501", "viewer sessions may run only the statements listed")
}

// Groups grant relations: without the group, events is missing, in
// statements and in the virtual catalog.
func TestSealedGroupsGrantRelations(t *testing.T) {
	r := startSealed(t, []string{"127.0.0.1/32"})
	ctx := context.Background()
	with, err := r.connect(t, r.session(t, "acme", "querier", "analysts"))
	if err != nil {
		t.Fatal(err)
	}
	without, err := r.connect(t, r.session(t, "acme", "querier", "pii"))
	if err != nil {
		t.Fatal(err)
	}
	if n := scalar[int64](t, with, "SELECT count(*) FROM events"); n == 0 {
		t.Fatal("no events with group analysts")
	}
	_, err = without.Exec(ctx, "SELECT count(*) FROM events")
	var missing, absent *pgconn.PgError
	if !errors.As(err, &missing) {
		t.Fatalf("events without the group: %v", err)
	}
	_, err = without.Exec(ctx, "SELECT count(*) FROM events_x")
	if !errors.As(err, &absent) {
		t.Fatalf("events_x: %v", err)
	}
	if missing.Code != absent.Code || strings.ReplaceAll(absent.Message, "events_x", "events") != missing.Message {
		t.Errorf("events without the group: %s %q; a missing relation: %s %q", missing.Code, missing.Message, absent.Code, absent.Message)
	}
	tables := func(conn *pgx.Conn) string {
		rows, err := conn.Query(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(names, ",")
	}
	if got := tables(with); !strings.Contains(got, "events") {
		t.Errorf("with analysts: tables %s", got)
	}
	if got := tables(without); strings.Contains(got, "events") {
		t.Errorf("without analysts: tables %s", got)
	}
	var oid uint32
	if err := with.QueryRow(ctx, "SELECT 'public.events'::regclass::oid").Scan(&oid); err != nil || oid == 0 {
		t.Errorf("regclass with analysts: %d, %v", oid, err)
	}
	_, err = without.Exec(ctx, "SELECT 'public.events'::regclass")
	wantState(t, err, "42P01", `relation "public.events" does not exist`)
}
