package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v5"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/config"
)

// clientOnly are PostgreSQL's client-only encodings: a character's second
// byte may be a backslash or a quote, so a reader in another encoding ends
// a string literal elsewhere.
var clientOnly = []string{"SJIS", "BIG5", "GBK", "UHC", "GB18030", "JOHAB"}

// The attack of issue #20: in a client-only encoding, the bytes of a valid
// UTF-8 character whose last byte pairs with the backslash after it.
// Read as UTF-8 it is one string literal; read by a warehouse lexing GBK
// with backslash_quote on, a subquery outside any fence.
const attackSQL = `SELECT '中\'' , (SELECT string_agg(tenant_id, chr(44)) FROM orders) AS b -- ' AS a`

// encConnect opens a raw connection to pgwarden as a fresh acme querier
// with client_encoding enc ("" for none).
func (r *running) encConnect(t *testing.T, enc string, params map[string]string) (*pgconn.PgConn, error) {
	t.Helper()
	token, err := r.app.mintSession(context.Background(), sessionRequest{Tenant: "acme", ExternalID: "a",
		Roles: map[string]string{demoWarehouse: "querier"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgconn.ParseConfig("postgres://someone@" + r.cfg.Proxy.Listen + "/" + demoWarehouse + "?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = token
	if enc != "" {
		cfg.RuntimeParams["client_encoding"] = enc
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { conn.Close(context.Background()) })
	}
	return conn, err
}

// superuser connects to the demo warehouse's database as a superuser.
func (r *running) superuser(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), r.demo.cluster.DSN("demo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// hostile gives the service role and the database every setting that
// would let the warehouse read pgwarden's text differently, and makes the
// service role's connections reconnect with them.
func (r *running) hostile(t *testing.T, scope string) {
	t.Helper()
	su := r.superuser(t)
	target := "ROLE " + r.svcRole(t)
	if scope == "database" {
		target = "DATABASE demo"
	}
	for _, s := range []string{"backslash_quote = on", "client_encoding = 'GBK'", "standard_conforming_strings = off"} {
		mustExec(t, su, "ALTER "+target+" SET "+s)
	}
	t.Cleanup(func() { su.Exec(context.Background(), "ALTER "+target+" RESET ALL") })
	mustExec(t, su, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '"+r.svcRole(t)+"'")
	// The precondition: the service role's own sessions lex with
	// backslash_quote on.
	svc, err := pgx.Connect(context.Background(), r.cfg.Warehouses[demoWarehouse].DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(context.Background())
	var bq string
	if err := svc.QueryRow(context.Background(), "SHOW backslash_quote").Scan(&bq); err != nil || bq != "on" {
		t.Fatalf("service role's backslash_quote = %q, %v; want on", bq, err)
	}
}

// The control: what pgwarden used to forward, lexed by a warehouse session
// in GBK with backslash_quote on, leaks every tenant's rows. Without this,
// the attack tests below could pass for a reason unrelated to the fix.
func attackWorksOnWarehouse(t *testing.T, r *running) {
	t.Helper()
	tree, err := pg_query.Parse(attackSQL)
	if err != nil {
		t.Fatal(err)
	}
	deparsed, err := pg_query.Deparse(tree)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgconn.ParseConfig(r.demo.cluster.DSN("demo"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["client_encoding"] = "GBK"
	cfg.RuntimeParams["backslash_quote"] = "on"
	conn, err := pgconn.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	res, err := conn.Exec(context.Background(), deparsed).ReadAll()
	if err != nil {
		t.Fatalf("control %q: %v", deparsed, err)
	}
	if !strings.Contains(fmt.Sprint(rowsOf(res)), "globex") {
		t.Fatalf("control: %q in GBK with backslash_quote on did not leak: %q", deparsed, rowsOf(res))
	}
}

func rowsOf(res []*pgconn.Result) [][]string {
	var out [][]string
	for _, r := range res {
		for _, row := range r.Rows {
			var s []string
			for _, v := range row {
				s = append(s, string(v))
			}
			out = append(out, s)
		}
	}
	return out
}

// noOtherTenant fails the test if anything in rows names another tenant.
func noOtherTenant(t *testing.T, what string, rows [][]string) {
	t.Helper()
	for _, row := range rows {
		for _, v := range row {
			if strings.Contains(v, "globex") || strings.Contains(v, "initech") {
				t.Fatalf("%s: another tenant's rows: %q", what, v)
			}
		}
	}
}

// Issue #20: the encoding attack, for every client-only encoding, with the
// service role's and then the database's settings as hostile as they get,
// in the simple and the extended protocol: no other tenant's row, whatever
// happens. Transaction and session pooling both.
func TestEncodingAttack(t *testing.T) {
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			r := startServeWith(t, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)), func(cfg *config.File) {
				w := cfg.Warehouses[demoWarehouse]
				w.Pool.Mode = mode
				cfg.Warehouses[demoWarehouse] = w
			})
			if mode == "transaction" {
				attackWorksOnWarehouse(t, r)
			}
			for _, scope := range []string{"role", "database"} {
				r.hostile(t, scope)
				for _, enc := range clientOnly {
					t.Run(scope+"/"+enc, func(t *testing.T) {
						conn, err := r.encConnect(t, enc, nil)
						if enc == "JOHAB" {
							// x/text has no JOHAB: refused as PostgreSQL refuses
							// an encoding it cannot convert.
							if sqlstate(err) != "0A000" {
								t.Fatalf("JOHAB: %v, want 0A000", err)
							}
							return
						}
						if err != nil {
							t.Fatal(err)
						}
						if got := conn.ParameterStatus("client_encoding"); got != enc {
							t.Errorf("client_encoding reported %q, want %q", got, enc)
						}
						ctx := context.Background()
						res, err := conn.Exec(ctx, attackSQL).ReadAll()
						t.Logf("simple: %q, %v", rowsOf(res), err)
						noOtherTenant(t, "simple", rowsOf(res))
						rr := conn.ExecParams(ctx, attackSQL, nil, nil, nil, nil).Read()
						t.Logf("extended: %q, %v", rowsOf([]*pgconn.Result{rr}), rr.Err)
						noOtherTenant(t, "extended", rowsOf([]*pgconn.Result{rr}))
						// The session still works and still sees only acme.
						res, err = conn.Exec(ctx, "SELECT string_agg(DISTINCT tenant_id, ',') FROM orders").ReadAll()
						if err != nil || fmt.Sprint(rowsOf(res)) != "[[acme]]" {
							t.Fatalf("after the attack: %q, %v", rowsOf(res), err)
						}
					})
				}
			}
		})
	}
}
