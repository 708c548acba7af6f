package rewrite

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

func TestDeepAndWideStatements(t *testing.T) {
	r := demoRewriter(t, Options{CacheBytes: -1})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	for _, n := range []int{100, 1000, 10000} {
		deep := "SELECT " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n)
		_, err := r.Rewrite(context.Background(), deep, id)
		var pe *pgerr.Error
		if err != nil && !errors.As(err, &pe) {
			t.Errorf("depth %d: %T %v", n, err, err)
		}
		if pe != nil && pe.Code == pgerr.InternalError {
			t.Errorf("depth %d: internal error", n)
		}
		sub := strings.Repeat("SELECT * FROM (", n/10) + "SELECT * FROM orders" + strings.Repeat(") s", n/10)
		if _, err := r.Rewrite(context.Background(), sub, id); err != nil && !errors.As(err, &pe) {
			t.Errorf("subquery depth %d: %v", n, err)
		}
	}
	wide := "SELECT count(*) FROM orders WHERE order_id IN (" + strings.Repeat("1, ", 20000) + "2)"
	if _, err := r.Rewrite(context.Background(), wide, id); err != nil {
		t.Errorf("wide IN list: %v", err)
	}
}

func TestStatementKinds(t *testing.T) {
	r := demoRewriter(t, Options{CacheBytes: -1, Fingerprints: true})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	res, err := r.Rewrite(context.Background(), "SET LOCAL TimeZone = 'UTC'; SELECT 1; RESET application_name; SHOW DateStyle; BEGIN; SET TRANSACTION READ ONLY; "+
		"PREPARE p AS SELECT * FROM orders; EXECUTE p; DEALLOCATE p; DECLARE c CURSOR FOR SELECT 1; FETCH c; CLOSE c; DISCARD ALL; "+
		"EXPLAIN SELECT * FROM customers JOIN orders USING (customer_id); RESET ALL", id)
	if err != nil {
		t.Fatal(err)
	}
	want := []Statement{
		{Kind: KindSet, SetName: "timezone", SetValue: "UTC", SetLocal: true},
		{Kind: KindQuery},
		{Kind: KindSet, SetName: "application_name"},
		{Kind: KindShow},
		{Kind: KindTransaction},
		{Kind: KindTransaction},
		{Kind: KindPrepare, Relations: []string{"public.orders"}},
		{Kind: KindExecute},
		{Kind: KindDeallocate},
		{Kind: KindCursor},
		{Kind: KindCursor},
		{Kind: KindCursor},
		{Kind: KindDiscard},
		{Kind: KindExplain, Relations: []string{"public.customers", "public.orders"}},
		{Kind: KindSet, SetName: "all"},
	}
	if len(res.Statements) != len(want) {
		t.Fatalf("%d statements, want %d", len(res.Statements), len(want))
	}
	var sqls []string
	for i, w := range want {
		got := res.Statements[i]
		sqls = append(sqls, got.SQL)
		if got.Kind != w.Kind || got.SetName != w.SetName || got.SetValue != w.SetValue || got.SetLocal != w.SetLocal ||
			strings.Join(got.Relations, ",") != strings.Join(w.Relations, ",") {
			t.Errorf("statement %d (%s): got %+v, want %+v", i, got.SQL, got, w)
		}
	}
	if res.SQL != strings.Join(sqls, "; ") || res.Fingerprint == "" {
		t.Errorf("SQL %q fingerprint %q", res.SQL, res.Fingerprint)
	}
	if plain, _ := demoRewriter(t, Options{CacheBytes: -1}).Rewrite(context.Background(), "SELECT 1", id); plain.Fingerprint != "" {
		t.Errorf("fingerprint %q without Options.Fingerprints", plain.Fingerprint)
	}
	empty, err := r.Rewrite(context.Background(), "  ;  -- nothing", id)
	if err != nil || len(empty.Statements) != 1 || empty.Statements[0].Kind != KindEmpty || empty.SQL != "" {
		t.Errorf("empty: %+v %v", empty, err)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	r := demoRewriter(t, Options{CacheBytes: -1})
	for _, tc := range []struct {
		id   *policy.Identity
		sql  string
		code string
	}{
		{nil, "SELECT 1", pgerr.InsufficientPrivilege},
		{&policy.Identity{Tenant: "acme", Role: policy.RoleNoAccess}, "SELECT 1", pgerr.InsufficientPrivilege},
		{&policy.Identity{Tenant: "acme", Role: policy.RoleQuerier}, "SELEC", pgerr.SyntaxError},
		{&policy.Identity{Tenant: "acme", Role: policy.RoleQuerier}, "SELECT * FROM orders TABLESAMPLE system (1) REPEATABLE (1)", pgerr.FeatureNotSupported},
		{&policy.Identity{Tenant: "acme", Role: policy.RoleQuerier}, "SELECT $0", "42P02"},
	} {
		_, err := r.Rewrite(context.Background(), tc.sql, tc.id)
		var pe *pgerr.Error
		if !errors.As(err, &pe) || pe.Code != tc.code {
			t.Errorf("%q: got %v, want SQLSTATE %s", tc.sql, err, tc.code)
		}
	}
}

func TestSameErrorWhetherRelationExists(t *testing.T) {
	r := demoRewriter(t, Options{CacheBytes: -1})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleViewer}
	// internal_costs exists in the warehouse, nope does not, events is listed but not published.
	var msgs []string
	for _, rel := range []string{"internal_costs", "nope_costs_xx", "events"} {
		_, err := r.Rewrite(context.Background(), "SELECT * FROM "+rel, id)
		var pe *pgerr.Error
		if !errors.As(err, &pe) {
			t.Fatalf("%s: %v", rel, err)
		}
		msgs = append(msgs, strings.ReplaceAll(pe.Error(), rel, "X")+pe.Detail+pe.Hint)
	}
	if msgs[0] != msgs[1] || msgs[1] != msgs[2] {
		t.Errorf("errors differ: %q", msgs)
	}
}

// The proxy replays settings across pooled connections and needs to know
// which savepoint a statement defines, releases or rolls back to.
func TestSavepointStatements(t *testing.T) {
	r := demoRewriter(t, Options{CacheBytes: -1})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	res, err := r.Rewrite(context.Background(), `BEGIN; SAVEPOINT a; RELEASE SAVEPOINT a; SAVEPOINT "B b"; ROLLBACK TO b; ROLLBACK TO SAVEPOINT "B b"; RELEASE b; ROLLBACK`, id)
	if err != nil {
		t.Fatal(err)
	}
	type sp struct {
		name string
		op   SavepointOp
	}
	var got []sp
	for _, st := range res.Statements {
		if st.Kind != KindTransaction {
			t.Errorf("%s: kind %v", st.SQL, st.Kind)
		}
		got = append(got, sp{st.Savepoint, st.SavepointOp})
	}
	want := []sp{{"", NoSavepoint}, {"a", SavepointDefine}, {"a", SavepointRelease}, {"B b", SavepointDefine},
		{"b", SavepointRollbackTo}, {"B b", SavepointRollbackTo}, {"b", SavepointRelease}, {"", NoSavepoint}}
	if !cmp.Equal(got, want, cmp.AllowUnexported(sp{})) {
		t.Errorf("savepoints %v, want %v", got, want)
	}
}
