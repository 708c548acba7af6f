package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/internal/oidctest"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// screenshotDir is where the console's browser test saves its screenshots:
// $PGWARDEN_SCREENSHOTS, or bench/out/console (gitignored).
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PGWARDEN_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "bench", "out", "console")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Only this run's screenshots: an earlier run's numbering differs.
	old, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	for _, f := range old {
		os.Remove(f)
	}
	return dir
}

// appConn opens a pgx connection of token to the demo warehouse with an
// application_name the console shows.
func (r *running) appConn(t *testing.T, token, app string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig("postgres://someone@" + r.cfg.Proxy.Listen + "/" + demoWarehouse + "?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = token
	cfg.RuntimeParams["application_name"] = app
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", app, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// GET /v1/admin/stats over two replicas (the ticket service's process and
// a proxy-only one sharing its control store): a tenant's statements,
// refusals, connections and latency on both, merged; the pools of both
// summed. Owners and Administrators only (the role matrix in roles_test.go).
func TestAdminStats(t *testing.T) {
	s := startSSO(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tok, _ := s.session(t, "adele")

	cfg2 := s.secondReplica(t, tok)

	acmeTok := s.running.session(t, "acme", "querier")
	on1 := connectAs(t, s.cfg.Proxy.Listen, acmeTok, "stats-1")
	on2 := connectAs(t, cfg2.Proxy.Listen, acmeTok, "stats-2")
	for i := range 5 {
		c := on1
		if i%2 == 1 {
			c = on2
		}
		if _, err := c.Exec(ctx, "SELECT count(*) FROM orders"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := on2.Exec(ctx, "SELECT * FROM internal_costs"); err == nil {
		t.Fatal("internal_costs read")
	}

	code, out := s.call(t, "GET", "/v1/admin/stats?window=5m", tok, nil)
	if code != 200 {
		t.Fatalf("administrator: %d %v", code, out)
	}
	var acme map[string]any
	for _, tn := range out["tenants"].([]any) {
		if m := tn.(map[string]any); m["tenant"] == "acme" {
			acme = m
		}
	}
	// Replica 1 saw 3 statements, replica 2 two and a refusal.
	if acme == nil || acme["statements"].(float64) != 6 || acme["refusals"].(float64) != 1 || acme["connections"].(float64) != 2 ||
		acme["refusal_classes"].(map[string]any)["42"].(float64) != 1 || acme["latency"].(map[string]any)["p99_ms"].(float64) <= 0 {
		t.Fatalf("acme's stats: %v", acme)
	}
	reps := out["replicas"].([]any)
	if len(reps) != 2 || out["incomplete"] != false || out["window_seconds"].(float64) != 300 {
		t.Fatalf("replicas %v incomplete %v window %v", reps, out["incomplete"], out["window_seconds"])
	}
	pooled := false
	for _, p := range out["pools"].([]any) {
		if m := p.(map[string]any); m["warehouse"] == demoWarehouse {
			pooled = true
			if m["size"].(float64) != 2*float64(cmp.Or(s.cfg.Warehouses[demoWarehouse].Pool.Size, pool.DefaultSize)) {
				t.Errorf("the demo warehouse's pools summed over two replicas: %v", m)
			}
		}
	}
	if !pooled {
		t.Errorf("no pool of %s in %v", demoWarehouse, out["pools"])
	}
	if code, _ := s.call(t, "GET", "/v1/admin/stats?window=forever", tok, nil); code != 400 {
		t.Fatalf("bad window: %d", code)
	}
}

// The operator console in real headless Chromium: an Administrator signs
// in through the identity provider's login page, sees a pgx client's live
// connection under its tenant with the tenants' charts, cancels a running
// statement (the client gets 57014), revokes a session (the client's
// connection is cut with FATAL), explains one statement for two tenants
// and sees different filters, reads the audit log filtered; a Viewer,
// signed in with a pasted session token, is refused. Screenshots of each
// step go to bench/out/console (or $PGWARDEN_SCREENSHOTS).
func TestConsoleBrowser(t *testing.T) {
	bin := needChromium(t)
	s := startSSO(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	shots := screenshotDir(t)

	acme := s.appConn(t, s.running.session(t, "acme", "querier"), "console-acme")
	globex := s.appConn(t, s.running.session(t, "globex", "querier"), "console-globex")
	for range 3 {
		for _, c := range []*pgx.Conn{acme, globex} {
			if _, err := c.Exec(ctx, "SELECT count(*) FROM orders"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := acme.Exec(ctx, "SELECT * FROM internal_costs"); err == nil {
		t.Fatal("internal_costs read")
	}
	viewerTok, _ := s.session(t, "vic")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	// The tab lives as long as the context of the first Run: bctx's.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatal(err)
	}
	base := s.service + "/console/"
	step := 0
	type action = chromedp.Action[chromedp.Void]
	shot := func(name string) action {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			step++
			p := filepath.Join(shots, fmt.Sprintf("%02d-%s.png", step, name))
			t.Logf("screenshot: %s", p)
			return os.WriteFile(p, buf, 0o644)
		})
	}
	// Each step gets a minute; a failed one leaves a screenshot and the
	// page's text.
	do := func(what string, steps ...action) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, time.Minute)
		defer scancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			page, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
			buf, _ := chromedp.Run(bctx, chromedp.FullScreenshot(100))
			p := filepath.Join(shots, "failed.png")
			os.WriteFile(p, buf, 0o644)
			t.Fatalf("%s: %v\npage (%s):\n%s", what, err, p, page)
		}
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	visible := func(sel string) action { return chromedp.WaitVisible(css(sel)) }
	click := func(sel string) action { return chromedp.Click(css(sel)) }
	set := func(sel, v string) action { return chromedp.SetValue(css(sel), v) }
	// atURL waits until the page's address holds part: after a form's
	// submit, until the browser is on the answer, not still on the form's
	// page, whose elements match the same selectors.
	atURL := func(part string) action {
		return chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
			for {
				if u, err := chromedp.Location()(ctx, tgt); err == nil && strings.Contains(u, part) {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("the page never reached an address with %q: %w", part, ctx.Err())
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return v
	}
	count := func(sel string) int {
		t.Helper()
		nodes, err := chromedp.Run(bctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return len(nodes)
	}
	signIn := func(token string) {
		t.Helper()
		do("sign in", chromedp.Navigate(base),
			visible("#credential"), // a signed-out browser lands on the sign-in page
			set("#credential", token),
			click("#login button[type=submit]"),
			visible("#whoami"))
	}

	// An Administrator signs in through the identity provider's own login
	// page (the authorization-code flow with PKCE, as `pgwarden login`).
	do("sign-in page", chromedp.Navigate(base), visible("#credential"), visible("#sso a[data-issuer]"), shot("sign-in"))
	do("sign-on", click("#sso a[data-issuer]"),
		chromedp.WaitVisible(chromedp.ID("username")), shot("provider-login"),
		chromedp.SendKeys(chromedp.ID("username"), "adele"),
		chromedp.SendKeys(chromedp.ID("password"), oidctest.Password),
		click("button[type=submit]"),
		visible("#whoami"))
	if who := text("#whoami"); !strings.Contains(who, "adele") || !strings.Contains(who, "administrator") {
		t.Fatalf("signed in as %q", who)
	}
	// The overview: each tenant's connections and statements, its charts,
	// and the pool's.
	do("overview", visible(`tr[data-tenant="acme"]`), visible(`svg[data-chart="activity-acme"]`), visible(`svg[data-chart="latency-globex"]`))
	if n := text(`tr[data-tenant="acme"] td.connections`); n != "1" {
		t.Fatalf("acme's connections on the overview: %q", n)
	}
	refusals, err := chromedp.Run(bctx, chromedp.AttributeValue(css(`svg[data-chart="activity-acme"] g[data-series="refusals"]`), "data-sum"))
	if err != nil || refusals.Value != "1" {
		t.Fatalf("acme's refusals chart sums to %q (%v)", refusals.Value, err)
	}
	t.Logf("%d pool charts (the demo warehouse's pool mode: %q)", count(`svg[data-chart^="pool-"]`), s.cfg.Warehouses[demoWarehouse].Pool.Mode)
	do("overview screenshot", shot("overview"))

	// Sessions and connections: the pgx client's connection under acme.
	acmeRow := `section[data-tenant="acme"] tr[data-application="console-acme"]`
	do("connections", chromedp.Navigate(base+"connections"), visible(acmeRow),
		visible(`section[data-tenant="globex"] tr[data-application="console-globex"]`), shot("connections"))

	// Cancel a running statement: the client gets 57014 and keeps its
	// connection. (pg_sleep can never be allowed by a policy; a long
	// generate_series runs instead.)
	slow := make(chan error, 1)
	go func() {
		_, err := globex.Exec(ctx, "SELECT count(*) FROM generate_series(1, 2000000000)")
		slow <- err
	}()
	globexRunning := `section[data-tenant="globex"] tr[data-application="console-globex"][data-state="active"]`
	for deadline := time.Now().Add(time.Minute); ; {
		do("find the running statement", chromedp.Navigate(base+"connections?tenant=globex"), visible("main"))
		if count(globexRunning+` a[data-action="cancel"]`) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("globex's running statement never showed with a cancel button")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st := text(globexRunning + " code.statement"); !strings.Contains(st, "generate_series") {
		t.Fatalf("statement in flight shown as %q", st)
	}
	do("cancel", shot("running-statement"), click(globexRunning+` a[data-action="cancel"]`),
		visible("#confirm-button"), shot("confirm-cancel"), click("#confirm-button"), visible("#message"), shot("cancelled"))
	if msg := text("#message"); !strings.Contains(msg, "Cancelled the statement") {
		t.Fatalf("after cancel: %q", msg)
	}
	select {
	case err := <-slow:
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("cancelled statement: %v, want 57014", err)
		}
		t.Logf("cancelled client got %s %s: %s", pe.Severity, pe.Code, pe.Message)
	case <-time.After(time.Minute):
		t.Fatal("the statement was not cancelled")
	}
	if _, err := globex.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("globex's connection after the cancel: %v", err)
	}

	// Revoke acme's session: its connection is cut with FATAL.
	do("revoke", chromedp.Navigate(base+"connections?tenant=acme"), visible(acmeRow),
		click(acmeRow+` a[data-action="revoke-session"]`), visible("#confirm-button"), shot("confirm-revoke"),
		click("#confirm-button"), visible("#message"), shot("revoked"))
	if msg := text("#message"); !strings.Contains(msg, "Revoked session") {
		t.Fatalf("after revoke: %q", msg)
	}
	var cut error
	for deadline := time.Now().Add(30 * time.Second); cut == nil; {
		_, cut = acme.Exec(ctx, "SELECT 1")
		if cut == nil && time.Now().After(deadline) {
			t.Fatal("acme's connection still open after the revocation")
		}
		if cut == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	var pe *pgconn.PgError
	if !errors.As(cut, &pe) || pe.Severity != "FATAL" {
		t.Fatalf("revoked connection ended with %v, want a FATAL error", cut)
	}
	t.Logf("revoked client got %s %s: %s", pe.Severity, pe.Code, pe.Message)
	for deadline := time.Now().Add(30 * time.Second); ; {
		do("connections after revoke", chromedp.Navigate(base+"connections?tenant=acme"), visible("main"))
		if count(acmeRow) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revoked connection is still listed")
		}
		time.Sleep(200 * time.Millisecond)
	}
	do("after revoke screenshot", shot("after-revoke"))

	// The explain playground: one statement, two tenants, two filters.
	explain := func(tenant string) string {
		t.Helper()
		do("explain "+tenant, chromedp.Navigate(base+"explain"), visible("#sql"),
			set("#warehouse", demoWarehouse), set("#tenant", tenant), set("#groups", "analysts"),
			set("#attributes", "region=emea"), set("#sql", "SELECT count(*) FROM orders"),
			click("#explain-button"), visible("#result pre.rewritten"), shot("explain-"+tenant))
		return text("#result pre.rewritten")
	}
	a, g := explain("acme"), explain("globex")
	if a == g || !strings.Contains(a, "'acme'") || !strings.Contains(g, "'globex'") || strings.Contains(a, "'globex'") {
		t.Fatalf("explain: acme %q, globex %q", a, g)
	}
	do("explain a refusal", chromedp.Navigate(base+"explain"), visible("#sql"),
		set("#warehouse", demoWarehouse), set("#tenant", "acme"), set("#sql", "SELECT * FROM internal_costs"),
		click("#explain-button"), visible("#refused"), shot("explain-refused"))
	if r := text("#refused .sqlstate"); r != "42501" {
		t.Fatalf("refused explain's SQLSTATE %q", r)
	}

	// The audit log, filtered: acme's refused statement with its SQLSTATE.
	refusedRow := `#audit tr[data-tenant="acme"][data-outcome="refused"]`
	for deadline := time.Now().Add(time.Minute); ; {
		do("audit", chromedp.Navigate(base+"audit"), visible("#f-tenant"), set("#f-tenant", "acme"), set("#f-outcome", "refused"),
			click(`#audit-filter button[type=submit]`), atURL("outcome=refused"), visible("#audit"))
		if count(refusedRow) > 0 {
			break
		}
		if time.Now().After(deadline) { // the store's copy is written in batches
			t.Fatal("acme's refusal never showed in the audit page")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if code := text(refusedRow + " td.sqlstate"); code != "42501" {
		t.Fatalf("audit shows acme's refusal as %q", code)
	}
	if n := count(`#audit tbody tr[data-outcome="ok"]`); n != 0 {
		t.Fatalf("the outcome filter let %d ok records through", n)
	}
	do("audit screenshot", shot("audit"))

	// A Viewer signs in and is told what the role may not do.
	do("sign out", click(".who button[type=submit]"), visible("#credential"))
	signIn(viewerTok)
	do("viewer refused", visible("#forbidden"), shot("viewer-refused"))
	if msg := text("#forbidden"); !strings.Contains(msg, "Your role (viewer) may not see the operational statistics") {
		t.Fatalf("viewer's page: %q", msg)
	}
	do("viewer explain", chromedp.Navigate(base+"explain"), visible("#sql"),
		set("#sql", "SELECT 1"), click("#explain-button"), visible("#forbidden"))
	if msg := text("#forbidden"); !strings.Contains(msg, "Your role (viewer) may not use the explain playground") {
		t.Fatalf("viewer's explain: %q", msg)
	}
}
