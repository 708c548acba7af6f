package proxy

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// psql (libpq) works through the proxy, including its startup parameters
// and a multi-statement -c.
func TestPsql(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not installed")
	}
	tp := startProxy(t, nil)
	cmd := exec.Command(psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-c", "SELECT count(*) FROM orders; SELECT current_setting('application_name')",
		"postgresql://alice@"+tp.addr+"/wh?sslmode=disable&application_name=psqltest")
	cmd.Env = append(cmd.Environ(), "PGPASSWORD=tok-globex", "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "2\npsqltest" {
		t.Fatalf("psql output %q, want 2 rows and psql's application_name, set upstream", got)
	}
	cmd = exec.Command(psql, "-X", "-c", "SELECT * FROM internal_costs", "postgresql://alice@"+tp.addr+"/wh?sslmode=disable")
	cmd.Env = append(cmd.Environ(), "PGPASSWORD=tok-globex")
	out, _ = cmd.CombinedOutput()
	if !strings.Contains(string(out), "permission denied for table internal_costs") {
		t.Fatalf("psql refusal output %q", out)
	}
	cmd = exec.Command(psql, "-X", "-c", "SELECT 1", "postgresql://alice@"+tp.addr+"/wh?sslmode=disable")
	cmd.Env = append(cmd.Environ(), "PGPASSWORD=wrong")
	out, _ = cmd.CombinedOutput()
	if !strings.Contains(string(out), "invalid session token") {
		t.Fatalf("psql bad password output %q", out)
	}
}

func TestTransactionsExtended(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, tp.url("tok-acme", "wh", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM orders WHERE total >= $1", 20).Scan(&n); err != nil || n != 2 {
		t.Fatalf("in tx: %d %v", n, err)
	}
	_, err = tx.Exec(ctx, "SELECT * FROM internal_costs WHERE x = $1", 1)
	wantPgErr(t, err, "42501", "internal_costs")
	// The transaction is now aborted, as it would be on PostgreSQL.
	err = tx.QueryRow(ctx, "SELECT $1::int", 1).Scan(&n)
	wantPgErr(t, err, "25P02", "current transaction is aborted")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// A batch (pipelined extended protocol) in one round trip.
	b := &pgx.Batch{}
	b.Queue("SELECT count(*) FROM orders")
	b.Queue("SELECT $1::text", "two")
	br := conn.SendBatch(ctx, b)
	var s string
	if err := br.QueryRow().Scan(&n); err != nil || n != 3 {
		t.Fatalf("batch 1: %d %v", n, err)
	}
	if err := br.QueryRow().Scan(&s); err != nil || s != "two" {
		t.Fatalf("batch 2: %q %v", s, err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
}
