package proxy

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestSimpleQueryIsRewritten(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	cfg, err := pgx.ParseConfig(tp.url("tok-acme", "wh", ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n, sum int
	if err := conn.QueryRow(ctx, "SELECT count(*), sum(total) FROM orders").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != 3 || sum != 60 {
		t.Fatalf("acme sees %d orders totalling %d, want 3 and 60 (the rewritten SQL must run)", n, sum)
	}
	if got := conn.PgConn().ParameterStatus("is_superuser"); got != "off" {
		t.Errorf("is_superuser = %q", got)
	}
	if got := conn.PgConn().ParameterStatus("session_authorization"); got != "alice" {
		t.Errorf("session_authorization = %q", got)
	}
	if got := conn.PgConn().ParameterStatus("server_version"); got == "" {
		t.Errorf("server_version not reported")
	}
}

func TestMultiStatementSimpleQuery(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-globex")
	results, err := conn.Exec(ctx, "SELECT 1 AS a; SELECT order_id FROM orders ORDER BY order_id; SELECT 'x'").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, r := range results {
		var rows []string
		for _, row := range r.Rows {
			rows = append(rows, string(row[0]))
		}
		got = append(got, rows)
	}
	want := [][]string{{"1"}, {"4", "5"}, {"x"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("results (-want +got):\n%s", diff)
	}
}

func TestExtendedProtocolPreparedStatements(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg, err := pgx.ParseConfig(tp.url("tok-acme", "wh", ""))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = mode
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			for i, min := range []int{0, 15, 25, 100} {
				var n int
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE total > $1", min).Scan(&n); err != nil {
					t.Fatalf("query %d: %v", i, err)
				}
				if want := []int{3, 2, 1, 0}[i]; n != want {
					t.Fatalf("total > %d: %d rows, want %d", min, n, want)
				}
			}
			// A named statement prepared explicitly and executed twice.
			if _, err := conn.Prepare(ctx, "byid", "SELECT total FROM orders WHERE order_id = $1"); err != nil {
				t.Fatal(err)
			}
			var total int
			if err := conn.QueryRow(ctx, "byid", 2).Scan(&total); err != nil || total != 20 {
				t.Fatalf("byid(2) = %d, %v", total, err)
			}
			// Another tenant's row is filtered out by the rewrite.
			if err := conn.QueryRow(ctx, "byid", 4).Scan(&total); !errors.Is(err, pgx.ErrNoRows) {
				t.Fatalf("byid(4) = %d, %v; want no rows", total, err)
			}
		})
	}
}

func TestRefusedStatementSimple(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	_, err := conn.Exec(ctx, "SELECT * FROM internal_costs").ReadAll()
	pe := wantPgErr(t, err, "42501", "permission denied for table internal_costs")
	if pe.Hint != "ask for access" || pe.Severity != "ERROR" {
		t.Errorf("hint %q severity %q", pe.Hint, pe.Severity)
	}
	if conn.TxStatus() != 'I' {
		t.Errorf("tx status %c after refusal outside a transaction", conn.TxStatus())
	}
	// Inside a transaction block a refusal aborts it, as any error would.
	if _, err := conn.Exec(ctx, "BEGIN").ReadAll(); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "SELECT * FROM internal_costs").ReadAll()
	wantPgErr(t, err, "42501", "internal_costs")
	if conn.TxStatus() != 'E' {
		t.Errorf("tx status %c, want E", conn.TxStatus())
	}
	_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
	wantPgErr(t, err, "25P02", "current transaction is aborted")
	if _, err := conn.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
		t.Fatal(err)
	}
	res, err := conn.Exec(ctx, "SELECT 42").ReadAll()
	if err != nil || string(res[0].Rows[0][0]) != "42" {
		t.Fatalf("after rollback: %v %v", res, err)
	}
}

func TestRefusedStatementExtended(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, tp.url("tok-acme", "wh", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SELECT * FROM internal_costs WHERE x = $1", 1)
	wantPgErr(t, err, "42501", "internal_costs")
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE total > $1", 0).Scan(&n); err != nil || n != 3 {
		t.Fatalf("after refusal: %d %v", n, err)
	}
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	_, err := conn.Exec(ctx, "SELECT rewriter_panics_here").ReadAll()
	pe := wantPgErr(t, err, "XX000", "internal error")
	if pe.Detail == "" || pe.Message != "internal error" {
		t.Errorf("detail %q message %q", pe.Detail, pe.Message)
	}
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
}

// A refused statement in the middle of a pipeline fails at its place, the
// rest up to Sync is skipped, and the next pipeline works.
func TestPipelineRefusalRecovery(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	p := conn.StartPipeline(ctx)
	p.SendQueryParams("SELECT count(*) FROM orders", nil, nil, nil, nil)
	p.SendQueryParams("SELECT * FROM internal_costs", nil, nil, nil, nil)
	p.SendQueryParams("SELECT 3", nil, nil, nil, nil)
	p.SendPipelineSync()
	p.SendQueryParams("SELECT 4", nil, nil, nil, nil)
	p.SendPipelineSync()
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}

	r1 := mustResultReader(t, p)
	res := r1.Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "3" {
		t.Fatalf("first: %+v", res)
	}
	// The refusal comes at Parse time, in its place.
	_, err := p.GetResults()
	wantPgErr(t, err, "42501", "internal_costs")
	// The third statement was skipped: the next result is the Sync.
	next, err := p.GetResults()
	if _, ok := next.(*pgconn.PipelineSync); !ok {
		t.Fatalf("after the refusal got %T %v, want PipelineSync", next, err)
	}
	r4 := mustResultReader(t, p)
	res = r4.Read()
	if res.Err != nil || string(res.Rows[0][0]) != "4" {
		t.Fatalf("after recovery: %+v", res)
	}
	if next, err := p.GetResults(); err != nil {
		t.Fatal(err)
	} else if _, ok := next.(*pgconn.PipelineSync); !ok {
		t.Fatalf("got %T", next)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustResultReader(t *testing.T, p *pgconn.Pipeline) *pgconn.ResultReader {
	t.Helper()
	r, err := p.GetResults()
	if err != nil {
		t.Fatalf("GetResults: %v", err)
	}
	rr, ok := r.(*pgconn.ResultReader)
	if !ok {
		t.Fatalf("GetResults: %T, want *pgconn.ResultReader", r)
	}
	return rr
}
