package policy

import (
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

const contentBase = `tenants: [acme, test]
groups: [finance]
relations:
  public.orders: {tenant_column: tenant_id, published: true}
`

func TestContentParse(t *testing.T) {
	p, err := Parse([]byte(contentBase+`content:
  learn_tenants: [test]
  statements:
    - name: by_region
      sql: SELECT sum(total) FROM orders WHERE region = $1 LIMIT $2
      params: {1: {values: [EU]}, 2: {min: 1, max: 100}}
      groups: [finance]
      roles: [viewer]
`), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := p.Content
	if c.Introspection != IntrospectCatalog || !c.Learns("test") || c.Learns("acme") || c.Learns("") {
		t.Fatalf("content = %+v", c)
	}
	fp, _ := pg_query.Fingerprint("select SUM(total) from orders where region = 'NA' limit 5")
	viewer := &Identity{Role: RoleViewer, Groups: []string{"finance"}}
	if got := c.Match(fp, viewer); len(got) != 1 || got[0].Name != "by_region" {
		t.Fatalf("match = %v", got)
	}
	if got := c.Match(fp, &Identity{Role: RoleViewer}); got != nil {
		t.Fatalf("matched outside the group: %v", got)
	}
	if got := c.Match(fp, &Identity{Role: RoleQuerier, Groups: []string{"finance"}}); got != nil {
		t.Fatalf("matched another role: %v", got)
	}
	s := c.Statements[0]
	slots := func(sql string) []ConstSlot {
		tree, err := pg_query.Parse(sql)
		if err != nil {
			t.Fatal(err)
		}
		return ConstSlots(tree.Stmts[0].Stmt)
	}
	for sql, want := range map[string]string{
		"SELECT sum(total) FROM orders WHERE region = 'EU' LIMIT 10":  "",
		"SELECT sum(total) FROM orders WHERE region = 'NA' LIMIT 10":  "value of parameter $1",
		"SELECT sum(total) FROM orders WHERE region = 'EU' LIMIT 101": "value of parameter $2",
		"SELECT sum(total) FROM orders WHERE region = 'EU' LIMIT -1":  "value of parameter $2",
		"SELECT sum(total) FROM orders WHERE region = 'EU' LIMIT 1.5": "",
		"SELECT sum(total) FROM orders WHERE region = 'EU' LIMIT '7'": "value of parameter $2", // a string is no number
		"SELECT sum(total) FROM orders WHERE region = NULL LIMIT 10":  "value of parameter $1",
		"SELECT sum(total) FROM orders WHERE region = $1 LIMIT 10":    "send its value as a literal",
	} {
		got := s.Check(slots(sql))
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("%s: Check = %q, want %q", sql, got, want)
		}
	}
}

func TestContentParseErrors(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{"content: {introspection: all}", `content.introspection: unknown value "all"`},
		{"content: {learn_tenants: [nobody]}", `content.learn_tenants[0]: unknown tenant "nobody"`},
		{"content: {statements: [{sql: SELECT 1}]}", "content.statements[0].name: missing"},
		{"content: {statements: [{name: a, sql: SELECT 1}, {name: a, sql: SELECT 2}]}", `content.statements[1].name: "a" listed twice`},
		{"content: {statements: [{name: a}]}", "content.statements[0].sql: missing"},
		{"content: {statements: [{name: a, sql: 'SELEC 1'}]}", "content.statements[0].sql: parse error"},
		{"content: {statements: [{name: a, sql: 'SELECT 1; SELECT 2'}]}", "exactly one statement"},
		{"content: {statements: [{name: a, sql: SELECT 1, groups: [x]}]}", `groups[0]: unknown group "x"`},
		{"content: {statements: [{name: a, sql: SELECT 1, roles: [no_access]}]}", "roles[0]"},
		{"content: {statements: [{name: a, sql: 'SELECT $1', params: {2: {values: [x]}}}]}", "params.2: the statement has no parameter $2"},
		{"content: {statements: [{name: a, sql: 'SELECT $1', params: {1: {}}}]}", "params.1: want values, min and/or max"},
		{"content: {statements: [{name: a, sql: 'SELECT $1', params: {1: {min: 2, max: 1}}}]}", "min is above max"},
		{"content: {statements: [{name: a, sql: 'SELECT $1, $1', params: {1: {max: 1}}}]}", "appears more than once"},
		{"content: {statements: [{name: a, sql: SELECT 1, other: 2}]}", `unknown field "other"`},
	} {
		_, err := Parse([]byte(contentBase+tc.content+"\n"), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.content, err, tc.want)
		}
	}
}

func TestRelationGroups(t *testing.T) {
	p, err := Parse([]byte(`groups: [finance]
relations:
  public.orders: {tenant_column: tenant_id, groups: [finance]}
  public.products: {shared: true}
`), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	orders, products := p.Relations["public.orders"], p.Relations["public.products"]
	if !orders.ReachedBy(&Identity{Groups: []string{"x", "finance"}}) || orders.ReachedBy(&Identity{Groups: []string{"x"}}) ||
		!products.ReachedBy(&Identity{}) {
		t.Fatal("ReachedBy")
	}
	if _, err := Parse([]byte("groups: [finance]\nrelations:\n  public.orders: {tenant_column: t, groups: [sales]}\n"), "p.yaml"); err == nil ||
		!strings.Contains(err.Error(), `relations."public.orders".groups[0]: unknown group "sales"`) {
		t.Fatalf("unknown group: %v", err)
	}
}

func TestAppendContent(t *testing.T) {
	src := "# the policy\n" + contentBase + "content:\n  learn: true  # for now\n"
	out, err := AppendContent([]byte(src), "p.yaml", []NewContentEntry{
		{Name: "learned_1", SQL: "SELECT sum(total) FROM orders WHERE region = $1", Comment: "learned from tenant test"},
		{Name: "learned_2", SQL: "SELECT count(*)\nFROM orders"},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(out, "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Content.Learn || len(p.Content.Statements) != 2 || p.Content.Statements[1].SQL != "SELECT count(*)\nFROM orders" {
		t.Fatalf("content = %+v", p.Content)
	}
	for _, want := range []string{"# the policy", "# for now", "# learned from tenant test", "- name: learned_1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Without a content section, one is added; an invalid entry is refused.
	out, err = AppendContent([]byte(contentBase), "p.yaml", []NewContentEntry{{Name: "a", SQL: "SELECT 1"}})
	if err != nil || !strings.Contains(string(out), "content:\n  statements:\n    - name: a") {
		t.Fatalf("new section: %v\n%s", err, out)
	}
	if _, err := AppendContent([]byte(contentBase), "p.yaml", []NewContentEntry{{Name: "a", SQL: "SELEC"}}); err == nil {
		t.Fatal("an entry that does not parse was written")
	}
}
