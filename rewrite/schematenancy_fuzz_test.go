package rewrite

import (
	"context"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// FuzzSchemaTenancy: for an acme session, no accepted statement reads from
// a schema other than acme's, the shared one and the system catalogs: never
// another tenant's (tenant_globex, initech_prod) nor the model
// (tenant_template), nor the logical schema itself (public).
func FuzzSchemaTenancy(f *testing.F) {
	for _, c := range readGoldenF(f, "../testdata/tenancy/rewrite.txt") {
		f.Add(c)
	}
	f.Add(`SELECT * FROM orders o JOIN customers c USING (customer_id) WHERE c.name IN (SELECT name FROM public.customers)`)
	f.Add(`WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT * FROM r, orders`)
	f.Add(`COPY (SELECT * FROM tenant_globex.orders) TO STDOUT`)
	r := staticTenancyRewriter(f, Options{CacheBytes: -1, Database: "analytics"})
	allowed := map[string]bool{"tenant_acme": true, "shared": true, "pg_catalog": true, "information_schema": true, "": true}
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	f.Fuzz(func(t *testing.T, sql string) {
		res, err := r.Rewrite(context.Background(), sql, id)
		if err != nil {
			if pgerr.SQLStateOf(err) == pgerr.InternalError {
				t.Fatalf("internal error (recovered panic) for %q: %v", sql, err)
			}
			return
		}
		for _, st := range res.Statements {
			if st.Kind == KindEmpty || st.SQL == "" {
				continue
			}
			tree, err := pg_query.Parse(st.SQL)
			if err != nil {
				t.Fatalf("output does not parse: %v\ninput:  %q\noutput: %s", err, sql, st.SQL)
			}
			eachRangeVar(tree.ProtoReflect(), func(rv *pg_query.RangeVar) {
				if !allowed[rv.Schemaname] {
					t.Fatalf("reads %s.%s\ninput:  %q\noutput: %s", rv.Schemaname, rv.Relname, sql, st.SQL)
				}
			})
		}
	})
}

// eachRangeVar calls f for every RangeVar in m.
func eachRangeVar(m protoreflect.Message, f func(*pg_query.RangeVar)) {
	if rv, ok := m.Interface().(*pg_query.RangeVar); ok {
		f(rv)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				eachRangeVar(l.Get(i).Message(), f)
			}
		case fd.Message() != nil && !fd.IsMap():
			eachRangeVar(v.Message(), f)
		}
		return true
	})
}

// staticTenancyRewriter is a rewriter over testdata/tenancy/policy.yaml
// whose tenant schemas all have the model's shape, without a warehouse.
func staticTenancyRewriter(tb testing.TB, opts Options) *Rewriter {
	tb.Helper()
	p, err := policy.Parse([]byte(readFile(tb, "../testdata/tenancy/policy.yaml")), "policy.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	cols := []policy.Column{{Name: "customer_id", Type: "integer", Ordinal: 1}, {Name: "name", Type: "text", Ordinal: 2},
		{Name: "email", Type: "text", Ordinal: 3}, {Name: "ssn", Type: "text", Ordinal: 4}}
	ocols := []policy.Column{{Name: "order_id", Type: "integer", Ordinal: 1}, {Name: "customer_id", Type: "integer", Ordinal: 2},
		{Name: "region", Type: "text", Ordinal: 3}, {Name: "product_id", Type: "integer", Ordinal: 4},
		{Name: "amount", Type: "numeric(12,2)", Ordinal: 5}}
	rels := func(schema string) []policy.CatalogRelation {
		return []policy.CatalogRelation{{Schema: schema, Name: "customers", Columns: cols}, {Schema: schema, Name: "orders", Columns: ocols}}
	}
	model := policy.NewCatalog(append(rels("public"),
		policy.CatalogRelation{Schema: "shared", Name: "products", Columns: []policy.Column{{Name: "product_id", Type: "integer", Ordinal: 1}, {Name: "name", Type: "text", Ordinal: 2}}},
		policy.CatalogRelation{Schema: "shared", Name: "events", Columns: []policy.Column{{Name: "tenant_id", Type: "text", Ordinal: 1}, {Name: "kind", Type: "text", Ordinal: 2}}})...)
	// The tenants' schemas as the warehouse would describe them.
	tc, err := policy.NewTenantCatalog(p, model, func(_ context.Context, schema string, _ []string) ([]policy.CatalogRelation, bool, error) {
		return rels(schema), true, nil
	}, 0, nil)
	if err != nil {
		tb.Fatal(err)
	}
	opts.TenantSchemas = tc
	r, err := New(p, model, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// BenchmarkSchemaTenancy: a statement over a schema-per-tenant relation
// and the same over a row-keyed one, cached and not.
func BenchmarkSchemaTenancy(b *testing.B) {
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	for _, c := range []struct{ name, sql string }{
		{"schema", "SELECT region, sum(amount) FROM orders WHERE order_id > 10 GROUP BY 1"},
		{"column", "SELECT kind, count(*) FROM shared.events WHERE at > '2024-01-01' GROUP BY 1"},
	} {
		for _, cache := range []int64{-1, 0} {
			r := staticTenancyRewriter(b, Options{CacheBytes: cache})
			name := c.name + "/uncached"
			if cache == 0 {
				name = c.name + "/cached"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, err := r.Rewrite(context.Background(), c.sql, id); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
