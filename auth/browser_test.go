package auth

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

const chromiumPath = "/usr/bin/chromium"

// page is an embedding page: its script exchanges a ticket with the ticket
// service on another origin and writes the outcome into the DOM.
var page = template.Must(template.New("page").Parse(`<!doctype html>
<html><body><div id="out">pending</div><script>
const out = document.getElementById("out");
fetch({{.Service}} + "/v1/sessions", {
  method: "POST",
  headers: {"Content-Type": "application/json"},
  body: JSON.stringify({ticket: {{.Ticket}}}),
}).then(r => r.json().then(j => {
  out.textContent = (r.ok && j.session_token) ? "exchange ok " + j.session_id : "refused " + r.status + " " + j.error;
})).catch(e => { out.textContent = "blocked: " + e.name; });
</script></body></html>`))

func chromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" || os.Getenv("PGWARDEN_REQUIRE_BROWSER") == "1" {
			t.Fatalf("%s is required in CI (scripts/deps.sh --test installs it): %v", chromiumPath, err)
		}
		t.Skipf("%s not installed", chromiumPath)
	}
	return chromiumPath
}

// dumpDOM loads url in headless Chromium and returns the DOM it settles on.
func dumpDOM(t *testing.T, bin, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=5000", "--dump-dom", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return string(out)
}

var outRE = regexp.MustCompile(`<div id="out">([^<]*)</div>`)

// outcome is what the page's script wrote (not its source, which the dump
// also holds).
func outcome(t *testing.T, dom string) string {
	t.Helper()
	m := outRE.FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no outcome in DOM:\n%s", dom)
	}
	return m[1]
}

// A real browser on an allowed origin exchanges a ticket across origins; on
// a refused origin the preflight fails and the ticket is never sent.
func TestBrowserCORS(t *testing.T) {
	bin := chromium(t)
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page.Execute(w, map[string]string{"Service": r.URL.Query().Get("svc"), "Ticket": r.URL.Query().Get("ticket")})
	}))
	defer pages.Close()
	// The page is served as http://127.0.0.1:A, the service is reached as
	// http://localhost:B: different origins, and a JSON POST needs a preflight.
	allowed := pages.URL
	e := newEnv(t, func(c *Config) { c.CORSOrigins = []string{allowed, "https://app.example.com"} })
	svc := strings.Replace(e.srv.URL, "127.0.0.1", "localhost", 1)
	pageURL := func(origin, ticket string) string {
		return fmt.Sprintf("%s/?svc=%s&ticket=%s", origin, url.QueryEscape(svc), url.QueryEscape(ticket))
	}

	t.Run("allowed origin", func(t *testing.T) {
		ticket := e.httpTicket()
		if got := outcome(t, dumpDOM(t, bin, pageURL(allowed, ticket))); !strings.HasPrefix(got, "exchange ok ") {
			t.Fatalf("outcome = %q, want exchange ok", got)
		}
		code, _, out := e.do("POST", "/v1/sessions", map[string]any{"ticket": ticket}, nil)
		wantError(t, code, out, 409, "ticket_already_used")
	})
	t.Run("refused origin", func(t *testing.T) {
		ticket := e.httpTicket()
		// Same server, other origin: localhost:A is not on the list.
		refused := strings.Replace(pages.URL, "127.0.0.1", "localhost", 1)
		if got := outcome(t, dumpDOM(t, bin, pageURL(refused, ticket))); got != "blocked: TypeError" {
			t.Fatalf("outcome = %q, want blocked", got)
		}
		// The browser stopped at the preflight: the ticket is unused.
		if code, _, out := e.do("POST", "/v1/sessions", map[string]any{"ticket": ticket}, nil); code != 201 {
			t.Fatalf("ticket after refused origin: %d %v", code, out)
		}
	})
}
