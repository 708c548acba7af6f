package rewrite

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/testing/protocmp"
)

// The builders that allocate a node in one piece build what pg_query's
// helpers build.
func TestBuildersMatchPgQuery(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want *pg_query.Node
	}{
		{"strNode", strNode("x"), pg_query.MakeStrNode("x")},
		{"colRef", colRef("tenant_id"), pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode("tenant_id")}, 0)},
		{"strConst", strConst("acme"), pg_query.MakeAConstStrNode("acme", 0)},
		{"intConst", intConst(-7), pg_query.MakeAConstIntNode(-7, 0)},
		{"intConst zero", intConst(0), pg_query.MakeAConstIntNode(0, 0)},
		{"resTarget", resTarget("c", colRef("c")), pg_query.MakeResTargetNodeWithNameAndVal("c", pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode("c")}, 0), 0)},
		{"resTarget unnamed", resTarget("", nil), pg_query.MakeResTargetNodeWithNameAndVal("", nil, 0)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, c.got, protocmp.Transform()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
