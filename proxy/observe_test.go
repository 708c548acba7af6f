package proxy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/internal/testutil"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/rewrite"
)

// syncBuffer is an audit log the proxy's goroutines write and the test reads.
type syncBuffer struct{ testutil.Buffer }

// records parses the records written so far.
func (s *syncBuffer) records(t *testing.T) []AuditRecord {
	t.Helper()
	var out []AuditRecord
	for _, line := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if line == "" {
			continue
		}
		var r AuditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func TestAuditAndMetrics(t *testing.T) {
	for _, includeSQL := range []bool{true, false} {
		t.Run(map[bool]string{true: "with sql", false: "without sql"}[includeSQL], func(t *testing.T) {
			var buf syncBuffer
			reg := prometheus.NewRegistry()
			tp := startProxy(t, func(_ *Config, d *Deps) {
				d.Audit = NewAuditLog(&buf, includeSQL)
				d.Metrics = reg
			})
			ctx := ctxT(t)
			conn, err := pgx.Connect(ctx, tp.url("tok-acme", "wh", ""))
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE total > $1", 15).Scan(&n); err != nil {
				t.Fatal(err)
			}
			conn.Exec(ctx, "SELECT * FROM internal_costs", pgx.QueryExecModeSimpleProtocol)
			conn.Exec(ctx, "SELECT 1/0", pgx.QueryExecModeSimpleProtocol)
			if _, err := conn.Exec(ctx, "SELECT order_id FROM orders", pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatal(err)
			}
			conn.Close(ctx)
			_, err = pgconn.Connect(ctx, tp.url("wrong", "wh", ""))
			wantPgErr(t, err, "28P01", "")

			got := buf.records(t)
			rw := "SELECT order_id FROM (SELECT * FROM orders WHERE tenant_id = 'acme') orders"
			want := []AuditRecord{
				{Session: "s-acme", Kind: "embed", Tenant: "acme", ExternalID: "ext-s-acme", Warehouse: "wh", Outcome: "ok", Event: "login"},
				{Session: "s-acme", Kind: "embed", Tenant: "acme", ExternalID: "ext-s-acme", Warehouse: "wh", Outcome: "ok", Rows: 1,
					SQL: "SELECT count(*) FROM orders WHERE total > $1", Rewritten: "SELECT count(*) FROM (SELECT * FROM orders WHERE tenant_id = 'acme') orders WHERE total > $1"},
				{Session: "s-acme", Kind: "embed", Tenant: "acme", ExternalID: "ext-s-acme", Warehouse: "wh", Outcome: "refused", SQLState: "42501",
					SQL: "SELECT * FROM internal_costs"},
				{Session: "s-acme", Kind: "embed", Tenant: "acme", ExternalID: "ext-s-acme", Warehouse: "wh", Outcome: "error", SQLState: "22012",
					SQL: "SELECT 1/0", Rewritten: "SELECT 1/0"},
				{Session: "s-acme", Kind: "embed", Tenant: "acme", ExternalID: "ext-s-acme", Warehouse: "wh", Outcome: "ok", Rows: 3,
					SQL: "SELECT order_id FROM orders", Rewritten: rw},
				{Warehouse: "wh", Outcome: "refused", SQLState: "28P01", Event: "login", Reason: "invalid session token"},
			}
			for i := range want {
				want[i].ClientAddr = "127.0.0.1"
				if !includeSQL {
					want[i].SQL, want[i].Rewritten = "", ""
				}
			}
			opts := cmpopts.IgnoreFields(AuditRecord{}, "Time", "DurationMS", "Fingerprint")
			if diff := cmp.Diff(want, got, opts); diff != "" {
				t.Errorf("audit records (-want +got):\n%s", diff)
			}
			for _, r := range got {
				if r.Outcome != "refused" && r.Event == "" && r.Fingerprint == "" {
					t.Errorf("record without fingerprint: %+v", r)
				}
			}

			for _, tc := range []struct {
				name, label, value string
				want               float64
			}{
				{"pgwarden_proxy_statements_total", "outcome", "ok", 2},
				{"pgwarden_proxy_statements_total", "outcome", "refused", 1},
				{"pgwarden_proxy_statements_total", "outcome", "error", 1},
				{"pgwarden_proxy_auth_failures_total", "reason", "bad_credentials", 1},
				{"pgwarden_proxy_connections_total", "", "", 2},
			} {
				if got := metricValue(t, reg, tc.name, tc.label, tc.value); got != tc.want {
					t.Errorf("%s{%s=%q} = %v, want %v", tc.name, tc.label, tc.value, got, tc.want)
				}
			}
			for i := 0; metricValue(t, reg, "pgwarden_proxy_connections", "", "") != 0; i++ {
				if i > 200 {
					t.Fatal("connections gauge does not return to 0")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got := metricValue(t, reg, "pgwarden_proxy_bytes_total", "direction", "to_client"); got < 100 {
				t.Errorf("bytes to client = %v", got)
			}
			if got := metricValue(t, reg, "pgwarden_proxy_statement_duration_seconds", "", ""); got != 3 {
				t.Errorf("duration observations = %v, want 3 (refusals do not run)", got)
			}
		})
	}
}

// metricValue reads one series as a scrape would: a counter's or gauge's
// value, or a histogram's sample count.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// A rewriter swapped on reload applies from the next statement on.
type upperRewriter struct{}

func (upperRewriter) Rewrite(_ context.Context, sql string, _ *policy.Identity) (*rewrite.Result, error) {
	return &rewrite.Result{SQL: "SELECT 'swapped'", Statements: []rewrite.Statement{{SQL: "SELECT 'swapped'"}}}, nil
}

func TestSetRewriterAndStatementTimeout(t *testing.T) {
	var wh *Warehouse
	tp := startProxy(t, func(c *Config, d *Deps) {
		c.StatementTimeout = 1500 * time.Millisecond
		wh = d.Warehouses["wh"]
	})
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, tp.url("tok-acme", "wh", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var st string
	if err := conn.QueryRow(ctx, "SHOW statement_timeout").Scan(&st); err != nil || st != "1500ms" {
		t.Fatalf("statement_timeout = %q, %v", st, err)
	}
	_, err = conn.Exec(ctx, "SELECT pg_sleep(5)")
	wantPgErr(t, err, "57014", "statement timeout")
	// The rewriter caps what a client may SET (tested end to end in
	// cmd/pgwarden); RESET goes back to the proxy's limit, the session's
	// startup value.
	if _, err := conn.Exec(ctx, "SET statement_timeout = 100"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "RESET statement_timeout"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SHOW statement_timeout").Scan(&st); err != nil || st != "1500ms" {
		t.Fatalf("after RESET statement_timeout = %q, %v", st, err)
	}

	wh.SetRewriter(upperRewriter{})
	var s string
	if err := conn.QueryRow(ctx, "SELECT 'original'", pgx.QueryExecModeSimpleProtocol).Scan(&s); err != nil || s != "swapped" {
		t.Fatalf("after SetRewriter got %q, %v", s, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, ""},
		{"bad listen", Config{Listen: "nope"}, "proxy.listen"},
		{"cert without key", Config{TLSCertFile: "c.pem"}, "must be set together"},
		{"tiny messages", Config{MaxMessageBytes: 10}, "proxy.max_message_bytes"},
		{"negative idle", Config{IdleTimeout: -time.Second}, "proxy.idle_timeout"},
		{"negative conns", Config{MaxClientConns: -1}, "proxy.max_client_conns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
	if d := (Config{}).WithDefaults(); d.Listen != DefaultListen || d.MaxMessageBytes != DefaultMaxMessageBytes {
		t.Fatalf("defaults: %+v", d)
	}
}

func TestNewRejectsBadDeps(t *testing.T) {
	good := func() Deps {
		return Deps{
			Logger:        zaptest.NewLogger(t),
			Authenticator: newFakeAuth(),
			Warehouses:    map[string]*Warehouse{"wh": NewWarehouse("wh", "postgres://u:p@127.0.0.1:1/db", fakeRewriter{})},
		}
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		mod  func(*Deps)
		want string
	}{
		{"no logger", Config{}, func(d *Deps) { d.Logger = nil }, "Deps.Logger"},
		{"no authenticator", Config{}, func(d *Deps) { d.Authenticator = nil }, "Deps.Authenticator"},
		{"no warehouses", Config{}, func(d *Deps) { d.Warehouses = nil }, "at least one warehouse"},
		{"name mismatch", Config{}, func(d *Deps) { d.Warehouses["other"] = d.Warehouses["wh"] }, `warehouse "other"`},
		{"no rewriter", Config{}, func(d *Deps) { d.Warehouses["wh"] = &Warehouse{Name: "wh", DSN: "postgres://x@y/z"} }, "no rewriter"},
		{"no dsn", Config{}, func(d *Deps) { d.Warehouses["wh"] = NewWarehouse("wh", "", fakeRewriter{}) }, "needs a DSN or an Upstream"},
		{"bad dsn hides secrets", Config{}, func(d *Deps) {
			d.Warehouses["wh"] = NewWarehouse("wh", "postgres://svc:s3cret@host:notaport/db", fakeRewriter{})
		}, `warehouse "wh": invalid dsn`},
		{"missing tls files", Config{TLSCertFile: "/nonexistent.crt", TLSKeyFile: "/nonexistent.key"}, nil, "proxy.tls_cert_file"},
		{"bad config", Config{MaxMessageBytes: 1}, nil, "proxy.max_message_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := good()
			if tc.mod != nil {
				tc.mod(&d)
			}
			_, err := New(tc.cfg, d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
	if _, err := New(Config{}, good()); err != nil {
		t.Fatalf("New with good deps: %v", err)
	}
}
