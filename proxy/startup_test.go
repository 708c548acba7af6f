package proxy

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

func TestAuthentication(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name, password, db string
		code, msg          string
	}{
		{"ok", "tok-acme", "wh", "", ""},
		{"bad password", "nope", "wh", "28P01", "invalid session token"},
		{"expired token", "tok-expired", "wh", "28P01", "session token expired"},
		{"reused ticket", "tok-reused", "wh", "28P01", "ticket already used"},
		{"unknown database", "tok-acme", "nowhere", "3D000", `database "nowhere" does not exist`},
		{"no access", "tok-noaccess", "wh", "28000", "session has no access to warehouse wh"},
		{"session past expiry", "tok-old", "wh", "28000", "session expired: renew it or mint a new ticket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := pgconn.Connect(ctx, tp.url(tc.password, tc.db, ""))
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				conn.Close(ctx)
				return
			}
			if err == nil {
				conn.Close(ctx)
				t.Fatal("connected, want an error")
			}
			pe := wantPgErr(t, err, tc.code, tc.msg)
			if pe.Severity != "FATAL" {
				t.Errorf("severity %s", pe.Severity)
			}
		})
	}
}

func TestPasswordAllowed(t *testing.T) {
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 5000} }
	for _, tc := range []struct {
		name          string
		tls           bool
		addr          net.Addr
		allowInsecure bool
		want          bool
	}{
		{"tls remote", true, tcp("203.0.113.9"), false, true},
		{"plain remote", false, tcp("203.0.113.9"), false, false},
		{"plain remote allowed", false, tcp("203.0.113.9"), true, true},
		{"plain loopback v4", false, tcp("127.0.0.1"), false, true},
		{"plain loopback v6", false, tcp("::1"), false, true},
		{"plain private", false, tcp("10.0.0.1"), false, false},
		{"unix socket", false, &net.UnixAddr{Name: "/tmp/.s.PGSQL.6432", Net: "unix"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := passwordAllowed(tc.tls, tc.addr, tc.allowInsecure); got != tc.want {
				t.Fatalf("passwordAllowed = %v, want %v", got, tc.want)
			}
		})
	}
	if e := errInsecurePassword(); e.Code != "28000" || e.Hint != "connect with sslmode=require" {
		t.Fatalf("errInsecurePassword = %+v", e)
	}
}

// rawStartup sends a hand-made startup packet and returns the first message.
func rawStartup(t *testing.T, addr string, version uint32, params ...string) pgproto3.BackendMessage {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	body := binary.BigEndian.AppendUint32(nil, version)
	for _, p := range params {
		body = append(body, p...)
		body = append(body, 0)
	}
	body = append(body, 0)
	pkt := binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))
	c.Write(append(pkt, body...))
	fe := pgproto3.NewFrontend(c, c)
	msg, err := fe.Receive()
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return msg
}

func TestStartupRefusals(t *testing.T) {
	tp := startProxy(t, nil)
	for _, tc := range []struct {
		name    string
		version uint32
		params  []string
		code    string
	}{
		{"protocol 2", 2 << 16, []string{"user", "alice"}, "0A000"},
		{"protocol 4", 4 << 16, []string{"user", "alice"}, "0A000"},
		{"replication", 3 << 16, []string{"user", "alice", "database", "wh", "replication", "database"}, "42501"},
		{"replication true", 3 << 16, []string{"user", "alice", "replication", "true"}, "42501"},
		{"no user", 3 << 16, []string{"database", "wh"}, "28000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := rawStartup(t, tp.addr, tc.version, tc.params...)
			er, ok := msg.(*pgproto3.ErrorResponse)
			if !ok {
				t.Fatalf("got %T, want ErrorResponse", msg)
			}
			if er.Code != tc.code || er.Severity != "FATAL" {
				t.Fatalf("got %s %s %q, want FATAL %s", er.Severity, er.Code, er.Message, tc.code)
			}
		})
	}
	// A newer 3.x minor is negotiated down, as PostgreSQL does.
	msg := rawStartup(t, tp.addr, 3<<16|2, "user", "alice", "database", "wh", "_pq_.foo", "bar")
	npv, ok := msg.(*pgproto3.NegotiateProtocolVersion)
	if !ok || npv.NewestMinorProtocol != 0 || len(npv.UnrecognizedOptions) != 1 {
		t.Fatalf("got %#v, want NegotiateProtocolVersion 0 [_pq_.foo]", msg)
	}
}

// The startup "options" (and other settings) must not reach the warehouse.
func TestStartupOptionsIgnored(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, tp.url("tok-acme", "wh", "options=-c%20search_path%3Devil&search_path=evil2&TimeZone=Asia/Tokyo"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var sp, tz string
	if err := conn.QueryRow(ctx, "SHOW search_path").Scan(&sp); err != nil {
		t.Fatal(err)
	}
	if sp != `"$user", public` {
		t.Fatalf("search_path = %q; startup options leaked to the warehouse", sp)
	}
	// Allow-listed formatting settings do pass.
	if err := conn.QueryRow(ctx, "SHOW TimeZone").Scan(&tz); err != nil || tz != "Asia/Tokyo" {
		t.Fatalf("TimeZone = %q, %v", tz, err)
	}
}

func TestSSLRequestWithoutTLSAnswersN(t *testing.T) {
	tp := startProxy(t, nil)
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for _, code := range []uint32{codeSSL, codeGSSENC} {
		c.Write(binary.BigEndian.AppendUint32([]byte{0, 0, 0, 8}, code))
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'N' {
			t.Fatalf("answer to %d = %q %v, want N", code, b[0], err)
		}
	}
}
