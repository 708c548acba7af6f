package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/pgcluster"
	"github.com/pgwarden/pgwarden/pgerr"
)

// storeCluster starts a PostgreSQL cluster of the test's own, to freeze or
// stop without disturbing the suite's shared one.
func storeCluster(t *testing.T) *pgcluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// Short store timeouts keep the frozen-store tests quick.
func shortStoreTimeouts(dsn string) func(*Config) {
	return func(c *Config) {
		c.StoreDSN = dsn
		c.StoreConnectTimeout = 500 * time.Millisecond
		c.StoreQueryTimeout = 500 * time.Millisecond
		c.HTTPRequestTimeout = 2 * time.Second
		c.HTTPWriteTimeout = 4 * time.Second
		c.RetryAfter = 3 * time.Second
	}
}

type httpAnswer struct {
	code       int
	retryAfter string
	body       map[string]any
	err        error
}

// post sends one request with a generous client timeout: the assertion is
// that it comes back, not how fast.
func (e *env) post(path string, body any, hdr map[string]string) httpAnswer {
	j, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(j))
	if err != nil {
		return httpAnswer{err: err}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return httpAnswer{err: err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := httpAnswer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	json.Unmarshal(raw, &a.body)
	return a
}

// A frozen store (every process of its cluster SIGSTOPped: a host that
// stops answering) makes every path that needs it answer within its
// timeout, with 503 and Retry-After over HTTP and FATAL 57P03 at login;
// paths that do not need it keep working; all recovers after SIGCONT.
func TestFrozenStore(t *testing.T) {
	c := storeCluster(t)
	e := newEnv(t, shortStoreTimeouts(c.DSN("postgres")))
	v := e.verifier()
	s, tok := e.session()
	loginTicket := e.mint()
	exchangeTicket := e.mint()

	if err := c.Freeze(); err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			c.Thaw()
		}
	}()

	type result = frozenResult
	cases := []struct {
		name  string
		run   func() result
		check func(t *testing.T, r result)
	}{
		{"mint ticket (needs no store)", func() result {
			return result{http: e.post("/v1/tickets", acmeRequest(), apiKeyHdr)}
		}, wantStatus(http.StatusCreated, "")},
		{"exchange", func() result {
			return result{http: e.post("/v1/sessions", map[string]string{"ticket": exchangeTicket}, nil)}
		}, wantStatus(http.StatusServiceUnavailable, "store_unavailable")},
		{"renew", func() result {
			return result{http: e.post("/v1/sessions/renew", nil, bearerHdr(tok))}
		}, wantStatus(http.StatusServiceUnavailable, "store_unavailable")},
		{"revoke", func() result {
			return result{http: e.post("/v1/sessions/"+s.ID+"/revoke", nil, apiKeyHdr)}
		}, wantStatus(http.StatusServiceUnavailable, "store_unavailable")},
		{"login with a session token", func() result {
			_, err := v.Authenticate(context.Background(), tok)
			return result{err: err}
		}, wantLoginRefused},
		{"login with a ticket", func() result {
			_, err := v.Authenticate(context.Background(), loginTicket)
			return result{err: err}
		}, wantLoginRefused},
	}
	results := make([]result, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		wg.Go(func() {
			start := time.Now()
			results[i] = tc.run()
			results[i].took = time.Since(start)
		})
	}
	// The outer deadline is generous; the HTTP client's own 20s timeout
	// and the verifier's store timeout are what make each call return.
	waitOrFatal(t, &wg, 30*time.Second, "calls still hanging 30s into the freeze")
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Logf("answered in %s with the store frozen", results[i].took.Round(time.Millisecond))
			tc.check(t, results[i])
		})
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503} {
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(e.srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s with the store frozen: %d, want %d", path, resp.StatusCode, want)
		}
	}

	if err := c.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawed = true
	// Recovery: each path works again. A call right after SIGCONT may still
	// meet a connection that timed out meanwhile, so allow a few tries.
	eventually := func(what string, f func() error) {
		t.Helper()
		var err error
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err = f(); err == nil {
				return
			}
		}
		t.Errorf("%s after thaw: %v", what, err)
	}
	eventually("exchange of the ticket tried during the freeze", func() error {
		return e.post("/v1/sessions", map[string]string{"ticket": exchangeTicket}, nil).want(http.StatusCreated)
	})
	eventually("renew", func() error { return e.post("/v1/sessions/renew", nil, bearerHdr(tok)).want(http.StatusOK) })
	eventually("login with a session token", func() error { _, err := v.Authenticate(context.Background(), tok); return err })
	eventually("login with a ticket", func() error {
		_, err := v.Authenticate(context.Background(), e.mint())
		return err
	})
	revoked, stop := v.Watch(s.ID)
	defer stop()
	eventually("revoke", func() error { return e.post("/v1/sessions/"+s.ID+"/revoke", nil, apiKeyHdr).want(http.StatusOK) })
	waitClosed(t, revoked, time.Now(), 10*time.Second)
}

func (a httpAnswer) want(code int) error {
	if a.err != nil {
		return a.err
	}
	if a.code != code {
		return &unexpected{a}
	}
	return nil
}

type unexpected struct{ a httpAnswer }

func (u *unexpected) Error() string {
	b, _ := json.Marshal(u.a.body)
	return http.StatusText(u.a.code) + " " + string(b)
}

// frozenResult is what one path answered with the store frozen.
type frozenResult struct {
	took time.Duration
	http httpAnswer
	err  error // of a login
}

func wantStatus(code int, errCode string) func(*testing.T, frozenResult) {
	return func(t *testing.T, r frozenResult) {
		t.Helper()
		a := r.http
		if a.err != nil {
			t.Fatalf("no answer: %v", a.err)
		}
		if a.code != code {
			t.Fatalf("status %d %v, want %d", a.code, a.body, code)
		}
		if errCode == "" {
			return
		}
		if a.body["error"] != errCode {
			t.Errorf("error %v, want %s", a.body["error"], errCode)
		}
		if a.retryAfter != "3" {
			t.Errorf("Retry-After %q, want the configured 3", a.retryAfter)
		}
	}
}

func wantLoginRefused(t *testing.T, r frozenResult) {
	t.Helper()
	var pe *pgerr.Error
	if !errors.As(r.err, &pe) {
		t.Fatalf("login: %v, want a *pgerr.Error", r.err)
	}
	if pe.Code != pgerr.CannotConnectNow || !pe.Fatal() || pe.Message != msgStoreDown {
		t.Errorf("login refused with %s %s %q, want FATAL 57P03 %q", pe.Severity, pe.Code, pe.Message, msgStoreDown)
	}
	t.Logf("client sees: %s %s: %s (%s)", pe.Severity, pe.Code, pe.Message, pe.Detail)
}

// waitOrFatal waits for wg, failing the test with msg after d.
func waitOrFatal(t *testing.T, wg *sync.WaitGroup, d time.Duration, msg string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal(msg)
	}
}
