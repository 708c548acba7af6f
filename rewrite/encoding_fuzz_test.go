package rewrite

import (
	"context"
	"encoding/json"
	"testing"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/pgenc"
	"github.com/pgwarden/pgwarden/policy"
)

// fuzzEncodings are the client encodings FuzzForwardedText reads its input
// in: UTF8 and the client-only ones, whose second bytes may be a quote or a
// backslash, and a single-byte one.
var fuzzEncodings = []string{"UTF8", "SJIS", "BIG5", "GBK", "UHC", "GB18030", "EUC_JP", "LATIN1"}

// FuzzForwardedText: what the proxy forwards is read by the warehouse as
// the rewriter read it. Client bytes are converted to UTF-8 as the proxy
// converts them (pgenc), rewritten, and the output lexed and parsed as the
// warehouse lexes it (PostgreSQL's own scanner, UTF8, standard strings):
// it is valid UTF-8, it lexes, and every string constant of the client's
// statement is a string constant of the output, contents unchanged, so no
// token boundary moved.
func FuzzForwardedText(f *testing.F) {
	for _, s := range []string{
		`SELECT '中\'' , (SELECT string_agg(tenant_id, chr(44)) FROM orders) AS b -- ' AS a`,
		"SELECT '\xd6\xd0\\'' , (SELECT count(*) FROM orders) AS b -- ' AS a",
		"SELECT '\x95\x5c' , (SELECT count(*) FROM orders) -- '",
		"SELECT E'\xa5\x5c\\'' , 1 -- '",
		"SELECT $$\x81\x30\x81\x30$$, U&'\\00e9', 'caf\xe9' FROM orders WHERE status = 'x\\'",
		"SELECT name FROM customers WHERE name LIKE E'%\\\\%' OR name = '日本'",
	} {
		for i := range fuzzEncodings {
			f.Add([]byte(s), uint8(i))
		}
	}
	encs := make([]*pgenc.Encoding, len(fuzzEncodings))
	for i, name := range fuzzEncodings {
		e, err := pgenc.Lookup(name)
		if err != nil {
			f.Fatal(err)
		}
		encs[i] = e
	}
	r := demoRewriter(f, Options{CacheBytes: -1})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	f.Fuzz(func(t *testing.T, client []byte, enc uint8) {
		e := encs[int(enc)%len(encs)]
		sql, perr := e.DecodeString(string(client))
		if perr != nil {
			return // refused with 22021/22P05 before any parsing
		}
		res, err := r.Rewrite(context.Background(), sql, id)
		if err != nil {
			return
		}
		out := res.SQL
		if !utf8.ValidString(out) {
			t.Fatalf("%s: output is not UTF-8: %q", e.Name, out)
		}
		if _, err := pg_query.Scan(out); err != nil {
			t.Fatalf("%s: output does not lex: %v\n%s", e.Name, err, out)
		}
		want, got := stringConsts(t, sql), stringConsts(t, out)
		for s, n := range want {
			if got[s] < n {
				t.Fatalf("%s: string constant %q read %d times from the client, %d from the output\ninput:  %q\noutput: %s", e.Name, s, n, got[s], sql, out)
			}
		}
	})
}

// stringConsts counts the string constants of sql as PostgreSQL's parser
// reads them.
func stringConsts(t *testing.T, sql string) map[string]int {
	t.Helper()
	js, err := pg_query.ParseToJSON(sql)
	if err != nil {
		t.Fatalf("does not parse: %v\n%s", err, sql)
	}
	var tree any
	if err := json.Unmarshal([]byte(js), &tree); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			if c, ok := n["A_Const"].(map[string]any); ok {
				if sv, ok := c["sval"].(map[string]any); ok {
					s, _ := sv["sval"].(string)
					out[s]++
				}
			}
			for _, v := range n {
				walk(v)
			}
		case []any:
			for _, v := range n {
				walk(v)
			}
		}
	}
	walk(tree)
	return out
}
