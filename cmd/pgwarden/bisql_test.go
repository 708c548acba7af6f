package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/config"
)

// The statements of issue 20's section 2, end to end: the demo served
// in-process, real clients over loopback, in both pool modes.

var poolModes = []string{"session", "transaction"}

func startServeMode(t *testing.T, mode string, size int) *running {
	t.Helper()
	return startServeWith(t, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)), func(cfg *config.File) {
		w := cfg.Warehouses[demoWarehouse]
		w.Pool.Mode = mode
		if size > 0 {
			w.Pool.Size = size
		}
		cfg.Warehouses[demoWarehouse] = w
	})
}

// acmeToken mints a querier session of tenant acme outside group pii.
func (r *running) acmeToken(t *testing.T) string {
	t.Helper()
	token, err := r.app.mintSession(context.Background(), sessionRequest{Tenant: "acme", ExternalID: "a",
		Roles: map[string]string{demoWarehouse: "querier"}})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func (r *running) url(token string) string {
	return "postgres://someone:" + token + "@" + r.cfg.Proxy.Listen + "/" + demoWarehouse + "?sslmode=disable"
}

// copyOut runs a COPY ... TO STDOUT in the simple protocol (pgx's CopyTo).
func copyOut(t *testing.T, conn *pgx.Conn, sql string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	_, err := conn.PgConn().CopyTo(context.Background(), &buf, sql)
	return buf.String(), err
}

func csvRecords(t *testing.T, data string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v\n%.300s", err, data)
	}
	return recs
}

func TestCopyToStdout(t *testing.T) {
	for _, mode := range poolModes {
		t.Run(mode, func(t *testing.T) {
			r := startServeMode(t, mode, 0)
			conn := r.acmeConn(t)
			customers := scalar[int64](t, conn, "SELECT count(*) FROM customers")
			orders := scalar[int64](t, conn, "SELECT count(*) FROM orders")
			if customers == 0 || orders == 0 {
				t.Fatalf("acme has %d customers and %d orders", customers, orders)
			}

			// A relation's COPY: SELECT *'s columns (phone denied, email masked).
			out, err := copyOut(t, conn, "COPY customers TO STDOUT WITH (FORMAT csv, HEADER)")
			if err != nil {
				t.Fatal(err)
			}
			recs := csvRecords(t, out)
			if got := strings.Join(recs[0], ","); got != "tenant_id,customer_id,name,email,country,created_at" {
				t.Errorf("header %q: want SELECT *'s columns without phone", got)
			}
			if int64(len(recs)-1) != customers {
				t.Errorf("COPY customers: %d rows, acme has %d", len(recs)-1, customers)
			}
			for _, rec := range recs[1:] {
				if rec[0] != "acme" || !strings.HasPrefix(rec[3], "***@") {
					t.Fatalf("row of another tenant or unmasked: %q", rec)
				}
			}

			// A query's COPY, text format.
			out, err = copyOut(t, conn, "COPY (SELECT tenant_id, order_id FROM orders) TO STDOUT")
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if int64(len(lines)) != orders {
				t.Errorf("COPY (SELECT ... FROM orders): %d rows, acme has %d", len(lines), orders)
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "acme\t") {
					t.Fatalf("row of another tenant: %q", l)
				}
			}

			// Binary, with a column list.
			out, err = copyOut(t, conn, "COPY orders (order_id, total) TO STDOUT (FORMAT binary)")
			if err != nil || !strings.HasPrefix(out, "PGCOPY\n\xff\r\n\x00") {
				t.Errorf("binary COPY: %v, %q", err, out[:min(len(out), 11)])
			}

			// Refusals leave the connection usable.
			for sql, code := range map[string]string{
				"COPY customers (customer_id, phone) TO STDOUT": "42501",
				"COPY orders FROM STDIN":                        "42501",
				"COPY orders TO '/tmp/pgwarden-orders'":         "42501",
				"COPY (SELECT 1) TO PROGRAM 'true'":             "42501",
				"COPY internal_costs TO STDOUT":                 "42501",
				"COPY orders TO STDOUT (ENCODING 'LATIN1')":     "0A000",
			} {
				if _, err := copyOut(t, conn, sql); sqlstate(err) != code {
					t.Errorf("%s: %v, want %s", sql, err, code)
				}
			}
			if n := scalar[int64](t, conn, "SELECT count(*) FROM orders"); n != orders {
				t.Errorf("after the refusals: %d orders", n)
			}

			// In a transaction block, between other statements.
			ctx := context.Background()
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if out, err = copyOut(t, conn, "COPY (SELECT count(*) FROM orders) TO STDOUT"); err != nil || out != fmt.Sprintf("%d\n", orders) {
				t.Errorf("COPY in a transaction: %q, %v", out, err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}

			copyExtended(t, r, orders)
			copyPsql(t, r, customers, orders)
		})
	}
}

// copyExtended runs a COPY through Parse, Bind, Describe, Execute and Sync,
// as drivers that use the extended protocol for everything send it.
func copyExtended(t *testing.T, r *running, orders int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, r.url(r.acmeToken(t)))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	fe := hc.Frontend
	fe.Send(&pgproto3.Parse{Query: "COPY (SELECT tenant_id, total FROM orders) TO STDOUT WITH (FORMAT csv)"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Describe{ObjectType: 'P'})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	hc.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	var kinds []string
	var rows int64
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", kinds, err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			rows++
			if !bytes.HasPrefix(m.Data, []byte("acme,")) {
				t.Fatalf("row of another tenant: %q", m.Data)
			}
			continue
		case *pgproto3.ErrorResponse:
			t.Fatalf("extended COPY: %s %s", m.Code, m.Message)
		case *pgproto3.ParameterStatus:
			continue
		}
		kinds = append(kinds, fmt.Sprintf("%T", msg))
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	want := "[*pgproto3.ParseComplete *pgproto3.BindComplete *pgproto3.NoData *pgproto3.CopyOutResponse *pgproto3.CopyDone *pgproto3.CommandComplete *pgproto3.ReadyForQuery]"
	if got := fmt.Sprint(kinds); got != want || rows != orders {
		t.Errorf("extended COPY: %d rows (want %d), messages %s, want %s", rows, orders, got, want)
	}
}

// copyPsql exports with psql's \copy, when psql is installed.
func copyPsql(t *testing.T, r *running, customers, orders int64) {
	t.Helper()
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Log("psql not installed: \\copy not tried")
		return
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "customers.csv")
	cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", r.url(r.acmeToken(t)),
		"-c", `\copy (SELECT tenant_id, order_id FROM orders) to stdout`,
		"-c", `\copy customers to '`+file+`' csv header`)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=20")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql \\copy: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, "acme\t") {
			t.Fatalf("psql \\copy: a row of another tenant: %q", l)
		}
	}
	if int64(len(lines)) != orders {
		t.Errorf("psql \\copy of orders: %d rows, want %d", len(lines), orders)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	recs := csvRecords(t, string(data))
	if int64(len(recs)-1) != customers || strings.Contains(strings.Join(recs[0], ","), "phone") {
		t.Errorf("psql \\copy customers: %d rows (want %d), header %q", len(recs)-1, customers, recs[0])
	}
	for _, rec := range recs[1:] {
		if rec[0] != "acme" || !strings.HasPrefix(rec[3], "***@") {
			t.Fatalf("psql \\copy customers: row of another tenant or unmasked: %q", rec)
		}
	}
}
