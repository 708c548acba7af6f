package rewrite

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

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
