package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/rewrite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const setupSQL = `
CREATE TABLE orders (tenant_id text NOT NULL, order_id int NOT NULL, total int NOT NULL);
INSERT INTO orders VALUES ('acme', 1, 10), ('acme', 2, 20), ('acme', 3, 30), ('globex', 4, 40), ('globex', 5, 50);
CREATE TABLE internal_costs (x int);
`

// fakeRewriter stands in for package rewrite: it refuses any statement that
// mentions internal_costs and limits "FROM orders" to the session's tenant,
// so tests can tell the rewritten SQL from the original.
type fakeRewriter struct{}

func (fakeRewriter) Rewrite(_ context.Context, sql string, id *policy.Identity) (*rewrite.Result, error) {
	lower := strings.ToLower(sql)
	if i := strings.Index(lower, "internal_costs"); i >= 0 {
		return nil, pgerr.Denied("permission denied for table internal_costs").WithHint("ask for access")
	}
	if strings.Contains(lower, "rewriter_panics_here") {
		return nil, errors.New("secret internal detail")
	}
	out := strings.ReplaceAll(sql, "FROM orders", fmt.Sprintf("FROM (SELECT * FROM orders WHERE tenant_id = '%s') orders", id.Tenant))
	res := &rewrite.Result{SQL: out}
	for _, s := range strings.Split(out, ";") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		k := rewrite.KindQuery
		var setName, setValue, sp string
		var local bool
		var spOp rewrite.SavepointOp
		switch f := strings.Fields(s); strings.ToUpper(f[0]) {
		case "SHOW":
			k = rewrite.KindShow
		case "SET", "RESET":
			k = rewrite.KindSet
			if len(f) >= 2 && (strings.EqualFold(f[1], "LOCAL") || strings.EqualFold(f[1], "SESSION")) {
				local = strings.EqualFold(f[1], "LOCAL")
				f = append(f[:1], f[2:]...)
			}
			if len(f) >= 2 {
				setName = strings.ToLower(f[1])
			}
			if strings.ToUpper(f[0]) == "SET" && len(f) >= 4 {
				setValue = f[3]
			}
		case "BEGIN", "COMMIT", "ROLLBACK", "START", "SAVEPOINT", "RELEASE":
			k = rewrite.KindTransaction
			last := strings.ToLower(f[len(f)-1])
			switch {
			case strings.EqualFold(f[0], "SAVEPOINT"):
				sp, spOp = last, rewrite.SavepointDefine
			case strings.EqualFold(f[0], "RELEASE"):
				sp, spOp = last, rewrite.SavepointRelease
			case len(f) >= 3 && strings.EqualFold(f[1], "TO"):
				sp, spOp = last, rewrite.SavepointRollbackTo
			}
		case "DISCARD":
			k = rewrite.KindDiscard
		case "DECLARE", "FETCH", "MOVE", "CLOSE":
			k = rewrite.KindCursor
		case "PREPARE":
			k = rewrite.KindPrepare
		case "EXECUTE":
			k = rewrite.KindExecute
		case "DEALLOCATE":
			k = rewrite.KindDeallocate
		}
		res.Statements = append(res.Statements, rewrite.Statement{SQL: s, Kind: k, SetName: setName, SetValue: setValue, SetLocal: local,
			Savepoint: sp, SavepointOp: spOp})
	}
	h := fnv.New64a()
	h.Write([]byte(sql))
	res.Fingerprint = fmt.Sprintf("%016x", h.Sum64())
	return res, nil
}

// cachingRewriter is fakeRewriter answering a text it rewrote before for
// the same tenant with the same result, as package rewrite's cache does:
// only then may a Parse that repeats the unnamed statement keep it
// (reparsedLocked).
type cachingRewriter struct {
	mu   sync.Mutex
	seen map[string]*rewrite.Result
}

func (r *cachingRewriter) Rewrite(ctx context.Context, sql string, id *policy.Identity) (*rewrite.Result, error) {
	key := id.Tenant + "\x00" + sql
	r.mu.Lock()
	defer r.mu.Unlock()
	if res := r.seen[key]; res != nil {
		return res, nil
	}
	res, err := fakeRewriter{}.Rewrite(ctx, sql, id)
	if err == nil {
		if r.seen == nil {
			r.seen = map[string]*rewrite.Result{}
		}
		r.seen[key] = res
	}
	return res, err
}

// fakeAuth maps fixed passwords to sessions or errors, and lets tests revoke.
type fakeAuth struct {
	mu       sync.Mutex
	sessions map[string]*auth.Session
	errs     map[string]error
	revoked  map[string]chan struct{}
	renewed  map[string]time.Time // by session id: SessionExpiry's answer
}

func newFakeAuth() *fakeAuth {
	future := time.Now().Add(time.Hour)
	s := func(id, tenant string, roles map[string]policy.Role) *auth.Session {
		return &auth.Session{ID: id, Kind: policy.KindEmbed, Tenant: tenant, ExternalID: "ext-" + id, BaseRole: policy.RoleViewer, ConnectionRoles: roles, ExpiresAt: future}
	}
	a := &fakeAuth{
		sessions: map[string]*auth.Session{
			"tok-acme":     s("s-acme", "acme", nil),
			"tok-globex":   s("s-globex", "globex", nil),
			"tok-noaccess": s("s-noaccess", "acme", map[string]policy.Role{"wh": policy.RoleNoAccess}),
		},
		errs: map[string]error{
			"tok-expired": pgerr.BadCredentials("session token expired"),
			"tok-reused":  pgerr.BadCredentials("ticket already used"),
		},
		revoked: map[string]chan struct{}{},
	}
	old := s("s-old", "acme", nil)
	old.ExpiresAt = time.Now().Add(-time.Minute)
	a.sessions["tok-old"] = old
	return a
}

func (a *fakeAuth) Authenticate(ctx context.Context, credential string) (*auth.Session, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.errs[credential]; err != nil {
		return nil, err
	}
	if s := a.sessions[credential]; s != nil {
		return s, nil
	}
	return nil, pgerr.BadCredentials("invalid session token")
}

func (a *fakeAuth) Watch(id string) (<-chan struct{}, func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := a.revoked[id]
	if ch == nil {
		ch = make(chan struct{})
		a.revoked[id] = ch
	}
	return ch, func() {}
}

// SessionExpiry answers a renewal recorded with renew, else "not found".
func (a *fakeAuth) SessionExpiry(_ context.Context, id string) (time.Time, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if exp, ok := a.renewed[id]; ok {
		return exp, nil
	}
	return time.Time{}, auth.ErrSessionNotFound
}

func (a *fakeAuth) renew(id string, exp time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.renewed == nil {
		a.renewed = map[string]time.Time{}
	}
	a.renewed[id] = exp
}

func (a *fakeAuth) revoke(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := a.revoked[id]
	if ch == nil {
		ch = make(chan struct{})
		a.revoked[id] = ch
	}
	close(ch)
}

type testProxy struct {
	srv    *Server
	addr   string
	deps   Deps
	auth   *fakeAuth
	dbURL  string
	cancel context.CancelFunc
	done   chan error
}

// startProxy serves a proxy on 127.0.0.1:0 in front of a fresh database
// (warehouse "wh"). mod may adjust the config and deps.
func startProxy(t *testing.T, mod func(*Config, *Deps)) *testProxy {
	t.Helper()
	return startProxyTB(t, mod)
}

func startProxyTB(t testing.TB, mod func(*Config, *Deps)) *testProxy {
	t.Helper()
	return startProxyOn(t, nil, mod)
}

// startProxyOn is startProxy serving on ln (nil: a new listener).
func startProxyOn(t testing.TB, ln net.Listener, mod func(*Config, *Deps)) *testProxy {
	t.Helper()
	dbURL := pgtest.NewDatabase(t, setupSQL)
	fa := newFakeAuth()
	cfg := Config{Listen: "127.0.0.1:0", ConnectTimeout: 5 * time.Second, ShutdownTimeout: 5 * time.Second, LoopIO: testLoopIO(t)}
	deps := Deps{
		Logger:        zaptest.NewLogger(t),
		Authenticator: fa,
		Warehouses:    map[string]*Warehouse{"wh": NewWarehouse("wh", dbURL, fakeRewriter{})},
	}
	if mod != nil {
		mod(&cfg, &deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	tp := &testProxy{srv: srv, deps: deps, addr: ln.Addr().String(), auth: fa, dbURL: dbURL, cancel: cancel, done: make(chan error, 1)}
	go func() { tp.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-tp.done:
			if err != nil && !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Serve did not return")
		}
	})
	return tp
}

func (tp *testProxy) url(password, db, extra string) string {
	u := fmt.Sprintf("postgres://alice:%s@%s/%s?sslmode=disable", password, tp.addr, db)
	if extra != "" {
		u += "&" + extra
	}
	return u
}

// connect logs a pgconn client in to warehouse "wh" with a token; it is
// closed when the test ends.
func (tp *testProxy) connect(t testing.TB, ctx context.Context, token string) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(ctx, tp.url(token, "wh", ""))
	if err != nil {
		t.Fatalf("connect as %s: %v", token, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantPgErr checks that err is a server error with code and message.
func wantPgErr(t *testing.T, err error, code, msgContains string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v, want a PgError %s", err, code)
	}
	if pe.Code != code || !strings.Contains(pe.Message, msgContains) {
		t.Fatalf("error = %s %q, want %s containing %q", pe.Code, pe.Message, code, msgContains)
	}
	return pe
}

// sendCancel sends a CancelRequest for (pid, secret) to addr as a client
// does, and waits for the proxy to close the connection once it has handled
// it.
func sendCancel(t testing.TB, addr string, pid uint32, secret []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := binary.BigEndian.AppendUint32(nil, uint32(12+len(secret)))
	buf = binary.BigEndian.AppendUint32(buf, codeCancel)
	buf = binary.BigEndian.AppendUint32(buf, pid)
	c.Write(append(buf, secret...))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	c.Read(buf)
}

// testLoopIO is the event loops' I/O for t: epoll under bothLoopIO's epoll
// subtest (evloop_test.go), the default otherwise.
func testLoopIO(t testing.TB) string {
	if strings.Contains(t.Name(), "/epoll") {
		return "epoll"
	}
	return ""
}
