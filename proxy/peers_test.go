package proxy

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A CancelRequest that reaches another replica than the session's (a load
// balancer picks one per TCP connection) is forwarded to the owner, once and
// signed; forged and unsigned forwards cancel nothing.
func TestCancelAcrossPeers(t *testing.T) {
	secret := bytes.Repeat([]byte("s"), MinPeerSecretBytes)
	lns := make([]net.Listener, 3)
	peers := map[int]string{}
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		peers[i+1] = ln.Addr().String()
	}
	// Replica 3 has the wrong secret: what it forwards is refused.
	a := startProxyOn(t, lns[0], func(c *Config, _ *Deps) { c.PeerID, c.Peers, c.PeerSecret = 1, peers, secret })
	b := startProxyOn(t, lns[1], func(c *Config, d *Deps) {
		c.PeerID, c.Peers, c.PeerSecret = 2, peers, secret
		d.Warehouses = a.deps.Warehouses
	})
	c := startProxyOn(t, lns[2], func(c *Config, d *Deps) {
		c.PeerID, c.Peers, c.PeerSecret = 3, peers, bytes.Repeat([]byte("x"), MinPeerSecretBytes)
		d.Warehouses = a.deps.Warehouses
	})
	ctx := ctxT(t)
	conn := a.connect(t, ctx, "tok-acme")
	if got := peerOf(conn.PID()); got != 1 {
		t.Fatalf("replica 1 issued a key of peer %d", got)
	}

	// sleepUntilCancelled runs a long statement and reports whether send
	// cancelled it.
	sleepUntilCancelled := func(send func()) error {
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, "SELECT pg_sleep(3)").ReadAll()
			done <- err
		}()
		time.Sleep(300 * time.Millisecond)
		send()
		return <-done
	}
	raw := func(addr string, pid uint32, secret []byte) { sendCancel(t, addr, pid, secret) }

	// The client's key sent to replica 2 cancels the statement on replica 1.
	err := sleepUntilCancelled(func() { raw(b.addr, conn.PID(), conn.SecretKey()) })
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" {
		t.Fatalf("cancel through replica 2: %v, want 57014", err)
	}
	for _, tc := range []struct {
		name string
		send func()
	}{
		{"forwarded by a replica with another secret", func() { raw(c.addr, conn.PID(), conn.SecretKey()) }},
		{"a client's request marked forwarded, unsigned", func() { raw(a.addr, conn.PID()|peerForwarded, conn.SecretKey()) }},
		{"marked forwarded with a made-up signature", func() {
			raw(a.addr, conn.PID()|peerForwarded, append(conn.SecretKey(), make([]byte, peerMACLen)...))
		}},
		{"the right pid with a wrong secret, through replica 2", func() { raw(b.addr, conn.PID(), []byte{0, 0, 0, 0}) }},
		{"a key of a peer nobody knows", func() { raw(b.addr, 77<<peerShift|conn.PID()&(1<<peerShift-1), conn.SecretKey()) }},
	} {
		if err := sleepUntilCancelled(tc.send); err != nil {
			t.Errorf("%s: cancelled the statement: %v", tc.name, err)
		}
	}
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("after the cancels: %v", err)
	}
}

func TestPeerConfig(t *testing.T) {
	ok := bytes.Repeat([]byte("s"), MinPeerSecretBytes)
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"peers without an id", Config{Peers: map[int]string{2: "127.0.0.1:1"}}, "set proxy.peer_id"},
		{"id too large", Config{PeerID: 256}, "outside 1 to 255"},
		{"bad address", Config{PeerID: 1, Peers: map[int]string{2: "nope"}, PeerSecret: ok}, "peer 2"},
		{"short secret", Config{PeerID: 1, Peers: map[int]string{2: "127.0.0.1:1"}, PeerSecret: []byte("x")}, "at least 32 bytes"},
	} {
		err := tc.c.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	good := Config{PeerID: 1, Peers: map[int]string{1: "127.0.0.1:1", 2: "127.0.0.1:2"}, PeerSecret: ok}
	if err := good.WithDefaults().Validate(); err != nil {
		t.Error(err)
	}
}
