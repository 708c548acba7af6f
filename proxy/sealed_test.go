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
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/embedctx"
)

// addSession registers token for a session of tenant acme (role viewer).
func (tp *testProxy) addSession(token string, mod func(*auth.Session)) {
	s := &auth.Session{ID: "s-" + token, Kind: policy.KindEmbed, Tenant: "acme", ExternalID: "ext-" + token,
		BaseRole: policy.RoleViewer, ExpiresAt: time.Now().Add(time.Hour)}
	if mod != nil {
		mod(s)
	}
	tp.auth.mu.Lock()
	tp.auth.sessions[token] = s
	tp.auth.mu.Unlock()
}

// connectFrom logs in with token from the local address from (any address
// of 127/8 works on Linux: the whole block is routed to lo), over TLS with
// cert when cert is not nil.
func (tp *testProxy) connectFrom(ctx context.Context, t *testing.T, token, from string, cert *tls.Certificate) (*pgconn.PgConn, error) {
	t.Helper()
	mode := "disable"
	if cert != nil {
		mode = "require"
	}
	cfg, err := pgconn.ParseConfig("postgres://alice:" + token + "@" + tp.addr + "/wh?sslmode=" + mode)
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	cfg.DialFunc = d.DialContext
	if cert != nil && cert.Certificate != nil {
		cfg.TLSConfig.Certificates = []tls.Certificate{*cert}
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

func wantConnected(t *testing.T, c *pgconn.PgConn, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if _, err := c.Exec(context.Background(), "SELECT count(*) FROM orders").ReadAll(); err != nil {
		t.Fatalf("query: %v", err)
	}
}

func TestEmbedContextNetworks(t *testing.T) {
	audit := &syncBuffer{}
	tp := startProxy(t, func(c *Config, d *Deps) {
		c.EmbedContext = embedctx.Config{Networks: []string{"127.0.0.1/32"}, DirectAccessGroups: []string{"support"}}
		d.Audit = NewAuditLog(audit, false)
	})
	tp.addSession("tok-support", func(s *auth.Session) { s.Groups = []string{"pii", "support"} })
	tp.addSession("tok-other-group", func(s *auth.Session) { s.Groups = []string{"pii"} })
	tp.addSession("tok-internal", func(s *auth.Session) { s.Kind, s.Role = policy.KindInternal, auth.RoleAdministrator })
	tp.addSession("tok-nokind", func(s *auth.Session) { s.Kind = "" })
	ctx := ctxT(t)

	// The same token: allowed from the BI backend's network, refused from
	// another address.
	c, err := tp.connectFrom(ctx, t, "tok-acme", "127.0.0.1", nil)
	wantConnected(t, c, err)
	_, err = tp.connectFrom(ctx, t, "tok-acme", "127.0.0.2", nil)
	pe := wantPgErr(t, err, "28000", "embed session used outside its embed context")
	if pe.Severity != "FATAL" {
		t.Errorf("severity = %s, want FATAL", pe.Severity)
	}

	for _, tc := range []struct {
		token string
		ok    bool
	}{
		{"tok-support", true},      // a direct_access_groups group: from anywhere
		{"tok-other-group", false}, // groups, but not a direct-access one
		{"tok-internal", true},     // internal sessions are not bound
		{"tok-nokind", false},      // no kind: treated as embed
	} {
		c, err := tp.connectFrom(ctx, t, tc.token, "127.0.0.2", nil)
		if tc.ok {
			wantConnected(t, c, err)
		} else {
			wantPgErr(t, err, "28000", "embed session used outside its embed context")
		}
	}

	if got := testutil.ToFloat64(tp.srv.metrics.embedRefusals.WithLabelValues(embedctx.ReasonOutside)); got != 3 {
		t.Errorf("refusals metric = %v, want 3", got)
	}
	var refused []AuditRecord
	for _, r := range audit.records(t) {
		if r.Event == "login_refused" {
			refused = append(refused, r)
		}
	}
	if len(refused) != 3 {
		t.Fatalf("audit: %d login_refused records, want 3: %+v", len(refused), refused)
	}
	r := refused[0]
	if r.Session != "s-acme" || r.Tenant != "acme" || r.ClientAddr != "127.0.0.2" || r.SQLState != "28000" ||
		r.Outcome != "refused" || r.Reason != embedctx.ReasonOutside || r.Warehouse != "wh" {
		t.Errorf("audit record = %+v", r)
	}
}

func TestEmbedContextOffByDefault(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	c, err := tp.connectFrom(ctx, t, "tok-acme", "127.0.0.2", nil)
	wantConnected(t, c, err)
}

// A ticket may pin its session to the address that exchanged it, whether
// or not embed sessions are bound to networks.
func TestEmbedContextPinnedAddress(t *testing.T) {
	for _, bound := range []bool{false, true} {
		tp := startProxy(t, func(c *Config, _ *Deps) {
			if bound {
				c.EmbedContext = embedctx.Config{Networks: []string{"127.0.0.0/8"}}
			}
		})
		tp.addSession("tok-pinned", func(s *auth.Session) { s.PinnedAddr = "127.0.0.3" })
		ctx := ctxT(t)
		c, err := tp.connectFrom(ctx, t, "tok-pinned", "127.0.0.3", nil)
		wantConnected(t, c, err)
		_, err = tp.connectFrom(ctx, t, "tok-pinned", "127.0.0.1", nil)
		wantPgErr(t, err, "28000", "embed session used outside its embed context")
		if got := testutil.ToFloat64(tp.srv.metrics.embedRefusals.WithLabelValues(embedctx.ReasonPinnedAddress)); got != 1 {
			t.Errorf("bound=%v: pinned refusals = %v, want 1", bound, got)
		}
	}
}

func TestEmbedContextMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCert, serverKey := writeSelfSignedCert(t)
	ca := newTestCA(t, "bi backends")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	right := ca.clientCert(t, "metabase backend")
	wrong := newTestCA(t, "someone else").clientCert(t, "metabase backend")

	tp := startProxy(t, func(c *Config, _ *Deps) {
		c.TLSCertFile, c.TLSKeyFile = serverCert, serverKey
		c.EmbedContext = embedctx.Config{ClientCAFile: caFile}
	})
	tp.addSession("tok-internal", func(s *auth.Session) { s.Kind, s.Role = policy.KindInternal, auth.RoleAdministrator })
	ctx := ctxT(t)
	c, err := tp.connectFrom(ctx, t, "tok-acme", "127.0.0.1", &right)
	wantConnected(t, c, err)
	_, err = tp.connectFrom(ctx, t, "tok-acme", "127.0.0.1", &wrong)
	wantPgErr(t, err, "28000", "embed session used outside its embed context")
	_, err = tp.connectFrom(ctx, t, "tok-acme", "127.0.0.1", &tls.Certificate{}) // TLS, no certificate
	wantPgErr(t, err, "28000", "embed session used outside its embed context")
	_, err = tp.connectFrom(ctx, t, "tok-acme", "127.0.0.1", nil) // no TLS at all
	wantPgErr(t, err, "28000", "embed session used outside its embed context")
	// A wrong certificate does not keep sessions that are not bound out.
	c, err = tp.connectFrom(ctx, t, "tok-internal", "127.0.0.1", &wrong)
	wantConnected(t, c, err)
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// clientCert issues a client-authentication certificate.
func (ca *testCA) clientCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
