package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgcluster"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestRelayModes runs a real PostgreSQL session through each mode: SCRAM
// authentication, the simple and extended protocols, results far larger
// than one read, an error, COPY both ways, and clients side by side.
func TestRelayModes(t *testing.T) {
	server, err := url.Parse(pgtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	backend, err := strconv.Atoi(server.Port())
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct{ name, block string }{{"goroutine", ""}, {"epoll", "raw"}, {"coro", "runtime"}, {"coro", "raw"}, {"uring", ""}} {
		t.Run(mode.name+"/"+mode.block, func(t *testing.T) {
			port, err := pgcluster.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			start(t, mode.name, mode.block == "raw", port, backend)
			u := *server
			u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			q := u.Query()
			q.Set("sslmode", "disable")
			u.RawQuery = q.Encode()
			errs := make(chan error, 3)
			for i := range 3 {
				go func() { errs <- session(u.String(), i) }()
			}
			for range 3 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// start runs a mode in this process, listening before it returns. Its
// loop never returns: the test binary's exit ends it.
func start(t *testing.T, mode string, rawBlock bool, port, backend int) {
	t.Helper()
	if mode == "goroutine" {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		go serveGoroutines(ln, backend)
		return
	}
	if mode == "uring" {
		r, br, err := newRelayRing()
		if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
			t.Skipf("no io_uring with provided buffer rings here: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		lfd, err := listenFD(port, 0)
		if err != nil {
			t.Fatal(err)
		}
		go relayRing(r, br, lfd, backend)
		return
	}
	l, err := newLoop(port, backend, rawBlock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if rawBlock {
			runtime.LockOSThread()
		}
		if mode == "epoll" {
			l.relay()
		} else {
			l.coro()
		}
	}()
}

func session(dsn string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("client %d: connect: %w", i, err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT $1::int + 1", i).Scan(&n); err != nil || n != i+1 {
		return fmt.Errorf("client %d: extended query: %d, %v", i, n, err)
	}
	var total, rows int64
	r, err := conn.Query(ctx, "SELECT repeat('x', 100) || g FROM generate_series(1, 20000) g", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return err
	}
	for r.Next() {
		var s string
		if err := r.Scan(&s); err != nil {
			return err
		}
		total += int64(len(s))
		rows++
	}
	if err := r.Err(); err != nil || rows != 20000 {
		return fmt.Errorf("client %d: large result: %d rows, %v", i, rows, err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1/0"); err == nil || !strings.Contains(err.Error(), "22012") {
		return fmt.Errorf("client %d: division by zero: %v", i, err)
	}
	table := fmt.Sprintf("relay_copy_%d", i)
	if _, err := conn.Exec(ctx, "CREATE TEMP TABLE "+table+" (a int, b text)"); err != nil {
		return err
	}
	in := make([][]any, 5000)
	for k := range in {
		in[k] = []any{k, strings.Repeat("y", 50)}
	}
	copied, err := conn.CopyFrom(ctx, pgx.Identifier{table}, []string{"a", "b"}, pgx.CopyFromRows(in))
	if err != nil || copied != 5000 {
		return fmt.Errorf("client %d: copy in: %d, %v", i, copied, err)
	}
	var out strings.Builder
	tag, err := conn.PgConn().CopyTo(ctx, &out, "COPY "+table+" TO STDOUT")
	if err != nil || tag.RowsAffected() != 5000 {
		return fmt.Errorf("client %d: copy out: %v, %v", i, tag, err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 5000 {
		return fmt.Errorf("client %d: after copy: %d, %v", i, n, err)
	}
	return nil
}
