package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/config"
)

// longStatement runs until cancelled.
const longStatement = "SELECT count(*) FROM generate_series(1, 2000000000)"

// connectAs opens a client connection to the proxy at addr with an
// application name.
func connectAs(t *testing.T, addr, token, app string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig("postgres://someone@" + addr + "/" + demoWarehouse + "?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = token
	cfg.RuntimeParams["application_name"] = app
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// startLong runs longStatement on conn in the background; its error
// arrives on the channel.
func startLong(conn *pgx.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), longStatement)
		done <- err
	}()
	return done
}

// awaitLongRunning waits until the warehouse runs longStatement for a
// client: the proxy lists a connection active as soon as its statement is
// queued, and a cancel that reaches the warehouse before the statement
// does is lost there, as on PostgreSQL (the same wait as the proxy
// package's TestConnectionsSnapshot).
func (r *running) awaitLongRunning(t *testing.T) {
	t.Helper()
	su := r.superuser(t)
	eventually(t, "the warehouse running the long statement", func() error {
		var n int
		if err := su.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate_series%' AND pid <> pg_backend_pid()").Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return errors.New("not running yet")
		}
		return nil
	})
}

// adminConnections lists connections through the admin API.
func (s *ssoRun) adminConnections(t *testing.T, token string, filter url.Values) ([]map[string]any, map[string]any) {
	t.Helper()
	code, out := s.call(t, "GET", "/v1/admin/connections?"+filter.Encode(), token, nil)
	if code != 200 {
		t.Fatalf("connections: %d %v", code, out)
	}
	var conns []map[string]any
	for _, c := range out["connections"].([]any) {
		conns = append(conns, c.(map[string]any))
	}
	return conns, out
}

// waitFor polls the admin API's connections until one matches.
func (s *ssoRun) waitFor(t *testing.T, token string, filter url.Values, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	eventually(t, "a connection "+filter.Encode(), func() error {
		conns, _ := s.adminConnections(t, token, filter)
		for _, c := range conns {
			if match(c) {
				found = c
				return nil
			}
		}
		return fmt.Errorf("none of %v", conns)
	})
	return found
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("got %v, want SQLSTATE %s", err, code)
	}
}

// waitErr waits for a background statement's end.
func waitErr(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the statement did not end", what)
		return nil
	}
}

// The admin API over two replicas (the ticket service's process and a
// proxy-only one sharing its control store): live connections of both with
// their state and statement, filters, cancel of a statement on the other
// replica, revocation by tenant and by external id reaching both, and the
// Owners' exception for Administrators.
func TestAdminConnectionsAcrossReplicas(t *testing.T) {
	s := startSSO(t)
	ctx := context.Background()
	owner, _ := s.session(t, "olga")
	adminTok, _ := s.session(t, "adam")
	viewer, _ := s.session(t, "vic")

	cfg2 := s.secondReplica(t, adminTok)

	acmeTok, acmeSID := s.httpSession(t, "acme")
	globexTok, globexSID := s.httpSession(t, "globex")
	acme1 := connectAs(t, s.cfg.Proxy.Listen, acmeTok, "dash-1")
	acme2 := connectAs(t, cfg2.Proxy.Listen, acmeTok, "dash-2")
	globex2 := connectAs(t, cfg2.Proxy.Listen, globexTok, "notebook")
	tx, err := globex2.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	long := startLong(acme2)
	top := t // connections that outlive a subtest

	t.Run("list", func(t *testing.T) {
		running := s.waitFor(t, adminTok, url.Values{"tenant": {"acme"}}, func(c map[string]any) bool {
			return c["state"] == "active" && c["statement"] == longStatement
		})
		if running["session"] != acmeSID || running["warehouse"] != demoWarehouse || running["external_id"] != "x" ||
			running["kind"] != "embed" || running["application_name"] != "dash-2" || running["statement_started_at"] == nil ||
			!strings.HasPrefix(running["client_addr"].(string), "127.0.0.1:") || !strings.HasPrefix(running["id"].(string), running["replica"].(string)+"-") {
			t.Errorf("running connection: %v", running)
		}
		t0 := time.Now()
		conns, out := s.adminConnections(t, adminTok, url.Values{"tenant": {"acme"}})
		t.Logf("connections of two replicas listed in %v", time.Since(t0))
		if len(conns) != 2 || out["incomplete"] != false || conns[0]["replica"] == conns[1]["replica"] {
			t.Errorf("acme's connections on both replicas: %v", out)
		}
		for _, c := range conns {
			if c["application_name"] == "dash-1" && (c["state"] != "idle" || c["statement"] != "" || c["statement_started_at"] != nil) {
				t.Errorf("idle connection: %v", c)
			}
		}
		for _, r := range out["replicas"].([]any) {
			if r.(map[string]any)["answered"] != true {
				t.Errorf("replica did not answer: %v", out["replicas"])
			}
		}
		conns, _ = s.adminConnections(t, adminTok, url.Values{"session": {globexSID}})
		if len(conns) != 1 || conns[0]["state"] != "idle in transaction" || conns[0]["application_name"] != "notebook" {
			t.Errorf("globex: %v", conns)
		}
		for _, f := range []url.Values{{"client_addr": {"127.0.0.1"}}, {"warehouse": {demoWarehouse}}, {"external_id": {"x"}}} {
			if conns, _ := s.adminConnections(t, adminTok, f); len(conns) < 3 {
				t.Errorf("filter %v: %d connections", f, len(conns))
			}
		}
		for _, f := range []url.Values{{"client_addr": {"10.9.9.9"}}, {"warehouse": {"nope"}}, {"subject": {"nobody"}}} {
			if conns, _ := s.adminConnections(t, adminTok, f); len(conns) != 0 {
				t.Errorf("filter %v: %v", f, conns)
			}
		}
		if code, out := s.call(t, "GET", "/v1/admin/connections?tenantt=acme", adminTok, nil); code != 400 {
			t.Errorf("unknown filter: %d %v", code, out)
		}
		if code, _ := s.call(t, "GET", "/v1/admin/connections", viewer, nil); code != 403 {
			t.Errorf("viewer: %d, want 403", code)
		}
		if code, _ := s.call(t, "GET", "/v1/admin/connections", "", nil); code != 401 {
			t.Errorf("anonymous: %d, want 401", code)
		}
		// Sessions gain the same filters; a connection's filter keeps the
		// sessions that have such a connection.
		code, out := s.call(t, "GET", "/v1/admin/sessions?tenant=globex", adminTok, nil)
		if ss := out["sessions"].([]any); code != 200 || len(ss) != 1 || ss[0].(map[string]any)["session_id"] != globexSID {
			t.Errorf("sessions of globex: %d %v", code, out)
		}
		code, out = s.call(t, "GET", "/v1/admin/sessions?warehouse="+demoWarehouse, adminTok, nil)
		if ss := out["sessions"].([]any); code != 200 || len(ss) != 2 || out["incomplete"] != false {
			t.Errorf("sessions with a connection: %d %v", code, out)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		running := s.waitFor(t, adminTok, url.Values{"tenant": {"acme"}}, func(c map[string]any) bool { return c["state"] == "active" })
		s.awaitLongRunning(t)
		start := time.Now()
		code, out := s.call(t, "POST", "/v1/admin/connections/"+running["id"].(string)+"/cancel", adminTok, nil)
		if code != 200 {
			t.Fatalf("cancel: %d %v", code, out)
		}
		wantCode(t, waitErr(t, long, "cancel"), "57014")
		t.Logf("cancel through the admin API to the other replica: %v until the client had 57014", time.Since(start))
		if _, err := acme2.Exec(ctx, "SELECT 1"); err != nil {
			t.Errorf("connection after cancel: %v", err)
		}
		replica := running["replica"].(string)
		for _, id := range []string{replica + "-999999", "nonsense", "ffffffffffff-1"} {
			if code, out := s.call(t, "POST", "/v1/admin/connections/"+id+"/cancel", adminTok, nil); code != 404 {
				t.Errorf("cancel %s: %d %v, want 404", id, code, out)
			}
		}
		if code, _ := s.call(t, "POST", "/v1/admin/connections/"+running["id"].(string)+"/cancel", viewer, nil); code != 403 {
			t.Errorf("viewer cancel: %d, want 403", code)
		}

		// An Owner acting as a test tenant: an Administrator may not cancel
		// its statement; the Owner may.
		code, out = s.call(t, "POST", "/v1/admin/act-as", owner, map[string]any{"tenant": "globex"})
		if code != 201 {
			t.Fatalf("act as: %d %v", code, out)
		}
		ownerConn := connectAs(top, cfg2.Proxy.Listen, out["session_token"].(string), "owner-test")
		ownerLong := startLong(ownerConn)
		oc := s.waitFor(t, adminTok, url.Values{"session": {out["session_id"].(string)}}, func(c map[string]any) bool { return c["state"] == "active" })
		if oc["actor_subject"] != "olga" || oc["actor_role"] != "owner" {
			t.Errorf("acting connection: %v", oc)
		}
		if code, out := s.call(t, "POST", "/v1/admin/connections/"+oc["id"].(string)+"/cancel", adminTok, nil); code != 403 {
			t.Errorf("administrator cancels an Owner's statement: %d %v", code, out)
		}
		s.awaitLongRunning(t)
		if code, out := s.call(t, "POST", "/v1/admin/connections/"+oc["id"].(string)+"/cancel", owner, nil); code != 200 {
			t.Errorf("owner cancels: %d %v", code, out)
		}
		wantCode(t, waitErr(t, ownerLong, "owner's cancel"), "57014")
	})

	t.Run("revoke by tenant and external id", func(t *testing.T) {
		// globex as an Administrator: the Owner's acting session on
		// globex is spared, the tenant's own connection ends.
		start := time.Now()
		code, out := s.call(t, "POST", "/v1/admin/tenants/globex/revoke", adminTok, nil)
		if code != 200 || fmt.Sprint(out["revoked_sessions"]) != "["+globexSID+"]" || out["spared_owner_sessions"] != float64(1) {
			t.Fatalf("revoke tenant: %d %v", code, out)
		}
		d := waitCut(t, globex2, start, 20*time.Second)
		t.Logf("tenant revocation: other replica's connection cut after %v", d)
		if conns, _ := s.adminConnections(t, adminTok, url.Values{"tenant": {"globex"}}); len(conns) != 1 || conns[0]["actor_subject"] != "olga" {
			t.Errorf("globex after revocation: %v", conns)
		}
		// acme by external id: the connections on both replicas end.
		start = time.Now()
		code, out = s.call(t, "POST", "/v1/admin/external-ids/x/revoke?tenant=acme", adminTok, nil)
		if code != 200 || fmt.Sprint(out["revoked_sessions"]) != "["+acmeSID+"]" {
			t.Fatalf("revoke external id: %d %v", code, out)
		}
		d1 := waitCut(t, acme1, start, 20*time.Second)
		d2 := waitCut(t, acme2, start, 20*time.Second)
		t.Logf("external id revocation: connections cut after %v (this replica) and %v (the other)", d1, d2)
		if code, out := s.call(t, "POST", "/v1/admin/external-ids/x/revoke?tenantt=acme", adminTok, nil); code != 400 {
			t.Errorf("unknown parameter: %d %v", code, out)
		}
		if code, _ := s.call(t, "POST", "/v1/admin/tenants/acme/revoke", viewer, nil); code != 403 {
			t.Errorf("viewer revoke: %d, want 403", code)
		}
		// The Owner revokes globex: its own acting session goes too.
		code, out = s.call(t, "POST", "/v1/admin/tenants/globex/revoke", owner, nil)
		if code != 200 || len(out["revoked_sessions"].([]any)) != 1 || out["spared_owner_sessions"] != float64(0) {
			t.Errorf("owner revokes globex: %d %v", code, out)
		}
	})
}

// adminAudit reads the audit trail through the admin API.
func (s *ssoRun) adminAudit(t *testing.T, token string, q url.Values) ([]map[string]any, map[string]any) {
	t.Helper()
	code, out := s.call(t, "GET", "/v1/admin/audit?"+q.Encode(), token, nil)
	if code != 200 {
		t.Fatalf("audit %v: %d %v", q, code, out)
	}
	var recs []map[string]any
	for _, r := range out["records"].([]any) {
		recs = append(recs, r.(map[string]any))
	}
	return recs, out
}

// Session events become audit events (exchange, login accepted and
// refused, renewal, revocation) beside statements, every line carries
// groups, client address and policy version, and the admin API reads them
// back from the store with filters and a cursor.
func TestAdminAudit(t *testing.T) {
	s := startSSO(t)
	ctx := context.Background()
	adminTok, _ := s.session(t, "adam")
	viewer, _ := s.session(t, "vic")

	code, tk := s.post(t, "/v1/tickets", s.apiKey, map[string]any{"external_id": "x", "tenant": "acme", "groups": []string{"analysts"},
		"connection_roles": map[string]string{demoWarehouse: "querier"}})
	if code != 201 {
		t.Fatalf("mint: %d %v", code, tk)
	}
	code, sess := s.post(t, "/v1/sessions", "", map[string]any{"ticket": tk["ticket"]})
	if code != 201 {
		t.Fatalf("exchange: %d %v", code, sess)
	}
	token, sid := sess["session_token"].(string), sess["session_id"].(string)
	conn, err := s.connect(t, token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT count(*) FROM orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT * FROM pg_authid"); err == nil {
		t.Fatal("pg_authid allowed")
	}
	if _, err := s.connect(t, "not-a-token"); err == nil {
		t.Fatal("bad password accepted")
	}
	if code, out := s.post(t, "/v1/sessions/renew", token, nil); code != 200 {
		t.Fatalf("renew: %d %v", code, out)
	}
	if code, out := s.post(t, "/v1/sessions/"+sid+"/revoke", s.apiKey, nil); code/100 != 2 {
		t.Fatalf("revoke: %d %v", code, out)
	}

	want := map[string]bool{"exchange": false, "login": false, "statement ok": false, "statement refused": false, "renew": false, "revoke": false}
	eventually(t, "the session's events in the store", func() error {
		recs, out := s.adminAudit(t, adminTok, url.Values{"session": {sid}})
		if out["stored"] != true || out["incomplete"] != false {
			return fmt.Errorf("reader: %v", out)
		}
		for _, r := range recs {
			key, _ := r["event"].(string)
			if key == "" {
				key = "statement " + r["outcome"].(string)
				if r["client_addr"] != "127.0.0.1" || r["policy_version"] == "" || r["policy_version"] == nil || r["groups"] == nil {
					t.Errorf("statement record without client address, policy version or groups: %v", r)
				}
			}
			want[key] = true
		}
		for k, ok := range want {
			if !ok {
				return fmt.Errorf("no %s event in %v", k, recs)
			}
		}
		return nil
	})
	// The refused login (no session) is found by event and outcome.
	recs, _ := s.adminAudit(t, adminTok, url.Values{"event": {"login"}, "outcome": {"refused"}, "sqlstate": {"28P01"}})
	if len(recs) == 0 || recs[0]["client_addr"] != "127.0.0.1" {
		t.Errorf("refused login: %v", recs)
	}
	// Paging through acme's records two at a time finds each once.
	all, _ := s.adminAudit(t, adminTok, url.Values{"tenant": {"acme"}, "limit": {"1000"}})
	seen := 0
	q := url.Values{"tenant": {"acme"}, "limit": {"2"}}
	for range 100 {
		recs, out := s.adminAudit(t, adminTok, q)
		seen += len(recs)
		next, _ := out["next"].(string)
		if next == "" {
			break
		}
		q.Set("next", next)
	}
	if seen != len(all) || seen < 6 {
		t.Errorf("paged %d records, all at once %d", seen, len(all))
	}
	since := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if recs, _ := s.adminAudit(t, adminTok, url.Values{"since": {since}}); len(recs) != 0 {
		t.Errorf("records from the future: %v", recs)
	}
	for _, bad := range []string{"since=yesterday", "limit=0", "next=abc", "tenantt=acme"} {
		if code, out := s.call(t, "GET", "/v1/admin/audit?"+bad, adminTok, nil); code != 400 {
			t.Errorf("%s: %d %v, want 400", bad, code, out)
		}
	}
	if code, _ := s.call(t, "GET", "/v1/admin/audit", viewer, nil); code != 403 {
		t.Errorf("viewer reads the audit trail: %d, want 403", code)
	}
	// The file has the same events (it is the primary record).
	events := map[string]bool{}
	for _, l := range s.auditLines(t, sid) {
		if ev, _ := l["event"].(string); ev != "" {
			events[ev] = true
		}
	}
	for _, ev := range []string{"exchange", "login", "renew", "revoke"} {
		if !events[ev] {
			t.Errorf("audit file lacks the %s event: %v", ev, events)
		}
	}
	// A revocation on the command line is recorded too.
	_, sid2 := s.httpSession(t, "globex")
	if code, stdout, stderr := runCLI(t, "revoke", "--config", s.cfg.Path, "--", sid2); code != 0 {
		t.Fatalf("pgwarden revoke: %d %s %s", code, stdout, stderr)
	}
	lines := s.auditLines(t, sid2)
	if len(lines) == 0 || lines[len(lines)-1]["event"] != "revoke" || lines[len(lines)-1]["tenant"] != "globex" {
		t.Errorf("pgwarden revoke's audit line: %v", lines)
	}
}

// The admin API's verbs on the command line: connections with filters,
// cancel, revocation by tenant and external id, the audit reader with a
// cursor, keys, and usage errors.
func TestAdminCLI(t *testing.T) {
	s := startSSO(t)
	ctx := context.Background()
	adminTok, _ := s.session(t, "adam")
	run := func(args ...string) (map[string]any, error) {
		var out bytes.Buffer
		err := cmdAdmin(ctx, append([]string{"--service", s.service, "--token", adminTok}, args...), &out, io.Discard)
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("%v: output %q: %v", args, out.String(), err)
		}
		return m, nil
	}
	must := func(args ...string) map[string]any {
		t.Helper()
		m, err := run(args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return m
	}
	acmeTok, acmeSID := s.httpSession(t, "acme")
	globexTok, _ := s.httpSession(t, "globex")
	acme := connectAs(t, s.cfg.Proxy.Listen, acmeTok, "cli-test")
	globex := connectAs(t, s.cfg.Proxy.Listen, globexTok, "cli-test")
	long := startLong(acme)

	var id string
	eventually(t, "the running statement listed", func() error {
		out := must("connections", "--tenant", "acme", "--client-addr", "127.0.0.1")
		for _, c := range out["connections"].([]any) {
			if c := c.(map[string]any); c["state"] == "active" {
				id = c["id"].(string)
				return nil
			}
		}
		return fmt.Errorf("%v", out)
	})
	if out := must("sessions", "--session", acmeSID); len(out["sessions"].([]any)) != 1 {
		t.Errorf("sessions --session: %v", out)
	}
	s.awaitLongRunning(t)
	if out := must("cancel", id); out["cancelled"] != true {
		t.Errorf("cancel: %v", out)
	}
	wantCode(t, waitErr(t, long, "cli cancel"), "57014")
	if _, err := run("cancel", id+"9"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("cancel of an unknown connection: %v", err)
	}
	if out := must("revoke-external-id", "x", "--tenant", "acme"); fmt.Sprint(out["revoked_sessions"]) != "["+acmeSID+"]" {
		t.Errorf("revoke-external-id: %v", out)
	}
	if out := must("revoke-tenant", "globex"); len(out["revoked_sessions"].([]any)) != 1 {
		t.Errorf("revoke-tenant: %v", out)
	}
	waitCut(t, acme, time.Now(), 20*time.Second)
	waitCut(t, globex, time.Now(), 20*time.Second)

	eventually(t, "two exchanges in the audit trail", func() error {
		out := must("audit", "--event", "exchange", "--limit", "1")
		next, _ := out["next"].(string)
		if len(out["records"].([]any)) != 1 || next == "" {
			return fmt.Errorf("%v", out)
		}
		if out := must("audit", "--event", "exchange", "--limit", "1", "--next", next); len(out["records"].([]any)) != 1 {
			return fmt.Errorf("second page: %v", out)
		}
		return nil
	})
	if out := must("stats", "5m"); out["window_seconds"] != 300.0 || len(out["replicas"].([]any)) != 1 {
		t.Errorf("stats 5m: %v", out)
	}
	if _, err := run("stats", "soon"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("stats with a bad window: %v, want the API's 400", err)
	}
	must("key-create", "ops", "administrator")
	if out := must("keys"); !strings.Contains(fmt.Sprint(out["keys"]), "name:ops") || strings.Contains(fmt.Sprint(out), "sha256") {
		t.Errorf("keys: %v", out)
	}
	for _, args := range [][]string{{"cancel"}, {"revoke-tenant"}, {"revoke-external-id", "a", "b"}, {"stats", "1m", "2m"}, {"frobnicate"}} {
		if _, err := run(args...); err == nil || !strings.Contains(err.Error(), "usage") && !strings.Contains(err.Error(), "takes one argument") {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// secondReplica starts another proxy replica on s's control store (no ticket
// service of its own) and waits until the admin API, asked with tok, hears
// from both replicas. It returns the replica's configuration.
func (s *ssoRun) secondReplica(t *testing.T, tok string) *config.File {
	t.Helper()
	cfg2 := *s.cfg
	cfg2.Auth.Listen = ""
	cfg2.Proxy.Listen, cfg2.Metrics.Listen = freeLoopback(t), freeLoopback(t)
	rctx, rcancel := context.WithCancel(context.Background())
	serveApp(t, rctx, rcancel, &cfg2, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).With(zap.Int("replica", 2)), onlyProxy)
	eventually(t, "both replicas live", func() error {
		_, out := s.adminConnections(t, tok, nil)
		if rs := out["replicas"].([]any); len(rs) != 2 {
			return fmt.Errorf("replicas %v", rs)
		}
		return nil
	})
	return &cfg2
}
