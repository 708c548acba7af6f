package proxy

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// prepRewriter is fakeRewriter with prepared forms, as package rewrite
// gives templated statements: a single query's integers become int4
// parameters and its strings parameters of unknown type; one Probe per
// shape and tenant.
type prepRewriter struct {
	mu     sync.Mutex
	probes map[string]*rewrite.Probe
}

var constRE = regexp.MustCompile(`'[^']*'|\b[0-9]+\b`)

func (r *prepRewriter) Rewrite(ctx context.Context, sql string, id *policy.Identity) (*rewrite.Result, error) {
	res, err := fakeRewriter{}.Rewrite(ctx, sql, id)
	if err != nil || len(res.Statements) != 1 || res.Statements[0].Kind != rewrite.KindQuery {
		return res, err
	}
	pr := &rewrite.Prepared{}
	shape := constRE.ReplaceAllStringFunc(sql, func(c string) string {
		if c[0] == '\'' {
			pr.ParamOIDs = append(pr.ParamOIDs, 0)
			pr.Params = append(pr.Params, []byte(c[1:len(c)-1]))
		} else {
			pr.ParamOIDs = append(pr.ParamOIDs, 23)
			pr.Params = append(pr.Params, []byte(c))
		}
		return "$" + strconv.Itoa(len(pr.Params))
	})
	if len(pr.Params) == 0 {
		return res, nil
	}
	tmpl, _ := fakeRewriter{}.Rewrite(context.Background(), shape, id)
	pr.SQL = tmpl.SQL
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.probes == nil {
		r.probes = map[string]*rewrite.Probe{}
	}
	key := id.Tenant + "\x00" + shape
	if r.probes[key] == nil {
		r.probes[key] = &rewrite.Probe{}
	}
	if pr.Probe = r.probes[key]; pr.Probe.State() == rewrite.ProbeRejected {
		return res, nil
	}
	res.Prepared = pr
	return res, nil
}

func (r *prepRewriter) probe(t *testing.T, tenant, shape string) rewrite.ProbeState {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.probes[tenant+"\x00"+shape]
	if p == nil {
		t.Fatalf("no probe for %q", shape)
	}
	return p.State()
}

func startPrepPool(t *testing.T, mode pool.Mode) (*testProxy, *prepRewriter) {
	return startPrepPoolConfig(t, pool.Config{Mode: mode, Size: 1})
}

func startPrepPoolConfig(t *testing.T, pc pool.Config) (*testProxy, *prepRewriter) {
	rw := &prepRewriter{}
	tp := startPool(t, pc, func(_ *Config, d *Deps) {
		w := NewWarehouse("wh", d.Warehouses["wh"].DSN, rw)
		w.Pool = d.Warehouses["wh"].Pool
		d.Warehouses["wh"] = w
	})
	return tp, rw
}

// simpleRun sends one Query and returns the messages up to ReadyForQuery.
func simpleRun(t *testing.T, fe *pgproto3.Frontend, sql string) []string {
	t.Helper()
	fe.Send(&pgproto3.Query{String: sql})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	return readUntilReady(t, fe)
}

// TestSimpleQueriesRunPrepared: after its probe, a shape's Queries run as a
// prepared statement, and the client sees exactly what a Query gets.
func TestSimpleQueriesRunPrepared(t *testing.T) {
	for _, mode := range []pool.Mode{pool.Transaction, pool.Session} {
		t.Run(string(mode), func(t *testing.T) {
			tp, rw := startPrepPool(t, mode)
			_, fe := rawSession(t, tp, "tok-acme")
			const shape = "SELECT total FROM orders WHERE order_id = $1"
			wantSeq(t, simpleRun(t, fe, "SELECT total FROM orders WHERE order_id = 1"),
				"RowDescription", "DataRow(10)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
			if got := rw.probe(t, "acme", shape); got != rewrite.ProbeAccepted {
				t.Fatalf("probe state %d after the first statement", got)
			}
			before := testutil.ToFloat64(tp.srv.metrics.simplePrepared)
			wantSeq(t, simpleRun(t, fe, "SELECT total FROM orders WHERE order_id = 2"),
				"RowDescription", "DataRow(20)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
			// Another tenant's row: the tenant stays in the prepared text.
			wantSeq(t, simpleRun(t, fe, "SELECT total FROM orders WHERE order_id = 4"),
				"RowDescription", "CommandComplete(SELECT 0)", "ReadyForQuery(I)")
			// A Bind error (out of range for int4) ends the statement as a
			// Query's error would; the session goes on.
			wantSeq(t, simpleRun(t, fe, "SELECT total FROM orders WHERE order_id = 9999999999"),
				"Error(22003)", "ReadyForQuery(I)")
			if got := testutil.ToFloat64(tp.srv.metrics.simplePrepared) - before; got != 3 {
				t.Fatalf("%v statements ran prepared, want 3", got)
			}
			// In a transaction block: an execution error fails it.
			wantSeq(t, simpleRun(t, fe, "BEGIN"), "CommandComplete(BEGIN)", "ReadyForQuery(T)")
			wantSeq(t, simpleRun(t, fe, "SELECT total FROM orders WHERE order_id = 3"),
				"RowDescription", "DataRow(30)", "CommandComplete(SELECT 1)", "ReadyForQuery(T)")
			wantSeq(t, simpleRun(t, fe, "SELECT 1 / (total - 10) FROM orders WHERE order_id = 1"),
				"RowDescription", "Error(22012)", "ReadyForQuery(E)") // as PostgreSQL answers the Query
			wantSeq(t, simpleRun(t, fe, "SELECT total FROM orders WHERE order_id = 3"),
				"Error(25P02)", "ReadyForQuery(E)")
			wantSeq(t, simpleRun(t, fe, "ROLLBACK"), "CommandComplete(ROLLBACK)", "ReadyForQuery(I)")
			// The statement the warehouse prepared: the tenant's rewrite with
			// the constant as a parameter.
			got := strings.Join(simpleRun(t, fe, "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'pgw_%'"), " ")
			if !strings.Contains(got, "WHERE tenant_id = 'acme') orders WHERE order_id = $1") {
				t.Fatalf("prepared upstream: %s", got)
			}
		})
	}
}

// TestSimplePreparedProbeRejected: a prepared form the warehouse refuses is
// unseen by the client, and its shape runs as plain Queries from then on.
func TestSimplePreparedProbeRejected(t *testing.T) {
	tp, rw := startPrepPool(t, pool.Transaction)
	_, fe := rawSession(t, tp, "tok-acme")
	// format's variadic arguments are "any": a parameter there has no type.
	const shape = "SELECT format($1, order_id, $2) FROM orders WHERE order_id = $3"
	for _, id := range []string{"1", "2"} {
		wantSeq(t, simpleRun(t, fe, "SELECT format('%s-%s', order_id, 'n') FROM orders WHERE order_id = "+id),
			"RowDescription", "DataRow("+id+"-n)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
	}
	if got := rw.probe(t, "acme", shape); got != rewrite.ProbeRejected {
		t.Fatalf("probe state %d, want rejected", got)
	}
	if got := testutil.ToFloat64(tp.srv.metrics.simplePrepared); got != 0 {
		t.Fatalf("%v statements ran prepared", got)
	}
	if got := testutil.ToFloat64(tp.srv.metrics.probes.WithLabelValues("rejected")); got != 1 {
		t.Fatalf("%v rejected probes, want 1", got)
	}
}

// TestSimplePreparedNoProbeInTransaction: a shape is never probed inside a
// transaction block, where a refused Parse would fail the client's
// transaction; it is probed at its first statement outside one.
func TestSimplePreparedNoProbeInTransaction(t *testing.T) {
	tp, rw := startPrepPool(t, pool.Transaction)
	_, fe := rawSession(t, tp, "tok-acme")
	const shape = "SELECT format($1, order_id, $2) FROM orders WHERE order_id = $3"
	wantSeq(t, simpleRun(t, fe, "BEGIN"), "CommandComplete(BEGIN)", "ReadyForQuery(T)")
	wantSeq(t, simpleRun(t, fe, "SELECT format('%s-%s', order_id, 'n') FROM orders WHERE order_id = 1"),
		"RowDescription", "DataRow(1-n)", "CommandComplete(SELECT 1)", "ReadyForQuery(T)")
	if got := rw.probe(t, "acme", shape); got != rewrite.ProbeUnknown {
		t.Fatalf("probed in a transaction block (state %d)", got)
	}
	wantSeq(t, simpleRun(t, fe, "SELECT total FROM orders WHERE order_id = 1"),
		"RowDescription", "DataRow(10)", "CommandComplete(SELECT 1)", "ReadyForQuery(T)")
	wantSeq(t, simpleRun(t, fe, "COMMIT"), "CommandComplete(COMMIT)", "ReadyForQuery(I)")
	wantSeq(t, simpleRun(t, fe, "SELECT format('%s-%s', order_id, 'n') FROM orders WHERE order_id = 2"),
		"RowDescription", "DataRow(2-n)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
	if got := rw.probe(t, "acme", shape); got != rewrite.ProbeRejected {
		t.Fatalf("probe state %d after a statement outside a transaction block, want rejected", got)
	}
}

// TestSimplePreparedOff: prepare_simple_queries false sends Queries as they are.
func TestSimplePreparedOff(t *testing.T) {
	tp, rw := startPrepPoolConfig(t, pool.Config{Size: 1, PlainSimpleQueries: true})
	_, fe := rawSession(t, tp, "tok-acme")
	for _, id := range []string{"1", "2", "3"} {
		wantSeq(t, simpleRun(t, fe, "SELECT total FROM orders WHERE order_id = "+id),
			"RowDescription", "DataRow("+id+"0)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
	}
	if got := rw.probe(t, "acme", "SELECT total FROM orders WHERE order_id = $1"); got != rewrite.ProbeUnknown {
		t.Fatalf("probe state %d, want never probed", got)
	}
	if got := testutil.ToFloat64(tp.srv.metrics.simplePrepared); got != 0 {
		t.Fatalf("%v statements ran prepared", got)
	}
}

// TestPoolReparseAnsweredLocally: a driver without a statement cache
// parses the unnamed statement before every execution. Between
// transactions, once the text is prepared on the connection the client
// lands on, the proxy answers that Parse itself: the client must see
// PostgreSQL's messages in PostgreSQL's order, and a Parse inside a failed
// transaction still gets the warehouse's 25P02.
func TestPoolReparseAnsweredLocally(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 1}, nil)
	_, fe := rawSession(t, tp, "tok-acme")
	const q = "SELECT total FROM orders WHERE order_id = $1"
	run := func(id string) []string {
		fe.Send(&pgproto3.Parse{Query: q})
		fe.Send(&pgproto3.Bind{Parameters: [][]byte{[]byte(id)}})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		return readUntilReady(t, fe)
	}
	for _, id := range []string{"1", "2", "3"} {
		wantSeq(t, run(id), "ParseComplete", "BindComplete", "DataRow("+id+"0)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
	}
	wantSeq(t, simpleRun(t, fe, "BEGIN"), "CommandComplete(BEGIN)", "ReadyForQuery(T)")
	wantSeq(t, simpleRun(t, fe, "SELECT 1/0"), "Error(22012)", "ReadyForQuery(E)")
	wantSeq(t, run("1"), "Error(25P02)", "ReadyForQuery(E)")
	wantSeq(t, simpleRun(t, fe, "ROLLBACK"), "CommandComplete(ROLLBACK)", "ReadyForQuery(I)")
	wantSeq(t, run("2"), "ParseComplete", "BindComplete", "DataRow(20)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
}
