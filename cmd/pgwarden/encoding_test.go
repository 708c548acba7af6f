package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v5"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/pgenc"
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
	token, _, err := r.app.mintSession(context.Background(), sessionRequest{Tenant: "acme", ExternalID: "a",
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

// inEnc converts UTF-8 test text into a client encoding.
func inEnc(t *testing.T, enc, s string) string {
	t.Helper()
	e, perr := pgenc.Lookup(enc)
	if perr != nil {
		t.Fatal(perr)
	}
	out, perr := e.EncodeString(s)
	if perr != nil {
		t.Fatalf("%s: %q: %v", enc, s, perr)
	}
	return out
}

// fromEnc converts what a client in enc received into UTF-8.
func fromEnc(t *testing.T, enc string, b []byte) string {
	t.Helper()
	e, perr := pgenc.Lookup(enc)
	if perr != nil {
		t.Fatal(perr)
	}
	out, perr := e.Decode(b)
	if perr != nil {
		t.Fatalf("%s: %x: %v", enc, b, perr)
	}
	return string(out)
}

// Issue #20: text goes through pgwarden and back in the client's encoding:
// statement text, text parameters, result values, column names and error
// messages; binary values pass unchanged.
func TestEncodingRoundTrip(t *testing.T) {
	r := startServeWith(t, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)), nil)
	su := r.superuser(t)
	mustExec(t, su, `INSERT INTO customers (tenant_id, customer_id, name, email, country, created_at) VALUES
		('acme', 9001, 'Zoë Müller', 'z@acme.example', 'DE', now()),
		('acme', 9002, '€ “Zoë” Œuvre', 'e@acme.example', 'FR', now()),
		('acme', 9003, '日本語のテキスト・カナ', 'j@acme.example', 'JP', now())`)
	ctx := context.Background()
	for _, tc := range []struct {
		enc, name, alias string
		id               int
		raw              string // the name's bytes in enc, spelled out
	}{
		{"LATIN1", "Zoë Müller", "prénom", 9001, "Zo\xeb M\xfcller"},
		{"WIN1252", "€ “Zoë” Œuvre", "prénom€", 9002, "\x80 \x93Zo\xeb\x94 \x8cuvre"},
		{"SJIS", "日本語のテキスト・カナ", "名前", 9003, "\x93\xfa\x96\x7b\x8c\xea\x82\xcc\x83\x65\x83\x4c\x83\x58\x83\x67\x81\x45\x83\x4a\x83\x69"},
		{"EUC_JP", "日本語のテキスト・カナ", "名前", 9003, "\xc6\xfc\xcb\xdc\xb8\xec\xa4\xce\xa5\xc6\xa5\xad\xa5\xb9\xa5\xc8\xa1\xa6\xa5\xab\xa5\xca"},
	} {
		t.Run(tc.enc, func(t *testing.T) {
			if got := inEnc(t, tc.enc, tc.name); got != tc.raw {
				t.Fatalf("test data: %q in %s is %x, want %x", tc.name, tc.enc, got, tc.raw)
			}
			conn, err := r.encConnect(t, tc.enc, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Simple protocol: the literal and the alias in the client's encoding.
			sql := inEnc(t, tc.enc, fmt.Sprintf(`SELECT name AS "%s", length(name), customer_id FROM customers WHERE name = '%s'`, tc.alias, tc.name))
			res, err := conn.Exec(ctx, sql).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			rows := rowsOf(res)
			if len(rows) != 1 || rows[0][0] != tc.raw || rows[0][1] != fmt.Sprint(len([]rune(tc.name))) || rows[0][2] != fmt.Sprint(tc.id) {
				t.Fatalf("simple: rows %q, want [[%q %d %d]]", rows, tc.raw, len([]rune(tc.name)), tc.id)
			}
			if got := fromEnc(t, tc.enc, []byte(res[0].FieldDescriptions[0].Name)); got != tc.alias {
				t.Errorf("simple: column %q, want %q", got, tc.alias)
			}
			if got := string(res[0].CommandTag.String()); got != "SELECT 1" {
				t.Errorf("tag %q", got)
			}
			// Extended protocol: the name as a text parameter, the id in binary.
			rr := conn.ExecParams(ctx, inEnc(t, tc.enc, fmt.Sprintf(`SELECT name AS "%s", customer_id FROM customers WHERE name = $1`, tc.alias)),
				[][]byte{[]byte(tc.raw)}, nil, []int16{0}, []int16{0, 1}).Read()
			if rr.Err != nil {
				t.Fatal(rr.Err)
			}
			if len(rr.Rows) != 1 || string(rr.Rows[0][0]) != tc.raw || !bytes.Equal(rr.Rows[0][1], []byte{0, 0, byte(tc.id >> 8), byte(tc.id)}) {
				t.Fatalf("extended: rows %q", rowsOf([]*pgconn.Result{rr}))
			}
			if got := fromEnc(t, tc.enc, []byte(rr.FieldDescriptions[0].Name)); got != tc.alias {
				t.Errorf("extended: column %q, want %q", got, tc.alias)
			}
			// An error message that quotes the client's text.
			_, err = conn.Exec(ctx, inEnc(t, tc.enc, fmt.Sprintf(`SELECT '%s'::int`, tc.name))).ReadAll()
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "22P02" || pe.Message != inEnc(t, tc.enc, fmt.Sprintf(`invalid input syntax for type integer: "%s"`, tc.name)) {
				t.Fatalf("error: %v", err)
			}
		})
	}

	// psql, a real libpq client, in each encoding: it sends the literal in
	// its encoding and prints what it receives as received.
	t.Run("psql", func(t *testing.T) {
		psqlPath, err := exec.LookPath("psql")
		if err != nil {
			t.Skip("psql not installed")
		}
		token, _, err := r.app.mintSession(ctx, sessionRequest{Tenant: "acme", ExternalID: "a", Roles: map[string]string{demoWarehouse: "querier"}})
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ := strings.Cut(r.cfg.Proxy.Listen, ":")
		for _, tc := range []struct{ enc, name string }{
			{"LATIN1", "Zoë Müller"}, {"WIN1252", "€ “Zoë” Œuvre"}, {"SJIS", "日本語のテキスト・カナ"}, {"EUC_JP", "日本語のテキスト・カナ"},
		} {
			sql := inEnc(t, tc.enc, fmt.Sprintf(`SELECT name || '|' || length(name) FROM customers WHERE name = '%s'`, tc.name))
			cmd := exec.CommandContext(ctx, psqlPath, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
				"-d", fmt.Sprintf("host=%s port=%s dbname=%s user=someone sslmode=disable", host, port, demoWarehouse),
				"-c", "SHOW client_encoding", "-c", sql, "-c", inEnc(t, tc.enc, fmt.Sprintf(`SELECT '%s'::int`, tc.name)))
			cmd.Env = append(os.Environ(), "PGPASSWORD="+token, "PGCLIENTENCODING="+tc.enc)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Run() // the last command fails
			want := tc.enc + "\n" + inEnc(t, tc.enc, fmt.Sprintf("%s|%d", tc.name, len([]rune(tc.name)))) + "\n"
			if stdout.String() != want {
				t.Errorf("psql in %s: %q (stderr %q), want %q", tc.enc, stdout.String(), stderr.String(), want)
			}
			if msg := inEnc(t, tc.enc, fmt.Sprintf(`invalid input syntax for type integer: "%s"`, tc.name)); !strings.Contains(stderr.String(), msg) {
				t.Errorf("psql in %s: stderr %q, want it to contain %q", tc.enc, stderr.String(), msg)
			}
		}
	})

	// 22P05 on the way out, 22021 and 22P05 on the way in, in both
	// protocols and inside a transaction block: the session goes on.
	t.Run("errors", func(t *testing.T) {
		stillWorks := func(t *testing.T, conn *pgconn.PgConn) {
			t.Helper()
			res, err := conn.Exec(ctx, "SELECT count(*) FROM customers WHERE customer_id > 9000").ReadAll()
			if err != nil || fmt.Sprint(rowsOf(res)) != "[[3]]" {
				t.Fatalf("session after the error: %q, %v", rowsOf(res), err)
			}
		}
		wantErr := func(t *testing.T, err error, code, msg string) {
			t.Helper()
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != code || pe.Message != msg {
				t.Fatalf("got %v, want %s %s", err, code, msg)
			}
		}
		latin1, err := r.encConnect(t, "LATIN1", nil)
		if err != nil {
			t.Fatal(err)
		}
		const noLatin1 = `character with byte sequence 0xe6 0x97 0xa5 in encoding "UTF8" has no equivalent in encoding "LATIN1"`
		_, err = latin1.Exec(ctx, "SELECT customer_id, name FROM customers WHERE customer_id IN (9001, 9003) ORDER BY customer_id").ReadAll()
		wantErr(t, err, "22P05", noLatin1)
		stillWorks(t, latin1)
		rr := latin1.ExecParams(ctx, "SELECT name FROM customers WHERE customer_id = 9003", nil, nil, nil, nil).Read()
		wantErr(t, rr.Err, "22P05", noLatin1)
		stillWorks(t, latin1)
		// In a transaction block the error fails the transaction, as on PostgreSQL.
		_, err = latin1.Exec(ctx, "BEGIN; SELECT name FROM customers WHERE customer_id = 9003").ReadAll()
		wantErr(t, err, "22P05", noLatin1)
		_, err = latin1.Exec(ctx, "SELECT 1").ReadAll()
		if sqlstate(err) != "25P02" {
			t.Fatalf("after 22P05 in a transaction block: %v, want 25P02", err)
		}
		if _, err := latin1.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
			t.Fatal(err)
		}
		stillWorks(t, latin1)

		sjis, err := r.encConnect(t, "SJIS", nil)
		if err != nil {
			t.Fatal(err)
		}
		const badSJIS = `invalid byte sequence for encoding "SJIS": 0x82 0x20`
		_, err = sjis.Exec(ctx, "SELECT '\x82 '").ReadAll()
		wantErr(t, err, "22021", badSJIS)
		stillWorks(t, sjis)
		rr = sjis.ExecParams(ctx, "SELECT '\x82 '", nil, nil, nil, nil).Read()
		wantErr(t, rr.Err, "22021", badSJIS)
		stillWorks(t, sjis)
		rr = sjis.ExecParams(ctx, "SELECT $1::text", [][]byte{[]byte("\x82 ")}, []uint32{25}, nil, nil).Read()
		wantErr(t, rr.Err, "22021", badSJIS)
		stillWorks(t, sjis)
		_, err = sjis.Exec(ctx, "SELECT '\x85\x40'").ReadAll()
		wantErr(t, err, "22P05", `character with byte sequence 0x85 0x40 in encoding "SJIS" has no equivalent in encoding "UTF8"`)
		stillWorks(t, sjis)

		// A UTF8 client's invalid UTF-8: PostgreSQL's 22021, not "statement is too complex".
		utf, err := r.encConnect(t, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = utf.Exec(ctx, "SELECT '\xff'").ReadAll()
		wantErr(t, err, "22021", `invalid byte sequence for encoding "UTF8": 0xff`)
		stillWorks(t, utf)
		rr = utf.ExecParams(ctx, "SELECT 'a\xe4\xb8'", nil, nil, nil, nil).Read()
		wantErr(t, rr.Err, "22021", `invalid byte sequence for encoding "UTF8": 0xe4 0xb8 0x27`) // as PostgreSQL: the lead byte's length
		stillWorks(t, utf)
	})

	// SET client_encoding is the session's, in pgwarden; the warehouse
	// connection stays UTF8.
	t.Run("set", func(t *testing.T) {
		conn, err := r.encConnect(t, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := conn.ParameterStatus("client_encoding"); got != "UTF8" {
			t.Fatalf("client_encoding %q", got)
		}
		one := func(sql string) string {
			t.Helper()
			res, err := conn.Exec(ctx, sql).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			return fmt.Sprint(rowsOf(res))
		}
		one("SET client_encoding TO 'latin1'")
		if got := conn.ParameterStatus("client_encoding"); got != "LATIN1" {
			t.Errorf("after SET: client_encoding %q", got)
		}
		if got := one("SHOW client_encoding"); got != "[[LATIN1]]" {
			t.Errorf("SHOW client_encoding = %s", got)
		}
		if got := one("SELECT current_setting('client_encoding')"); got != "[[UTF8]]" {
			t.Errorf("the warehouse's client_encoding = %s", got)
		}
		if got := one("SELECT name FROM customers WHERE customer_id = 9001"); got != "[[Zo\xeb M\xfcller]]" {
			t.Errorf("in LATIN1: %q", got)
		}
		_, err = conn.Exec(ctx, "SET client_encoding = 'FOO'").ReadAll()
		if sqlstate(err) != "22023" || !strings.Contains(err.Error(), `invalid value for parameter "client_encoding": "FOO"`) {
			t.Errorf("SET client_encoding = 'FOO': %v", err)
		}
		_, err = conn.Exec(ctx, "SET NAMES 'JOHAB'").ReadAll()
		if sqlstate(err) != "0A000" || !strings.Contains(err.Error(), "conversion between JOHAB and UTF8 is not supported") {
			t.Errorf("SET NAMES 'JOHAB': %v", err)
		}
		// The prepared statement too, in the extended protocol.
		if rr := conn.ExecParams(ctx, "SET client_encoding TO 'EUC_JP'", nil, nil, nil, nil).Read(); rr.Err != nil {
			t.Fatal(rr.Err)
		}
		if got := conn.ParameterStatus("client_encoding"); got != "EUC_JP" {
			t.Errorf("after SET by Parse: client_encoding %q", got)
		}
		if got := one("SELECT name FROM customers WHERE customer_id = 9003"); got != "[[\xc6\xfc\xcb\xdc\xb8\xec\xa4\xce\xa5\xc6\xa5\xad\xa5\xb9\xa5\xc8\xa1\xa6\xa5\xab\xa5\xca]]" {
			t.Errorf("in EUC_JP: %q", got)
		}
		one("RESET client_encoding")
		if got := conn.ParameterStatus("client_encoding"); got != "UTF8" {
			t.Errorf("after RESET: client_encoding %q", got)
		}
		// A rolled-back SET is undone, as on PostgreSQL: by ROLLBACK, and by
		// an error in the implicit transaction of a multi-statement Query.
		for _, sqls := range [][]string{
			{"BEGIN; SET client_encoding TO 'LATIN1'; ROLLBACK"},
			{"BEGIN; SET client_encoding TO 'LATIN1'; SELECT 1/0", "COMMIT"},
			{"SET client_encoding TO 'LATIN1'; SELECT 1/0"},
		} {
			for _, sql := range sqls {
				conn.Exec(ctx, sql).ReadAll()
			}
			sql := strings.Join(sqls, " / ")
			if got := conn.ParameterStatus("client_encoding"); got != "UTF8" {
				t.Errorf("after %s: client_encoding %q", sql, got)
			}
			if got := one("SHOW client_encoding"); got != "[[UTF8]]" {
				t.Errorf("after %s: SHOW client_encoding = %s", sql, got)
			}
		}
		one("BEGIN; SET client_encoding TO 'LATIN1'; COMMIT")
		if got := one("SHOW client_encoding"); got != "[[LATIN1]]" {
			t.Errorf("after a committed SET: SHOW client_encoding = %s", got)
		}
		one("RESET client_encoding")
		if got := one("SELECT name FROM customers WHERE customer_id = 9003"); got != "[[日本語のテキスト・カナ]]" {
			t.Errorf("in UTF8: %q", got)
		}
		_, err = conn.Exec(ctx, "SELECT set_config('client_encoding', 'GBK', false)").ReadAll()
		if sqlstate(err) != "42501" {
			t.Errorf("set_config('client_encoding'): %v", err)
		}
	})

	// ROLLBACK TO SAVEPOINT undoes a SET client_encoding made after the
	// savepoint, and only that, as on PostgreSQL: each sequence runs on
	// the warehouse directly and through pgwarden, and the client sees the
	// same client_encoding (ParameterStatus) and SHOW after every message.
	// "P:" runs a message through the extended protocol.
	t.Run("savepoint", func(t *testing.T) {
		for _, seq := range [][]string{
			{"BEGIN", "SAVEPOINT s", "SET client_encoding TO 'LATIN1'", "ROLLBACK TO SAVEPOINT s", "SHOW client_encoding", "COMMIT", "SHOW client_encoding"},
			{"BEGIN; SET client_encoding TO 'LATIN1'; SAVEPOINT s; SET client_encoding TO 'EUC_JP'; ROLLBACK TO s", "SHOW client_encoding", "COMMIT", "SHOW client_encoding"},
			{"BEGIN", "SAVEPOINT a", "SAVEPOINT b", "SET client_encoding TO 'LATIN1'", "RELEASE b", "SHOW client_encoding", "ROLLBACK TO a", "SHOW client_encoding", "COMMIT"},
			{"BEGIN", "SAVEPOINT s", "SET client_encoding TO 'WIN1252'", "SELECT 1/0", "ROLLBACK TO SAVEPOINT s", "SHOW client_encoding", "COMMIT"},
			{"BEGIN", "P:SAVEPOINT s", "P:SET client_encoding TO 'LATIN1'", "P:ROLLBACK TO SAVEPOINT s", "SHOW client_encoding", "COMMIT"},
			{"BEGIN; SAVEPOINT s; SET client_encoding TO 'LATIN1'; ROLLBACK TO SAVEPOINT s; SET client_encoding TO 'SJIS'", "SHOW client_encoding", "ROLLBACK", "SHOW client_encoding"},
			{"BEGIN", "SAVEPOINT s", "SET client_encoding TO 'LATIN1'", "SAVEPOINT s", "SET client_encoding TO 'EUC_JP'", "ROLLBACK TO s", "SHOW client_encoding",
				"RELEASE s", "SHOW client_encoding", "ROLLBACK TO s", "SHOW client_encoding", "COMMIT"},
			{"BEGIN", "SET client_encoding TO 'LATIN1'", "SAVEPOINT s", "RELEASE s", "COMMIT", "SHOW client_encoding", "RESET client_encoding"},
		} {
			name := strings.Join(seq, " / ")
			direct, err := pgconn.Connect(ctx, r.demo.cluster.DSN("demo"))
			if err != nil {
				t.Fatal(err)
			}
			proxied, err := r.encConnect(t, "", nil)
			if err != nil {
				direct.Close(ctx)
				t.Fatal(err)
			}
			run := func(conn *pgconn.PgConn, msg string) (string, string) {
				var rows [][]string
				var err error
				if sql, ok := strings.CutPrefix(msg, "P:"); ok {
					rr := conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
					rows, err = rowsOf([]*pgconn.Result{rr}), rr.Err
				} else {
					var res []*pgconn.Result
					res, err = conn.Exec(ctx, msg).ReadAll()
					rows = rowsOf(res)
				}
				return fmt.Sprintf("%v %s", rows, sqlstate(err)), conn.ParameterStatus("client_encoding")
			}
			for _, msg := range seq {
				wantOut, wantEnc := run(direct, msg)
				gotOut, gotEnc := run(proxied, msg)
				if gotOut != wantOut || gotEnc != wantEnc {
					t.Errorf("%s: after %q: pgwarden answered %s with client_encoding %s, PostgreSQL %s with %s",
						name, msg, gotOut, gotEnc, wantOut, wantEnc)
				}
			}
			direct.Close(ctx)
			proxied.Close(ctx)
		}
	})
}

// Issue #19: startup settings the warehouse would refuse are refused at
// login with PostgreSQL's FATAL 22023, in both pool modes, and SET of them
// later is an ERROR that leaves the session usable.
func TestStartupSettingsValidated(t *testing.T) {
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			r := startServeWith(t, zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)), func(cfg *config.File) {
				w := cfg.Warehouses[demoWarehouse]
				w.Pool.Mode = mode
				cfg.Warehouses[demoWarehouse] = w
			})
			for _, tc := range []struct {
				params    map[string]string
				code, msg string
			}{
				{map[string]string{"TimeZone": "Mars/Olympus"}, "22023", `invalid value for parameter "TimeZone": "Mars/Olympus"`},
				{map[string]string{"DateStyle": "bogus"}, "22023", `invalid value for parameter "DateStyle": "bogus"`},
				{map[string]string{"IntervalStyle": "nope"}, "22023", `invalid value for parameter "IntervalStyle": "nope"`},
				{map[string]string{"extra_float_digits": "abc"}, "22023", `invalid value for parameter "extra_float_digits": "abc"`},
				{map[string]string{"client_encoding": "FOO"}, "22023", `invalid value for parameter "client_encoding": "FOO"`},
				{map[string]string{"client_encoding": "EUC_TW"}, "0A000", `conversion between EUC_TW and UTF8 is not supported`},
				{map[string]string{"TimeZone": "Europe/Paris", "DateStyle": "german,dmy"}, "", ""},
			} {
				t.Run(fmt.Sprint(tc.params), func(t *testing.T) {
					conn, err := r.encConnect(t, "", tc.params)
					if tc.code != "" {
						var pe *pgconn.PgError
						if !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != tc.code || pe.Message != tc.msg {
							t.Fatalf("got %v, want FATAL %s %s", err, tc.code, tc.msg)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					// Reported as the warehouse spells it, as PostgreSQL does.
					if got := conn.ParameterStatus("DateStyle"); got != "German, DMY" {
						t.Errorf("ParameterStatus DateStyle = %q", got)
					}
					res, err := conn.Exec(context.Background(), "SHOW TimeZone; SHOW DateStyle").ReadAll()
					if err != nil || fmt.Sprint(rowsOf(res)) != "[[Europe/Paris] [German, DMY]]" {
						t.Fatalf("settings: %q, %v", rowsOf(res), err)
					}
					_, err = conn.Exec(context.Background(), "SET TimeZone = 'Mars/Olympus'").ReadAll()
					var pe *pgconn.PgError
					if !errors.As(err, &pe) || pe.Code != "22023" || pe.Message != `invalid value for parameter "TimeZone": "Mars/Olympus"` {
						t.Fatalf("SET TimeZone: %v", err)
					}
					res, err = conn.Exec(context.Background(), "SHOW TimeZone").ReadAll()
					if err != nil || fmt.Sprint(rowsOf(res)) != "[[Europe/Paris]]" {
						t.Fatalf("after a refused SET: %q, %v", rowsOf(res), err)
					}
				})
			}
		})
	}
}
