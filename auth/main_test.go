package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fakePolicy knows a fixed set of tenants and groups.
type fakePolicy struct{ tenants, groups map[string]bool }

func (p fakePolicy) KnowsTenant(t string) bool { return p.tenants[t] }
func (p fakePolicy) KnowsGroup(g string) bool  { return p.groups[g] }

var testPolicy = fakePolicy{
	tenants: map[string]bool{"acme": true, "globex": true},
	groups:  map[string]bool{"pii": true, "analysts": true},
}

// fakeClock is a settable clock shared by every component of an env.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testAPIKey = "pgw_test_key_acme_backend"

// env is one ticket service on a fresh database, served over a real socket.
type env struct {
	t     testing.TB
	cfg   Config
	clock *fakeClock
	store *Store
	svc   *Service
	h     *Handler
	reg   *prometheus.Registry
	srv   *httptest.Server
	log   *zap.Logger
}

func newEnv(t testing.TB, opts ...func(*Config)) *env {
	t.Helper()
	dsn := pgtest.NewDatabase(t, "")
	g, err := GenerateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC)}
	cfg := Config{
		SigningKeyFile:  g.PrivateKeyFile,
		StoreDSN:        dsn,
		APIKeys:         []APIKey{{Name: "acme-backend", SHA256: HashAPIKey(testAPIKey)}},
		CORSOrigins:     []string{"https://app.example.com"},
		ConnectHost:     "proxy.example.com",
		ConnectPort:     6432,
		ConnectDatabase: "warehouse",
		Now:             clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	var log *zap.Logger
	if tt, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
	} else {
		log = zap.NewNop()
	}
	e := &env{t: t, cfg: cfg, clock: clock, log: log}
	e.store, e.svc = e.instance()
	e.reg = prometheus.NewRegistry()
	e.h, err = NewHandler(e.svc, e.reg, log)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(e.srv.Close)
	return e
}

// instance opens another store on the same database and a service on it,
// as a second replica would.
func (e *env) instance() (*Store, *Service) {
	e.t.Helper()
	ctx := context.Background()
	st, err := Open(ctx, e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		e.t.Fatal(err)
	}
	svc, err := NewService(e.cfg, st, testPolicy, e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	return st, svc
}

// verifier returns a running verifier on its own store connection.
func (e *env) verifier() *Verifier {
	e.t.Helper()
	st, _ := e.instance()
	keys, err := LoadKeySet(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := NewVerifier(e.cfg, keys, st, e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.Run(ctx)
	}()
	e.t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-v.Ready():
	case <-time.After(30 * time.Second):
		e.t.Fatal("verifier not ready")
	}
	return v
}

func acmeRequest() TicketRequest {
	return TicketRequest{
		ExternalID:      "alice",
		Email:           "alice@acme.test",
		Tenant:          "acme",
		Groups:          []string{"pii"},
		Attributes:      map[string][]string{"regions": {"EU", "NA"}},
		ConnectionRoles: map[string]policy.Role{"demo": policy.RoleQuerier},
		APIKeyName:      "acme-backend",
	}
}

func (e *env) mint() string {
	e.t.Helper()
	tok, _, err := e.svc.MintTicket(context.Background(), acmeRequest())
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) session() (*Session, string) {
	e.t.Helper()
	s, tok, err := e.svc.ExchangeTicket(context.Background(), e.mint())
	if err != nil {
		e.t.Fatal(err)
	}
	return s, tok
}

// do sends a request to the env's server and decodes the JSON answer.
func (e *env) do(method, path string, body any, hdr map[string]string) (int, http.Header, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	var out map[string]any
	if len(raw) > 0 && resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("%s %s: bad JSON %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header, out
}

func bearerHdr(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}
