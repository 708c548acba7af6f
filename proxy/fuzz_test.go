package proxy

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus under testdata/fuzz")

// fuzzSeeds are client byte streams: valid sessions and near misses.
func fuzzSeeds() map[string][]byte {
	startup := func(version uint32, params ...string) []byte {
		body := binary.BigEndian.AppendUint32(nil, version)
		for _, p := range params {
			body = append(append(body, p...), 0)
		}
		body = append(body, 0)
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...)
	}
	enc := func(msgs ...pgproto3.FrontendMessage) []byte {
		var b []byte
		for _, m := range msgs {
			b, _ = m.Encode(b)
		}
		return b
	}
	login := append(startup(3<<16, "user", "alice", "database", "wh"), enc(&pgproto3.PasswordMessage{Password: "tok-acme"})...)
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	return map[string][]byte{
		"empty":         {},
		"ssl_then_junk": cat([]byte{0, 0, 0, 8, 4, 210, 22, 47}, []byte("junk")),
		"gssenc":        cat([]byte{0, 0, 0, 8, 4, 210, 22, 48}, startup(3<<16, "user", "alice")),
		"cancel":        {0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 1, 2, 3, 4},
		"bad_version":   startup(2<<16, "user", "alice"),
		"huge_length":   {0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0},
		"no_password":   startup(3<<16, "user", "alice", "database", "wh"),
		"bad_password":  cat(startup(3<<16, "user", "alice", "database", "wh"), enc(&pgproto3.PasswordMessage{Password: "x"})),
		"simple_query":  cat(login, enc(&pgproto3.Query{String: "SELECT 1; SELECT count(*) FROM orders"}, &pgproto3.Terminate{})),
		"refused":       cat(login, enc(&pgproto3.Query{String: "SELECT * FROM internal_costs"}, &pgproto3.Terminate{})),
		"extended": cat(login, enc(&pgproto3.Parse{Name: "s", Query: "SELECT $1::int"}, &pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("7")}},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{MaxRows: 1}, &pgproto3.Sync{}, &pgproto3.Terminate{})),
		"function_call": cat(login, enc(&pgproto3.FunctionCall{Function: 1299}, &pgproto3.Sync{})),
		"bad_message":   cat(login, []byte{'Q', 0, 0, 0, 3}),
		"truncated":     cat(login, []byte{'P', 0, 0, 0, 40, 'x'}),
	}
}

// FuzzStartup feeds arbitrary client bytes to a session (over net.Pipe, with a
// real warehouse behind it): nothing may panic or hang the server.
func FuzzStartup(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	tp := startProxyTB(f, func(c *Config, d *Deps) {
		c.AllowInsecurePassword = true // net.Pipe has no loopback address
		c.AuthTimeout = 5 * time.Second
		d.Logger = zap.NewNop()
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		c := tp.srv.newClientConn(context.Background(), server)
		if c == nil {
			t.Skip("server draining")
		}
		done := make(chan struct{})
		go func() { defer close(done); c.serve() }()
		client.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			client.Write(in)
			// Leave a moment for answers, then hang up like a client would.
			time.Sleep(5 * time.Millisecond)
			client.Close()
		}()
		io.Copy(io.Discard, client)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("session did not end")
		}
	})
}

// TestWriteFuzzSeeds checks that testdata/fuzz/FuzzStartup holds exactly
// fuzzSeeds(), which go test runs as FuzzStartup's corpus; -update writes it.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzStartup")
	seeds := fuzzSeeds()
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, seed := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed)
		if *update {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != body {
			t.Errorf("%s/%s is not fuzzSeeds()[%q] (err %v): run go test ./proxy -run TestWriteFuzzSeeds -update", dir, name, name, err)
		}
	}
	// Files the seeds no longer name are stale (go test would still run them).
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := seeds[e.Name()]; !ok {
			t.Errorf("%s/%s is not one of fuzzSeeds(): remove it, or add it there", dir, e.Name())
		}
	}
}
