package rewrite

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sameAsScan checks that, where lexConstants is sure, it finds what
// PostgreSQL's lexer finds, and reports whether it was sure.
func sameAsScan(t testing.TB, sql string) bool {
	t.Helper()
	n, ok, sure := lexConstants(sql)
	if !sure {
		return false
	}
	w, wok := scanNormalize(nil, sql)
	if ok != wok || n.text != w.text || string(n.kinds) != string(w.kinds) || !slices.Equal(n.consts, w.consts) {
		t.Errorf("lexConstants(%q)\n= %v %q %q %q\nscan path\n= %v %q %q %q", sql, ok, n.text, n.kinds, n.consts, wok, w.text, w.kinds, w.consts)
	}
	// templateHit finds the template under the key it builds in a
	// buffer: the key rewriteMiss stores it under.
	spans, sok, ssure := lexSpans(sql, nil)
	if sok != ok || !ssure {
		t.Errorf("lexSpans(%q) = %v %v, lexConstants %v true", sql, sok, ssure, ok)
	}
	if ok {
		const idKey = "5:ident|"
		if got, want := string(appendTemplateKey([]byte(idKey), sql, spans)), n.key(idKey); got != want {
			t.Errorf("template key of %q built in a buffer\n%q, want\n%q", sql, got, want)
		}
	}
	return true
}

// lexCases are the inputs at the edges of what lexConstants knows: sure says
// whether it must decide them itself, kinds what it must find then.
var lexCases = []struct {
	sql   string
	sure  bool
	kinds string
}{
	{"SELECT abalance FROM pgbench_accounts WHERE aid = 123;", true, "i"},
	{"SELECT a FROM t", true, ""},
	{"", true, ""},
	{"  \t\r\n", true, ""},
	{";;", true, ""},
	// Integers are ICONST up to 2^31-1 exactly as process_integer_literal
	// decides, leading zeros included; larger ones FCONST.
	{"SELECT 0, 7, 2147483647, 2147483648, 00000000000000000002147483647, 99999999999999999999999", true, "iiifif"},
	{"SELECT 4294967296, 4294967295, 0002147483648", true, "fff"},
	// Decimal and exponent forms.
	{"SELECT 1.5, .5, 1., 1e10, 1E+10, 1.5e-3, .5e3, 1.e5, 0.0", true, "fffffffff"},
	{"SELECT 1.5e", false, ""},
	{"SELECT 1e", false, ""},
	{"SELECT 1e+", false, ""},
	{"SELECT 1e-x", false, ""},
	{"SELECT 1.e", false, ""},
	{"SELECT 1..2", false, ""},
	{"SELECT 1.5.6", false, ""},
	{"SELECT a..b", false, ""},
	{"SELECT 1.x", false, ""},
	// A sign is an operator, never part of the constant.
	{"SELECT -5, +5, - 5, 3-5, 3+-5, a-1, 'x'||'y'", true, "iiiiiiiiss"},
	{"SELECT 1::int, x<=2, x<>3, x!=4, x>=5, y @> 6, z->>7, z#>>8", true, "iiiiiiii"},
	// A name followed by a number reads the number as its own token.
	{"SELECT t.5, \"x\".5, \"x\"5, t1.a1, _1", true, "ffi"},
	// Strings: doubled quotes, empty strings, operators around them.
	{"SELECT 'it''s', '', '''', 'a\"b', 'x'::text, ('y')", true, "ssssss"},
	{"SELECT 'a'\n'b'", false, ""},
	{"SELECT 'a' 'b'", false, ""},
	{"SELECT 'a' -- c\n'b'", false, ""},
	{"SELECT 'a'\n\n, 'b'", true, "ss"},
	{"SELECT 'a'-1", true, "si"},
	{"SELECT 'unterminated", false, ""},
	{"SELECT 'x''", false, ""},
	// Quoted names are not constants.
	{"SELECT \"a'b\", \"1\", \"\"\"\", \"a\"\"b\" FROM t WHERE c = 1", true, "i"},
	{"SELECT \"\"", false, ""},
	{"SELECT \"abc", false, ""},
	// String prefixes and what may start one.
	{"SELECT E'a'", false, ""},
	{"SELECT e'a'", false, ""},
	{"SELECT B'01', X'ff', N'x'", false, ""},
	{"SELECT U&'x'", false, ""},
	{"SELECT u&\"x\"", false, ""},
	{"SELECT abc'x'", false, ""},
	{"SELECT xu&'a'", true, "s"},
	{"SELECT e 'a'", true, "s"},
	{"SELECT 1'x'", true, "is"},
	// Line comments are whitespace, even inside an operator.
	{"-- q1\nSELECT 1 -- 2\n, '3' --\r, 4", true, "isi"},
	{"SELECT 1--2\n", true, "i"},
	{"SELECT 1 <--2\n", true, "i"},
	{"SELECT 1 --", true, "i"},
	{"SELECT 1 /* 2 */", false, ""},
	{"SELECT 1 --x/*\n, 2", true, "ii"},
	// Outside printable ASCII, backslashes, parameters and dollar quotes.
	{"SELECT 'é'", false, ""},
	{"SELECT 1 -- é", false, ""},
	{"SELECT 1\x00, 2", false, ""},
	{"SELECT 1\f, 2", false, ""},
	{"SELECT 1\v, 2", false, ""},
	{"SELECT '\\'", false, ""},
	{"SELECT $1, 2", false, ""},
	{"SELECT $$x$$", false, ""},
	{"SELECT a$b, 1", false, ""},
	{"SELECT a $b, 1", false, ""},
	{"SELECT $a$x$a$", false, ""},
	{"SELECT '$1', \"$2\", 3 -- $4", true, "si"},
	{"SELECT '$$', $$'$$", false, ""},
	// Numbers in other spellings, or with trailing junk.
	{"SELECT 1_000", false, ""},
	{"SELECT 0x1f", false, ""},
	{"SELECT 0o17", false, ""},
	{"SELECT 0b101", false, ""},
	{"SELECT 123abc", false, ""},
	{"SELECT 1_", false, ""},
	{"SELECT 1e5x", false, ""},
	// Operators PostgreSQL refuses as too long.
	{"SELECT 1 " + strings.Repeat("<", 64) + " 2", false, ""},
	{"SELECT 1 " + strings.Repeat("<", 8) + " 2", true, "ii"},
	{"SELECT {1}", false, ""},
	// Names past NAMEDATALEN are truncated with a notice, not refused.
	{"SELECT " + strings.Repeat("a", 100) + ", \"" + strings.Repeat("b", 100) + "\" FROM t WHERE x = 1", true, "i"},
	{"SELECT date'2024-01-01'", false, ""},
	{"SELECT date '2024-01-01', interval '1 day'", true, "ss"},
}

func TestLexConstants(t *testing.T) {
	for _, tt := range lexCases {
		t.Run(tt.sql, func(t *testing.T) {
			if sure := sameAsScan(t, tt.sql); sure != tt.sure {
				t.Fatalf("sure = %v, want %v", sure, tt.sure)
			}
			if n, _, sure := lexConstants(tt.sql); sure && string(n.kinds) != tt.kinds {
				t.Errorf("kinds %q, want %q", n.kinds, tt.kinds)
			}
		})
	}
}

// lexCorpus is every statement the package's tests and benchmarks use.
func lexCorpus(t testing.TB) map[string][]string {
	golden, err := filepath.Glob("../testdata/rewrite/*.txt")
	if err != nil || len(golden) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	out := map[string][]string{"tpch": tpchQueries(t)}
	for _, path := range golden {
		out["golden"] = append(out["golden"], readGoldenF(t, path)...)
	}
	bench, _ := filepath.Glob("../bench/testdata/*/*.sql")
	bench2, _ := filepath.Glob("../bench/testdata/*/queries/*.sql")
	for _, path := range append(bench, bench2...) {
		out["bench"] = append(out["bench"], readFile(t, path))
	}
	if len(out["bench"]) < 9 {
		t.Fatalf("only %d benchmark queries", len(out["bench"]))
	}
	out["demo"] = splitStatements(t, readFile(t, "../testdata/rewrite/differential/demo.sql"))
	return out
}

// TestLexConstantsCorpus runs every statement the package knows through
// both paths and counts how many the fast one decides.
func TestLexConstantsCorpus(t *testing.T) {
	corpus := lexCorpus(t)
	for _, name := range []string{"golden", "tpch", "bench", "demo"} {
		qs := corpus[name]
		sure := 0
		for _, q := range qs {
			if sameAsScan(t, q) {
				sure++
			}
		}
		t.Logf("%s: %d of %d decided without pg_query.Scan", name, sure, len(qs))
		// All but the statements with $n, dollar quotes or unterminated strings.
		min := map[string]int{"golden": 255, "tpch": 22, "bench": 10, "demo": 33}[name]
		if sure < min {
			t.Errorf("%s: only %d of %d decided without pg_query.Scan, want at least %d", name, sure, len(qs), min)
		}
	}
	if !sameAsScan(t, "SELECT abalance FROM pgbench_accounts WHERE aid = 123;") {
		t.Error("pgbench's select is not decided without pg_query.Scan")
	}
}

// FuzzNormalize: whenever lexConstants is sure, it agrees with PostgreSQL's
// lexer on the text, the kinds and the constants.
func FuzzNormalize(f *testing.F) {
	for _, tt := range lexCases {
		f.Add(tt.sql)
	}
	for _, qs := range lexCorpus(f) {
		for _, q := range qs {
			f.Add(q)
		}
	}
	f.Fuzz(func(t *testing.T, sql string) {
		sameAsScan(t, sql)
		// Bytes the fast path refuses outright become ones it reads, so
		// that mutations keep exploring what it decides.
		b := []byte(sql)
		for i, c := range b {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c >= 0x7f || c == '\\' {
				b[i] = lexAlphabet[int(c)%len(lexAlphabet)]
			}
		}
		sameAsScan(t, string(b))
	})
}

// lexAlphabet is the characters at lexConstants' edges.
const lexAlphabet = "'\"-.eE019 \n\r\t_xXbBnNuU&$/*+;:<>=a("

// TestLexConstantsRandom compares both paths on many short statements made
// of the fragments at lexConstants' edges, reproducibly.
func TestLexConstantsRandom(t *testing.T) {
	frags := []string{"'", "\"", "''", "\"\"", "1", "0", "9", ".", "..", "e", "E", "+", "-", "--", "/*", "*/",
		" ", "\n", "\r", "\t", "_", "x", "u", "U", "&", "$", "$1", "b", "n", "a1", "select ", "2147483647",
		"2147483648", "4294967296", "0x", "1_0", ":", "::", "<", "=", ";", "(", ")", ",", "e'", "'a'", "\"b\""}
	rng := rand.New(rand.NewPCG(1, 2))
	sure := 0
	const runs = 30000
	for range runs {
		var b strings.Builder
		for range 1 + rng.IntN(10) {
			b.WriteString(frags[rng.IntN(len(frags))])
		}
		if sameAsScan(t, b.String()) {
			sure++
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d of %d decided without pg_query.Scan", sure, runs)
	if sure < runs/10 {
		t.Errorf("only %d of %d random statements decided without pg_query.Scan", sure, runs)
	}
}
