package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pgwarden/pgwarden/internal/oidctest"
)

const chromiumBin = "/usr/bin/chromium"

// needChromium returns Chromium's path. `make test` installs it
// (scripts/deps.sh --test); only outside CI, and without
// PGWARDEN_REQUIRE_BROWSER=1, may the browser test skip.
func needChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumBin); err != nil {
		if os.Getenv("CI") != "" || os.Getenv("PGWARDEN_REQUIRE_BROWSER") == "1" {
			t.Fatalf("%s is required (scripts/deps.sh --test installs it): %v", chromiumBin, err)
		}
		t.Skipf("%s not installed (run scripts/deps.sh --test)", chromiumBin)
	}
	return chromiumBin
}

// `pgwarden login` end to end: the command prints the provider's sign-in
// URL, real headless Chromium signs in on the provider's own login page,
// the provider redirects to the command's loopback listener, the command
// exchanges the code (PKCE) and the ID token for an internal session and
// writes a pgpass line — with which psql-style clients connect.
func TestLoginBrowser(t *testing.T) {
	bin := needChromium(t)
	s := startSSO(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	pgpass := filepath.Join(t.TempDir(), "pgpass")
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- cmdLogin(ctx, []string{"--service", s.service, "--no-browser", "--pgpass", pgpass}, io.Discard, pw)
		pw.Close()
	}()
	urls := make(chan string, 1)
	scanned := make(chan struct{})
	defer func() { pr.Close(); <-scanned }()
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			t.Logf("pgwarden login: %s", line)
			if strings.HasPrefix(line, s.idp.Issuer) {
				urls <- line
			}
		}
	}()
	var authURL string
	select {
	case authURL = <-urls:
	case err := <-done:
		t.Fatalf("login ended before printing a URL: %v", err)
	case <-ctx.Done():
		t.Fatal("no sign-in URL printed")
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	// The provider's login page, as a user sees it: type, click, follow
	// the redirects to the command's loopback listener.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "dina"),
		chromedp.SendKeys(chromedp.ID("password"), oidctest.Password),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("result")),
	); err != nil {
		t.Fatalf("browser sign-in: %v", err)
	}
	result, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("result")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(result, "Signed in to pgwarden") {
		t.Fatalf("loopback page says %q", result)
	}
	if err := <-done; err != nil {
		t.Fatalf("pgwarden login: %v", err)
	}
	data, err := os.ReadFile(pgpass)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(data))
	fields := strings.Split(line, ":")
	if len(fields) != 5 || fields[3] != "*" {
		t.Fatalf("pgpass line %q", line)
	}
	conn, err := s.connect(t, fields[4])
	if err != nil {
		t.Fatal(err)
	}
	var role string
	if err := conn.QueryRow(ctx, "SELECT count(*)::text FROM products").Scan(&role); err != nil {
		t.Fatal(err)
	}
	// The session is Dina's, a Designer: restricted_querier on internal relations.
	var n int
	if code, _ := pgCode(conn.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n)); code != "42501" {
		t.Fatalf("designer read an unpublished internal relation (%q)", code)
	}
	// Renewal as for embed sessions: `pgwarden renew`.
	var out strings.Builder
	if err := cmdRenew(ctx, []string{"--service", s.service, "--token", fields[4]}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := s.connect(t, strings.TrimSpace(out.String())); err != nil {
		t.Fatalf("renewed token: %v", err)
	}
}
