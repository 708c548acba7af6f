package rewrite

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// TestPushdownOperatorsAreLeakproof checks leakproofOps against pg_proc: every
// operator the rewriter may push inside the fence is leakproof, and so is
// every cross-type comparison an integer literal could resolve to.
// (Parameters are pushed only as $n::column_type, so their declared type
// cannot pick another operator or an implicit cast of the column.)
func TestPushdownOperatorsAreLeakproof(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for typ, ops := range leakproofOps {
		opType := typ
		if typ == "character varying" {
			opType = "text" // varchar has no operators of its own; it is binary-coercible to text
		}
		for op := range ops {
			var fn string
			var leakproof bool
			err := conn.QueryRow(ctx, `
SELECT o.oprcode::regproc::text, p.proleakproof
FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
WHERE o.oprname = $1 AND o.oprleft = $2::regtype AND o.oprright = $2::regtype`, op, opType).Scan(&fn, &leakproof)
			if err != nil {
				t.Errorf("%s %s %s: %v", typ, op, typ, err)
				continue
			}
			if !leakproof {
				t.Errorf("%s %s %s is %s, which is not leakproof", typ, op, typ, fn)
			}
		}
	}
	// Cross-type operators with the column's type on either side.
	for _, typ := range []string{"smallint", "integer", "bigint", "text"} {
		rows, err := conn.Query(ctx, `
SELECT format('%s %s %s', o.oprleft::regtype, o.oprname, o.oprright::regtype), o.oprcode::regproc::text, p.proleakproof
FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
WHERE o.oprname = ANY($1) AND (o.oprleft = $2::regtype OR o.oprright = $2::regtype) AND o.oprleft <> 0`,
			[]string{"=", "<>", "<", "<=", ">", ">="}, typ)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var sig, fn string
			var leakproof bool
			if err := rows.Scan(&sig, &fn, &leakproof); err != nil {
				t.Fatal(err)
			}
			if !leakproof && leakproofOps[typ][opOf(sig)] {
				t.Errorf("a parameter could resolve %s to %s, which is not leakproof", sig, fn)
			}
		}
		rows.Close()
		rows.Close()
	}
}

func opOf(sig string) string {
	for _, op := range []string{"<>", "<=", ">=", "=", "<", ">"} {
		for i := 0; i+len(op) <= len(sig); i++ {
			if sig[i:i+len(op)] == op && (i == 0 || sig[i-1] == ' ') && (i+len(op) == len(sig) || sig[i+len(op)] == ' ') {
				return op
			}
		}
	}
	return ""
}

func TestCastToType(t *testing.T) {
	tests := []struct {
		cast, typ string
		want      bool
	}{
		{"date", "date", true},
		{"pg_catalog.date", "date", true},
		{"timestamptz", "timestamp with time zone", true},
		{"timestamp with time zone", "timestamp with time zone", true},
		{"int4", "integer", true},
		{"int", "integer", true},
		{"int8", "integer", false},
		{"varchar", "character varying", true},
		{"varchar(3)", "character varying", false},
		{"text[]", "text", false},
		{"public.text", "text", false},
		{"evil.date", "date", false},
		{"date", "timestamp with time zone", false},
	}
	for _, tt := range tests {
		tree, err := pg_query.Parse("SELECT NULL::" + tt.cast)
		if err != nil {
			t.Fatal(err)
		}
		tc := tree.Stmts[0].Stmt.GetSelectStmt().TargetList[0].GetResTarget().Val.GetTypeCast()
		if got := castToType(tc.TypeName, tt.typ); got != tt.want {
			t.Errorf("castToType(%s, %s) = %v, want %v", tt.cast, tt.typ, got, tt.want)
		}
	}
}
