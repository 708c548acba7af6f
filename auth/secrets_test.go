package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// No log line and no error names a ticket, a token or an API key, on the
// happy path or on any refusal.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	e := newEnv(t, func(c *Config) {
		c.APIKeys = append(c.APIKeys, APIKey{Name: "limited", SHA256: HashAPIKey("pgw_limited"), RatePerSecond: 0.001, Burst: 1})
	})
	e.log = log
	e.store, e.svc = e.instance()
	h, err := NewHandler(e.svc, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	v := e.verifier()
	ctx := context.Background()

	var secrets []string
	var errs []error
	ticket := e.httpTicket()
	_, _, sess := e.do("POST", "/v1/sessions", map[string]any{"ticket": ticket}, nil)
	tok := sess["session_token"].(string)
	secrets = append(secrets, ticket, tok, testAPIKey, "pgw_limited", "pgw_wrong")
	_, code, _ := doCode(e, "POST", "/v1/sessions", map[string]any{"ticket": ticket}, nil)
	_, code2, _ := doCode(e, "POST", "/v1/sessions/renew", nil, bearerHdr(ticket))
	doCode(e, "POST", "/v1/tickets", ticketBody(), bearerHdr("pgw_wrong"))
	doCode(e, "POST", "/v1/tickets", ticketBody(), bearerHdr("pgw_limited"))
	doCode(e, "POST", "/v1/tickets", ticketBody(), bearerHdr("pgw_limited"))
	if code != 409 || code2 != 401 {
		t.Fatalf("codes %d %d", code, code2)
	}
	_, rtok, err := e.svc.RenewSession(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, rtok)
	for _, cred := range []string{ticket, tok, rtok, tamper(t, tok, func(m map[string]any) { m["tenant"] = "globex" }), "garbage-" + tok} {
		if _, err := v.Authenticate(ctx, cred); err != nil {
			errs = append(errs, err)
		}
	}
	_, _, err = e.svc.ExchangeTicket(ctx, tok)
	errs = append(errs, err)
	if err := e.svc.RevokeSession(ctx, sess["session_id"].(string), ""); err != nil {
		t.Fatal(err)
	}
	_, err = v.Authenticate(ctx, tok)
	errs = append(errs, err)
	if len(errs) < 4 {
		t.Fatalf("only %d refusals", len(errs))
	}

	var seen strings.Builder
	for _, entry := range logs.All() {
		fmt.Fprintf(&seen, "%s %v\n", entry.Message, entry.ContextMap())
	}
	for _, err := range errs {
		fmt.Fprintf(&seen, "%v\n", err)
	}
	if logs.Len() == 0 {
		t.Fatal("nothing was logged")
	}
	for _, s := range secrets {
		// A JWT's header is public and shared by many tokens; look for the
		// signature, which is unique to each.
		if i := strings.LastIndex(s, "."); i >= 0 {
			s = s[i+1:]
		}
		if strings.Contains(seen.String(), s) {
			t.Errorf("a secret appears in logs or errors:\n%s", seen.String())
		}
	}
}

func doCode(e *env, method, path string, body any, hdr map[string]string) (http.Header, int, map[string]any) {
	code, h, out := e.do(method, path, body, hdr)
	return h, code, out
}
