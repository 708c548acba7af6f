package proxy

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/pgcluster"
)

// startTLSCluster starts a second throwaway PostgreSQL with ssl=on and
// returns a superuser DSN that requires TLS.
func startTLSCluster(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	dir, err := os.MkdirTemp("", "pgwarden-tls-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cert, key := writeSelfSignedCert(t)
	for _, f := range []string{cert, key} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 { // the server runs as postgres and must read its key
			u, err := user.Lookup("postgres")
			if err != nil {
				t.Skipf("no postgres user: %v", err)
			}
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := os.Chown(dst, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Settings: map[string]string{
		"ssl":           "on",
		"ssl_cert_file": "'" + filepath.Join(dir, "cert.pem") + "'",
		"ssl_key_file":  "'" + filepath.Join(dir, "key.pem") + "'",
	}})
	if err != nil {
		t.Fatalf("start tls cluster: %v", err)
	}
	t.Cleanup(func() { c.Stop() })
	return strings.Replace(c.DSN("postgres"), "sslmode=disable", "sslmode=require", 1)
}

// The warehouse connection follows the DSN's TLS mode, and cancel requests
// to it are sent over TLS too.
func TestUpstreamTLSAndCancel(t *testing.T) {
	dsn := startTLSCluster(t)
	tp := startProxy(t, func(_ *Config, d *Deps) {
		d.Warehouses["wh"] = NewWarehouse("wh", dsn, fakeRewriter{})
	})
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	res, err := conn.Exec(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res[0].Rows[0][0]); got != "t" {
		t.Fatalf("warehouse connection ssl = %q, want t", got)
	}
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
}
