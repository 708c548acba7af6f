package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/internal/pgcluster"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

func TestCancelRequest(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")

	// A forged key (right pid, wrong secret; and a made-up pid) cancels nothing.
	forged := func(pid uint32, secret []byte) { sendCancel(t, tp.addr, pid, secret) }
	started := make(chan struct{})
	go func() {
		<-started
		time.Sleep(300 * time.Millisecond)
		forged(conn.PID(), []byte{0, 0, 0, 0})
		forged(conn.PID()^1, conn.SecretKey())
	}()
	close(started)
	if _, err := conn.Exec(ctx, "SELECT pg_sleep(1)").ReadAll(); err != nil {
		t.Fatalf("forged cancel keys cancelled the statement: %v", err)
	}

	// The proxy's own key cancels the statement on the warehouse.
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(10)").ReadAll()
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := conn.CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	wantPgErr(t, <-done, "57014", "canceling statement due to user request")
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}

func writeSelfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pgwarden test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func TestTLS(t *testing.T) {
	cert, key := writeSelfSignedCert(t)
	tp := startProxy(t, func(c *Config, _ *Deps) { c.TLSCertFile, c.TLSKeyFile = cert, key })
	ctx := ctxT(t)
	for _, mode := range []string{"require", "disable", "prefer", "require&sslnegotiation=direct"} {
		t.Run(mode, func(t *testing.T) {
			u := "postgres://alice:tok-acme@" + tp.addr + "/wh?sslmode=" + mode
			conn, err := pgx.Connect(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 3 {
				t.Fatalf("count = %d, %v", n, err)
			}
			_, isTLS := conn.PgConn().Conn().(*tls.Conn)
			if isTLS != (mode != "disable") {
				t.Fatalf("sslmode=%s: TLS = %v", mode, isTLS)
			}
		})
	}
	// Without TLS configured, sslmode=require fails: the proxy answers N.
	plain := startProxy(t, nil)
	_, err := pgconn.Connect(ctx, "postgres://alice:tok-acme@"+plain.addr+"/wh?sslmode=require")
	if err == nil {
		t.Fatal("sslmode=require succeeded against a proxy without TLS")
	}
}

func TestIdleTimeout(t *testing.T) {
	tp := startProxy(t, func(c *Config, _ *Deps) { c.IdleTimeout = 300 * time.Millisecond })
	ctx := ctxT(t)
	_, fe := rawSession(t, tp, "tok-acme")
	// A statement running longer than the idle timeout is not idle.
	fe.Send(&pgproto3.Query{String: "SELECT pg_sleep(0.8)"})
	fe.Flush()
	wantSeq(t, readUntilReady(t, fe), "RowDescription", "DataRow()", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
	// Then, idle: FATAL 57P05 and the connection closes.
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(m); got != "Error(57P05)" {
		t.Fatalf("got %s, want Error(57P05)", got)
	}
	if _, err := fe.Receive(); err == nil {
		t.Fatal("connection still open after idle timeout")
	}
	_ = ctx
}

func TestMaxClientConns(t *testing.T) {
	tp := startProxy(t, func(c *Config, _ *Deps) { c.MaxClientConns = 2 })
	ctx := ctxT(t)
	var conns []*pgconn.PgConn
	for range 2 {
		c, err := pgconn.Connect(ctx, tp.url("tok-acme", "wh", ""))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	_, err := pgconn.Connect(ctx, tp.url("tok-acme", "wh", ""))
	wantPgErr(t, err, "53300", "sorry, too many clients already")
	conns[0].Close(ctx)
	// The slot frees once the proxy has seen the close.
	var c3 *pgconn.PgConn
	for i := 0; ; i++ {
		c3, err = pgconn.Connect(ctx, tp.url("tok-acme", "wh", ""))
		if err == nil {
			break
		}
		if i > 100 {
			t.Fatalf("no slot after close: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c3.Close(ctx)
	conns[1].Close(ctx)
}

func TestRevocation(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	idle := tp.connect(t, ctx, "tok-acme")
	active := tp.connect(t, ctx, "tok-acme")
	other := tp.connect(t, ctx, "tok-globex")

	done := make(chan error, 1)
	go func() {
		_, err := active.Exec(ctx, "SELECT pg_sleep(30)").ReadAll()
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	tp.auth.revoke("s-acme")

	wantPgErr(t, <-done, "28000", "session revoked")
	// The idle connection was closed too; pgconn notices on the next use.
	_, err := idle.Exec(ctx, "SELECT 1").ReadAll()
	if err == nil {
		t.Fatal("idle connection of a revoked session still works")
	}
	select {
	case <-idle.CleanupDone():
	case <-time.After(10 * time.Second):
		t.Fatal("idle connection not closed")
	}
	// Another session is unaffected.
	if _, err := other.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	// The warehouse statement of the active session was cancelled, not left running.
	awaitStopped(t, activeStatements(t, ctx, tp.dbURL, "SELECT pg_sleep(30)"), "revoked session's statement still running on the warehouse")
}

func TestIdleRevokedConnectionGetsFatal(t *testing.T) {
	tp := startProxy(t, nil)
	_, fe := rawSession(t, tp, "tok-globex")
	tp.auth.revoke("s-globex")
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(m); got != "Error(28000)" {
		t.Fatalf("got %s", got)
	}
}

func TestShutdownDrains(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	idle := tp.connect(t, ctx, "tok-acme")
	busy := tp.connect(t, ctx, "tok-acme")
	stuck := tp.connect(t, ctx, "tok-acme")

	busyDone := make(chan error, 1)
	go func() {
		res, err := busy.Exec(ctx, "SELECT pg_sleep(1), 'finished'").ReadAll()
		if err == nil && string(res[0].Rows[0][1]) != "finished" {
			err = errors.New("wrong result")
		}
		busyDone <- err
	}()
	stuckDone := make(chan error, 1)
	go func() {
		_, err := stuck.Exec(ctx, "SELECT pg_sleep(60)").ReadAll()
		stuckDone <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if !tp.srv.Ready() {
		t.Fatal("not ready while serving")
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- tp.srv.Shutdown(sctx) }()

	// The running statement finishes with its result.
	if err := <-busyDone; err != nil {
		t.Fatalf("running statement did not finish: %v", err)
	}
	// The statement that outlives the deadline gets FATAL 57P01.
	wantPgErr(t, <-stuckDone, "57P01", "terminating connection due to administrator command")
	if err := <-shutdownErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if tp.srv.Ready() {
		t.Fatal("ready after shutdown")
	}
	// The idle session was ended and new connections are refused.
	if _, err := idle.Exec(ctx, "SELECT 1").ReadAll(); err == nil {
		t.Fatal("idle session survived shutdown")
	}
	if _, err := pgconn.Connect(ctx, tp.url("tok-acme", "wh", "")); err == nil {
		t.Fatal("connected after shutdown")
	}
}

// During a drain a session that has just connected gets its statement
// answered, a transaction in progress runs to its end, and sessions idle
// outside a transaction end with 57P01: the drain ends without waiting for
// its deadline.
func TestShutdownServesFreshSessionsAndTransactions(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	idle := tp.connect(t, ctx, "tok-acme")
	inTx := tp.connect(t, ctx, "tok-acme")
	if _, err := inTx.Exec(ctx, "BEGIN; SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(drainGrace + 200*time.Millisecond) // idle past the grace
	fresh := tp.connect(t, ctx, "tok-acme")
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- tp.srv.Shutdown(sctx) }()
	for tp.srv.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := fresh.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Errorf("a session that connected just before the drain: %v", err)
	}
	for _, sql := range []string{"SELECT 2", "COMMIT"} {
		if _, err := inTx.Exec(ctx, sql).ReadAll(); err != nil {
			t.Errorf("%s in a transaction begun before the drain: %v", sql, err)
		}
	}
	_, err := idle.Exec(ctx, "SELECT 1").ReadAll()
	wantPgErr(t, err, "57P01", "terminating connection due to administrator command")
	if err := <-shutdownErr; err != nil {
		t.Errorf("Shutdown = %v, want every session ended before the deadline", err)
	}
}

// A warehouse the proxy cannot reach: the client's FATAL 08006 says what
// happened (refused, no answer within the time actually waited, credentials
// refused), in session and transaction mode, and leaks neither the
// warehouse's address nor its credentials.
func TestUnreachableWarehouse(t *testing.T) {
	freeAddr := func() string {
		port, err := pgcluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	// silent accepts connections and never answers: a frozen host.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan []net.Conn, 1)
	go func() {
		var conns []net.Conn
		defer func() { accepted <- conns }()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		for _, c := range <-accepted {
			c.Close()
		}
	})
	pg, err := url.Parse(pgtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	refused := freeAddr()
	for _, tc := range []struct {
		name, addr, user, password string
		mode                       pool.Mode
		want, wantNot              string
	}{
		{"refused, session mode", refused, "svc", "hunter2", pool.Session, "connection refused", "no answer"},
		// The pool retries refused dials until acquire_timeout; it used to
		// report "no answer within" the connect timeout then.
		{"refused, transaction mode", refused, "svc", "hunter2", pool.Transaction, "connection refused", "no answer"},
		{"no answer, session mode", silent.Addr().String(), "svc", "hunter2", pool.Session, "no answer within", "refused"},
		{"no answer, transaction mode", silent.Addr().String(), "svc", "hunter2", pool.Transaction, "no answer within", "refused"},
		{"bad password", pg.Host, "postgres", "hunter2", pool.Session, "refused the proxy's credentials (SQLSTATE 28P01)", "no answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := startProxy(t, func(c *Config, d *Deps) {
				c.ConnectTimeout = 700 * time.Millisecond
				w := NewWarehouse("wh", "postgres://"+tc.user+":"+tc.password+"@"+tc.addr+"/db?sslmode=disable", fakeRewriter{})
				w.Pool = pool.Config{Mode: tc.mode, AcquireTimeout: 400 * time.Millisecond}
				d.Warehouses["wh"] = w
			})
			ctx := ctxT(t)
			start := time.Now()
			_, err := pgconn.Connect(ctx, tp.url("tok-acme", "wh", ""))
			pe := wantPgErr(t, err, "08006", "warehouse wh is unreachable: ")
			t.Logf("after %s: %s", time.Since(start).Round(time.Millisecond), pe.Message)
			if !strings.Contains(pe.Message, tc.want) || strings.Contains(pe.Message, tc.wantNot) {
				t.Errorf("message %q: want it to say %q, not %q", pe.Message, tc.want, tc.wantNot)
			}
			for _, secret := range []string{tc.password, tc.user + ":", tc.addr} {
				if contains(pe.Message+pe.Detail+pe.Hint, secret) {
					t.Fatalf("error %q leaks %q", pe.Message, secret)
				}
			}
		})
	}
}

// A session past its ExpiresAt fails its next statement and is closed.
func TestSessionExpiresMidSession(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	tp := startProxy(t, func(_ *Config, d *Deps) {
		d.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	sd, err := conn.Prepare(ctx, "p", "SELECT 1", nil)
	if err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * time.Hour))
	// Executing an already prepared statement fails too.
	err = conn.ExecStatement(ctx, sd, nil, nil, nil).Read().Err
	wantPgErr(t, err, "28000", "session expired: renew it or mint a new ticket")
	select {
	case <-conn.CleanupDone():
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed after expiry")
	}
}

// A session renewed after a connection opened keeps the connection past the
// expiry it opened with, until the renewed expiry.
func TestRenewalExtendsOpenConnections(t *testing.T) {
	var now atomic.Int64
	start := time.Now()
	now.Store(start.UnixNano())
	tp := startProxy(t, func(_ *Config, d *Deps) {
		d.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	tp.auth.renew("s-acme", start.Add(3*time.Hour))
	now.Store(start.Add(2 * time.Hour).UnixNano()) // past the token's hour
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("renewed session past its first expiry: %v", err)
	}
	now.Store(start.Add(3 * time.Hour).UnixNano())
	_, err := conn.Exec(ctx, "SELECT 1").ReadAll()
	wantPgErr(t, err, "28000", "session expired: renew it or mint a new ticket")
}

// Cleartext passwords are refused on a plain connection from a non-loopback
// address (when the host has one to test with).
func TestInsecurePasswordRefused(t *testing.T) {
	var ip net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			ip = n.IP
			break
		}
	}
	if ip == nil {
		t.Skip("no non-loopback IPv4 address")
	}
	cert, key := writeSelfSignedCert(t)
	tp := startProxy(t, func(c *Config, _ *Deps) { c.TLSCertFile, c.TLSKeyFile = cert, key })
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	go tp.srv.Serve(context.Background(), ln)
	ctx := ctxT(t)
	base := "postgres://alice:tok-acme@" + ln.Addr().String() + "/wh?sslmode="
	_, err = pgconn.Connect(ctx, base+"disable")
	wantPgErr(t, err, "28000", "use sslmode=require")
	conn, err := pgconn.Connect(ctx, base+"require")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
}

// When the warehouse ends the backend, a session-mode client is told and
// disconnected; a transaction-mode session outlives the connection.
func TestWarehouseTerminatesBackend(t *testing.T) {
	tp := startProxy(t, func(_ *Config, d *Deps) { d.Warehouses["wh"].Pool.Mode = pool.Session })
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	admin, err := pgx.Connect(ctx, tp.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pgwarden' AND datname = current_database()").Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminated %d backends: %v", n, err)
	}
	_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
	// The warehouse's own FATAL is relayed as it is.
	wantPgErr(t, err, "57P01", "terminating connection due to administrator command")
	select {
	case <-conn.CleanupDone():
	case <-time.After(10 * time.Second):
		t.Fatal("client not disconnected")
	}
}

// pooledSession starts a proxy with a one-connection pool and returns a
// session on it and an admin connection to the warehouse.
func pooledSession(t *testing.T) (context.Context, *pgconn.PgConn, *pgx.Conn) {
	t.Helper()
	tp := startPool(t, pool.Config{Size: 1}, nil)
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	admin, err := pgx.Connect(ctx, tp.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	return ctx, conn, admin
}

func TestWarehouseTerminatesPooledBackend(t *testing.T) {
	ctx, conn, admin := pooledSession(t)
	terminate := func() {
		t.Helper()
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pgwarden' AND datname = current_database()").Scan(&n); err != nil || n != 1 {
			t.Fatalf("terminated %d backends: %v", n, err)
		}
	}
	// Idle in the pool: the next transaction gets a working connection, or
	// (when the termination is still under way) 08006 and then one.
	terminate()
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		wantPgErr(t, err, "08006", "was lost")
	}
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("the session did not recover: %v", err)
	}
	// Held in a transaction block: the client learns its transaction is gone.
	if _, err := conn.Exec(ctx, "BEGIN; SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	terminate()
	_, err := conn.Exec(ctx, "SELECT 2").ReadAll()
	wantPgErr(t, err, "08006", "the transaction was rolled back")
	if got := conn.TxStatus(); got != 'I' {
		t.Errorf("tx status %c after the loss, want I", got)
	}
	res, err := conn.Exec(ctx, "SELECT 3").ReadAll()
	if err != nil || string(res[0].Rows[0][0]) != "3" {
		t.Fatalf("the session did not recover: %v", err)
	}
}

// A Parse whose pooled connection dies before the warehouse answers it
// prepared nothing: the client may prepare the same name again, as pgx's
// statement cache does after such an error.
func TestWarehouseLostDuringParse(t *testing.T) {
	ctx, conn, admin := pooledSession(t)
	// The warehouse parses the statement only once it can lock orders.
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	const q = "SELECT count(*) FROM orders WHERE total > $1"
	done := make(chan error, 1)
	go func() {
		_, err := conn.Prepare(ctx, "s1", q, nil)
		done <- err
	}()
	var n int
	for i := 0; n == 0; i++ {
		if i > 200 {
			t.Fatal("the Parse never waited for the lock")
		}
		time.Sleep(10 * time.Millisecond)
		if err := admin.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pgwarden' AND datname = current_database() AND wait_event_type = 'Lock'").Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	wantPgErr(t, <-done, "08006", "was lost")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Prepare(ctx, "s1", q, nil); err != nil {
		t.Fatalf("preparing the name again: %v", err)
	}
	res := conn.ExecPrepared(ctx, "s1", [][]byte{[]byte("0")}, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "3" {
		t.Fatalf("executing it: %v %q", res.Err, res.Rows)
	}
}

// Every entry a session logs carries its fields once each: the logger is
// rebuilt as startup learns them (logWith), not chained. An internal user's
// role and the session's role on the warehouse are two fields.
func TestSessionLogFields(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	tp := startPool(t, pool.Config{Size: 1}, func(_ *Config, d *Deps) {
		d.Logger = zap.New(zapcore.NewTee(d.Logger.Core(), core))
	})
	tp.auth.mu.Lock()
	tp.auth.sessions["tok-ann"] = &auth.Session{ID: "s-ann", Kind: policy.KindInternal, Tenant: "acme", ExternalID: "00u1", Subject: "00u1",
		Role: auth.RoleDesigner, BaseRole: policy.RoleViewer, ExpiresAt: time.Now().Add(time.Hour)}
	tp.auth.mu.Unlock()
	ctx := ctxT(t)
	for _, tc := range []struct {
		token, session string
		want           map[string]string
	}{
		{"tok-acme", "s-acme", map[string]string{"user": "alice", "database": "wh", "session": "s-acme", "tenant": "acme", "connection_role": "viewer"}},
		{"tok-ann", "s-ann", map[string]string{"user": "alice", "database": "wh", "session": "s-ann", "tenant": "acme", "subject": "00u1", "role": "designer", "connection_role": "viewer"}},
	} {
		conn := tp.connect(t, ctx, tc.token)
		if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
		tp.auth.revoke(tc.session)
		entries := func(msg string) []observer.LoggedEntry {
			return logs.Filter(func(e observer.LoggedEntry) bool {
				return e.Message == msg && e.ContextMap()["session"] == tc.session
			}).All()
		}
		for i := 0; len(entries("session ended")) == 0; i++ {
			if i > 200 {
				t.Fatalf("%s: the revoked session was not cut off", tc.session)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, es := range [][]observer.LoggedEntry{entries("session started"), entries("session ended")} {
			if len(es) != 1 {
				t.Fatalf("%s: %d entries, want 1", tc.session, len(es))
			}
			e := es[0]
			seen := map[string]int{}
			for _, f := range e.Context {
				seen[f.Key]++
			}
			m := e.ContextMap()
			for k, v := range tc.want {
				if k == "connection_role" && e.Message != "session started" {
					continue
				}
				if m[k] != v {
					t.Errorf("%s %q: %s = %v, want %s", tc.session, e.Message, k, m[k], v)
				}
			}
			if r, _ := m["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
				t.Errorf("%s %q: remote = %v", tc.session, e.Message, m["remote"])
			}
			for k, n := range seen {
				if n != 1 {
					t.Errorf("%s %q: field %s %d times", tc.session, e.Message, k, n)
				}
			}
		}
	}
}

// activeStatements returns a count of the warehouse backends running q.
func activeStatements(t *testing.T, ctx context.Context, dbURL, q string) func() int {
	t.Helper()
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	return func() int {
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'", q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// sendRunning sends q as a simple query over a raw session and returns once
// the warehouse runs it, with the connection and a count of its runs.
func sendRunning(t *testing.T, ctx context.Context, tp *testProxy, q string) (net.Conn, func() int) {
	t.Helper()
	nc, fe := rawSession(t, tp, "tok-acme")
	fe.Send(&pgproto3.Query{String: q})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	running := activeStatements(t, ctx, tp.dbURL, q)
	for i := 0; running() == 0; i++ {
		if i > 200 {
			t.Fatal("the statement never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nc, running
}

// awaitStopped fails with why unless running reaches 0 within 5 s.
func awaitStopped(t *testing.T, running func() int, why string) {
	t.Helper()
	for i := 0; running() > 0; i++ {
		if i > 200 {
			t.Fatal(why)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// A revoked session whose client has stopped reading a large result is cut
// off: its statement does not stay on the warehouse waiting to write.
func TestRevocationOfStalledClient(t *testing.T) {
	tp := startProxy(t, nil)
	_, running := sendRunning(t, ctxT(t), tp, "SELECT repeat('x', 100000) FROM generate_series(1, 5000)")
	time.Sleep(300 * time.Millisecond) // the socket buffers fill up
	tp.auth.revoke("s-acme")
	awaitStopped(t, running, "the revoked session's statement still runs on the warehouse")
}

// A client that disconnects while its statement runs has the statement
// cancelled, not left to run for nobody on a pooled connection, and the
// connection goes back to the pool.
func TestClientGoneCancelsStatement(t *testing.T) {
	if !canWatchGone {
		t.Skip("clients are watched on Linux only")
	}
	tp := startPool(t, pool.Config{Size: 1}, nil)
	ctx := ctxT(t)
	nc, running := sendRunning(t, ctx, tp, "SELECT pg_sleep(30)")
	nc.Close()
	awaitStopped(t, running, "the statement of a client that left still runs on the warehouse")
	other := tp.connect(t, ctx, "tok-globex")
	if _, err := other.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("the pool after the client left: %v", err)
	}
}
