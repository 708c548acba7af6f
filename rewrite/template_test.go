package rewrite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		sql    string
		ok     bool
		text   string
		kinds  string
		consts []string
	}{
		{sql: "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;", ok: true,
			text: "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", kinds: "i", consts: []string{"12345"}},
		// PostgreSQL's lexer decides what one constant is: escapes, dollar
		// quotes, continued strings, exponents, overflowing integers.
		{sql: "SELECT E'a\\'b', $$x'y$$, 'a'\n'b', 1e5, .5, 99999999999", ok: true,
			text: "SELECT $1, $2, $3, $4, $5, $6", kinds: "sssfff",
			consts: []string{`E'a\'b'`, "$$x'y$$", "'a'\n'b'", "1e5", ".5", "99999999999"}},
		// Identifiers, comments and the sign stay.
		{sql: "SELECT t1.\"5\" -- 7\nFROM t1 WHERE x = -5 /* 'no' */", ok: true,
			text: "SELECT t1.\"5\" -- 7\nFROM t1 WHERE x = -$1 /* 'no' */", kinds: "i", consts: []string{"5"}},
		{sql: "SELECT 'x'::numeric(10,2)", ok: true, text: "SELECT $1::numeric($2,$3)", kinds: "sii", consts: []string{"'x'", "10", "2"}},
		// Nothing to share, or parameters of the client's own.
		{sql: "SELECT a FROM t", ok: false},
		{sql: "SELECT a FROM t WHERE b = $1 AND c = 5", ok: false},
		// Does not lex: the full rewrite reports it.
		{sql: "SELECT 'unterminated", ok: false},
	}
	for _, tt := range tests {
		n, ok := normalize(nil, tt.sql)
		if ok != tt.ok {
			t.Errorf("normalize(%q) ok = %v, want %v", tt.sql, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if n.text != tt.text || string(n.kinds) != tt.kinds || !cmp.Equal(n.consts, tt.consts) {
			t.Errorf("normalize(%q) = %q %q %q, want %q %q %q", tt.sql, n.text, n.kinds, n.consts, tt.text, tt.kinds, tt.consts)
		}
	}
}

// pgbench's select, as the simple protocol sends it: the second statement of
// the shape comes from the template, with the pushdown inside the fence.
func TestTemplateServesSimpleProtocol(t *testing.T) {
	r := demoRewriter(t, Options{Fingerprints: true})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	first, err := r.Rewrite(context.Background(), "SELECT total FROM orders WHERE order_id = 17", id)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := normalize(nil, "SELECT total FROM orders WHERE order_id = 17")
	tm, ok := r.cache.getTemplate(n.key(identityKey(r.pol.Version(), id, r.personal)))
	if !ok || !tm.ok {
		t.Fatalf("no usable template after the first statement (found %v)", ok)
	}
	got, err := r.Rewrite(context.Background(), "SELECT total FROM orders WHERE order_id = 42", id)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(first.SQL, "17", "42")
	if got.SQL != want {
		t.Errorf("from the template:\n%s\nwant\n%s", got.SQL, want)
	}
	if strings.Count(got.SQL, "order_id = 42") != 2 {
		t.Errorf("the constant is not pushed into the fence: %s", got.SQL)
	}
	if got.Fingerprint == "" || got.Fingerprint != first.Fingerprint {
		t.Errorf("fingerprint %q, want the shape's %q", got.Fingerprint, first.Fingerprint)
	}
	// Another tenant gets its own template, never acme's.
	other := &policy.Identity{Kind: policy.KindEmbed, Tenant: "globex", Role: policy.RoleQuerier}
	g, err := r.Rewrite(context.Background(), "SELECT total FROM orders WHERE order_id = 43", other)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(g.SQL, "acme") || !strings.Contains(g.SQL, "globex") {
		t.Errorf("globex's statement: %s", g.SQL)
	}
}

// Shapes whose rewrite depends on the constant's value never template: a
// string naming a relation, a setting name.
func TestTemplateDeclinesValueSensitiveShapes(t *testing.T) {
	r := demoRewriter(t, Options{})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	for _, tt := range []struct{ seed, probe, code string }{
		{"SELECT '12345'::regclass", "SELECT 'internal_costs'::regclass", pgerr.UndefinedTable},
		{"SELECT has_table_privilege('orders', 'SELECT')", "SELECT has_table_privilege('internal_costs', 'SELECT')", pgerr.UndefinedTable},
		{"SELECT current_setting('search_path')", "SELECT current_setting('app.tenant')", pgerr.InsufficientPrivilege},
	} {
		if _, err := r.Rewrite(context.Background(), tt.seed, id); err != nil {
			t.Errorf("%s: %v", tt.seed, err)
			continue
		}
		_, err := r.Rewrite(context.Background(), tt.probe, id)
		if got := pgerr.SQLStateOf(err); got != tt.code {
			t.Errorf("%s after %s: %v (%s), want %s", tt.probe, tt.seed, err, got, tt.code)
		}
	}
}

// Every golden input and TPC-H query with constants is seeded, then
// rewritten again with other constants of the same kinds: what the template
// gives must be exactly the full rewrite of the new statement, refusals
// included.
func TestTemplateMatchesFullRewrite(t *testing.T) {
	golden := goldenTemplateCases(t)
	n := checkTemplates(t, demoRewriter(t, Options{Database: "analytics"}), demoRewriter(t, Options{CacheBytes: -1, Database: "analytics"}), golden)
	if n < 60 {
		t.Errorf("only %d golden shapes templated: the test no longer exercises templates", n)
	}
	var tpch []templateCase
	for i, q := range tpchQueries(t) {
		for _, tenant := range []string{"t1", "t2"} {
			id := &policy.Identity{Kind: policy.KindEmbed, Tenant: tenant, Role: policy.RoleQuerier}
			tpch = append(tpch, templateCase{fmt.Sprintf("tpch q%02d %s", i+1, tenant), q, id})
		}
	}
	ddl := readFile(t, "../testdata/rewrite/tpch/schema.sql")
	if n := checkTemplates(t, benchRewriter(t, tpchPolicy, ddl, Options{}), benchRewriter(t, tpchPolicy, ddl, Options{CacheBytes: -1}), tpch); n < 10 {
		t.Errorf("only %d TPC-H shapes templated", n)
	}
}

// goldenTemplateCases is every golden input, with its session.
func goldenTemplateCases(t *testing.T) []templateCase {
	t.Helper()
	var cases []templateCase
	for _, path := range goldenFiles(t) {
		for _, c := range readGolden(t, path) {
			id, err := parseSession(c.session)
			if err != nil {
				t.Fatal(err)
			}
			cases = append(cases, templateCase{fmt.Sprintf("%s:%d", filepath.Base(path), c.line), c.input, id})
		}
	}
	return cases
}

type templateCase struct {
	where string
	sql   string
	id    *policy.Identity
}

// checkTemplates runs the cases through r (seed, then a variant) and full
// (the variant, uncached) and returns how many variants came from a template.
func checkTemplates(t *testing.T, r, full *Rewriter, cases []templateCase) int {
	t.Helper()
	templated := 0
	for _, c := range cases {
		n, ok := normalize(nil, c.sql)
		if !ok {
			continue
		}
		r.Rewrite(context.Background(), c.sql, c.id) // seeds the template
		variant := n.withConsts(otherConsts(n.kinds))
		got, gerr := r.Rewrite(context.Background(), variant, c.id)
		want, werr := full.Rewrite(context.Background(), variant, c.id)
		if tm, ok := r.cache.getTemplate(n.key(identityKey(r.pol.Version(), c.id, r.personal))); ok && tm.ok {
			templated++
		}
		if (gerr == nil) != (werr == nil) || werr != nil && pgerr.SQLStateOf(gerr) != pgerr.SQLStateOf(werr) {
			t.Errorf("%s: %s\ntemplate path: %v\nfull rewrite:  %v", c.where, variant, gerr, werr)
			continue
		}
		if werr == nil && got.SQL != want.SQL {
			t.Errorf("%s: %s\ntemplate path: %s\nfull rewrite:  %s", c.where, variant, got.SQL, want.SQL)
		}
	}
	t.Logf("%d of %d shapes templated", templated, len(cases))
	return templated
}

// otherConsts returns constants of the given kinds, spelled as the deparser
// spells them, so that a template's output and a full rewrite compare as text.
func otherConsts(kinds []byte) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		switch k {
		case constInt:
			out[i] = fmt.Sprint(7 + i)
		case constFloat:
			out[i] = fmt.Sprintf("%d.5", 3+i)
		default:
			out[i] = fmt.Sprintf("'v%d''q'", i)
		}
	}
	return out
}

// withConsts is n's text with consts in place of its placeholders.
func (n normalized) withConsts(consts []string) string {
	t := newTemplate(nil, &Result{Statements: []Statement{{SQL: n.text}}}, make([]byte, len(consts)))
	if !t.ok {
		panic("placeholder text does not lex: " + n.text)
	}
	return t.instantiate(nil, consts).SQL
}

// A template hit (hit: the result, its statement, its prepared form and,
// when short enough, its SQL in one allocation) is exactly instantiate and
// prepared, for every golden and TPC-H shape that templates, on both sides
// of hitSQLBytes.
func TestTemplateHitIsInstantiate(t *testing.T) {
	r := demoRewriter(t, Options{Database: "analytics"})
	cases := goldenTemplateCases(t)
	probes := cmp.Comparer(func(a, b *Probe) bool { return a == b })
	var buf HitBuf
	short, long := 0, 0
	for _, c := range cases {
		n, ok := normalize(nil, c.sql)
		if !ok {
			continue
		}
		r.Rewrite(context.Background(), c.sql, c.id) // seeds the template
		tm, ok := r.cache.getTemplate(n.key(identityKey(r.pol.Version(), c.id, r.personal)))
		if !ok || !tm.ok {
			continue
		}
		consts := otherConsts(n.kinds)
		want := tm.instantiate(nil, consts)
		want.Prepared = tm.prepared(nil, consts, n.kinds)
		got := tm.hit(consts, n.kinds, nil)
		if diff := cmp.Diff(want, got, probes); diff != "" {
			t.Errorf("%s: hit differs from instantiate (-want +got):\n%s", c.where, diff)
		}
		// In a buffer that every shape before this one used.
		got = tm.hit(consts, n.kinds, &buf)
		if diff := cmp.Diff(want, got, probes); diff != "" {
			t.Errorf("%s: hit in a used buffer differs from instantiate (-want +got):\n%s", c.where, diff)
		}
		if len(want.Statements) == 1 && want.Prepared != nil && fitsSmall(consts) {
			if len(want.SQL) <= hitSQLBytes {
				short++
			} else {
				long++
			}
		}
	}
	if short == 0 || long == 0 {
		t.Errorf("hits with their SQL inline: %d, apart: %d; the test no longer covers both", short, long)
	}
}

// RewriteInto answers a query from its template in the caller's buffer,
// the same answer as Rewrite's, with no allocation; what is not a query
// (here a setting) never goes in the buffer.
func TestRewriteIntoHitBuf(t *testing.T) {
	r := demoRewriter(t, Options{Fingerprints: true})
	ctx := context.Background()
	acme := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	globex := &policy.Identity{Kind: policy.KindEmbed, Tenant: "globex", Role: policy.RoleQuerier}
	for _, id := range []*policy.Identity{acme, globex} {
		if _, err := r.Rewrite(ctx, "SELECT total FROM orders WHERE order_id = 17", id); err != nil {
			t.Fatal(err)
		}
	}
	var buf HitBuf
	for _, tc := range []struct {
		id  *policy.Identity
		sql string
	}{
		{acme, "SELECT total FROM orders WHERE order_id = 42"},
		{globex, "SELECT total FROM orders WHERE order_id = 7"},
		{acme, "SELECT total FROM orders WHERE order_id = 123456789"},
	} {
		want, err := r.Rewrite(ctx, tc.sql, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.RewriteInto(ctx, tc.sql, tc.id, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if got != &buf.one.res {
			t.Errorf("%s %q: answered outside the buffer", tc.id.Tenant, tc.sql)
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(Prepared{}), cmp.Comparer(func(a, b *Probe) bool { return a == b })); diff != "" {
			t.Errorf("%s %q: RewriteInto differs from Rewrite (-want +got):\n%s", tc.id.Tenant, tc.sql, diff)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.RewriteInto(ctx, "SELECT total FROM orders WHERE order_id = 99", acme, &buf); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("a template hit into a buffer allocates %v times, want 0", allocs)
	}
	// Only a query's answer goes in the buffer (none other has a prepared
	// form today; a template of another kind must still allocate).
	n, _ := normalize(nil, "SELECT total FROM orders WHERE order_id = 17")
	tm, ok := r.cache.getTemplate(n.key(identityKey(r.pol.Version(), acme, r.personal)))
	if !ok || !tm.ok {
		t.Fatal("no template")
	}
	set := *tm
	res := *tm.res
	res.Statements = []Statement{tm.res.Statements[0]}
	res.Statements[0].Kind = KindSet
	set.res = &res
	if got := set.hit(n.consts, n.kinds, &buf); got == &buf.one.res {
		t.Error("a template that is not a query answered in the buffer")
	}
}

// FuzzTemplateHitInBuffer: for any statement that gets a template, a hit
// written into a buffer that every input before used is the hit a fresh
// allocation gives, for the statement's own constants and for others.
func FuzzTemplateHitInBuffer(f *testing.F) {
	for _, q := range []string{
		"SELECT total FROM orders WHERE order_id = 17",
		"SELECT email FROM customers WHERE customer_id = 3 AND name = 'x''y'",
		"SELECT count(*) FROM orders WHERE total > 1.5 AND region = 'EU' LIMIT 10",
	} {
		f.Add(q)
	}
	for _, q := range tpchQueries(f) {
		f.Add(q)
	}
	r := demoRewriter(f, Options{Database: "analytics"})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	probes := cmp.Comparer(func(a, b *Probe) bool { return a == b })
	var buf HitBuf
	f.Fuzz(func(t *testing.T, sql string) {
		n, ok := normalize(nil, sql)
		if !ok {
			return
		}
		if _, err := r.Rewrite(context.Background(), sql, id); err != nil {
			return
		}
		tm, ok := r.cache.getTemplate(n.key(identityKey(r.pol.Version(), id, r.personal)))
		if !ok || !tm.ok {
			return
		}
		for _, consts := range [][]string{n.consts, otherConsts(n.kinds)} {
			want := tm.hit(consts, n.kinds, nil)
			got := tm.hit(consts, n.kinds, &buf)
			if diff := cmp.Diff(want, got, probes); diff != "" {
				t.Fatalf("%q: hit in a used buffer differs (-fresh +buffer):\n%s", sql, diff)
			}
		}
	})
}
