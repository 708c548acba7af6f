package rewrite

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/policy"
)

const preparedForms = "../testdata/rewrite/prepared/forms.txt"

// formatPrepared shows a statement's prepared form: its text, then one line
// per parameter with its type and value.
func formatPrepared(res *Result, err error) string {
	if err != nil {
		return formatOutcome(res, err)
	}
	pr := res.Prepared
	if pr == nil {
		return "no prepared form"
	}
	var b strings.Builder
	b.WriteString(pr.SQL)
	for i, v := range pr.Params {
		typ := map[uint32]string{0: "unknown", oidInt4: "int4", oidInt8: "int8", oidNumeric: "numeric"}[pr.ParamOIDs[i]]
		fmt.Fprintf(&b, "\n$%d %s %q", i+1, typ, v)
	}
	return b.String()
}

// TestPreparedGolden checks which constants become parameters, of what
// type, in testdata/rewrite/prepared/forms.txt (-update rewrites it).
func TestPreparedGolden(t *testing.T) {
	r := demoRewriter(t, Options{MaxStatementTimeout: 5 * time.Minute, Database: "analytics"})
	checkGolden(t, preparedForms, func(c *goldenCase, id *policy.Identity) string {
		got := formatPrepared(r.Rewrite(context.Background(), c.input, id))
		// The first statement of a shape and a later one alike.
		if again := formatPrepared(r.Rewrite(context.Background(), c.input+" ", id)); again != got {
			t.Errorf("%s:%d: second statement of the shape:\n%s\nfirst:\n%s", preparedForms, c.line, again, got)
		}
		return got
	})
}

// TestPreparedMatchesLiteral runs the prepared form of every statement of
// the golden files and the demo differential corpus that has one, on
// PostgreSQL, against its rewrite with literals: the same columns of the
// same types and the same rows, with the plan PostgreSQL picks for a few
// executions (custom) and the one it settles on (generic). A prepared form
// may fail to prepare (the proxy's probe then runs the shape as plain
// statements), never fail or differ once prepared.
func TestPreparedMatchesLiteral(t *testing.T) {
	if *update {
		t.Skip("updating goldens")
	}
	conn := demoDB(t)
	r := demoRewriter(t, Options{MaxStatementTimeout: 5 * time.Minute, Database: "analytics"})
	type stmt struct {
		where, sql string
		id         *policy.Identity
	}
	var stmts []stmt
	files := append(goldenFiles(t), preparedForms)
	for _, path := range files {
		for _, c := range readGolden(t, path) {
			if strings.HasPrefix(c.want, "error:") || strings.Contains(strings.ToUpper(c.input), "TABLESAMPLE") {
				continue // a sample differs from run to run
			}
			id, _ := parseSession(c.session)
			stmts = append(stmts, stmt{fmt.Sprintf("%s:%d", filepath.Base(path), c.line), c.input, id})
		}
	}
	for i, q := range splitStatements(t, readFile(t, "../testdata/rewrite/differential/demo.sql")) {
		for _, tenant := range diffTenants {
			stmts = append(stmts, stmt{fmt.Sprintf("demo.sql #%d as %s", i+1, tenant), q,
				&policy.Identity{Kind: policy.KindEmbed, Tenant: tenant, Role: policy.RoleQuerier, Groups: []string{"pii", "analysts"}}})
		}
	}
	ctx := context.Background()
	pc := conn.PgConn()
	var compared, rejected, generic int
	for _, s := range stmts {
		res, err := r.Rewrite(context.Background(), s.sql, s.id)
		if err != nil || res.Prepared == nil {
			continue
		}
		pr := res.Prepared
		// A LIMIT (or DISTINCT ON) picks among rows in whatever order the
		// plan yields them, and a generic plan may yield another order:
		// there only the number of rows must agree.
		partial := limitRE.MatchString(s.sql)
		want, wantTypes, lerr := resultOf(pc.Exec(ctx, res.SQL).ReadAll())
		resetConn(t, conn)
		if _, err := pc.Prepare(ctx, "p", pr.SQL, pr.ParamOIDs); err != nil {
			rejected++
			resetConn(t, conn)
			continue
		}
		var customErr error
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			results, err := pc.Exec(ctx, "SET plan_cache_mode = "+mode).ReadAll()
			if err == nil {
				rr := pc.ExecPrepared(ctx, "p", pr.Params, nil, nil).Read()
				results, err = []*pgconn.Result{rr}, rr.Err
			}
			got, gotTypes, perr := resultOf(results, err)
			if mode == "force_custom_plan" {
				customErr = perr
			}
			switch {
			case lerr != nil && perr == nil && customErr != nil && customErr.Error() == lerr.Error():
				// The one difference: PostgreSQL evaluates constant
				// expressions while planning, a generic plan has none to
				// evaluate (CASE WHEN ... THEN 1 / 0 END fails as a
				// literal even where no row reaches it).
				generic++
			case lerr != nil && perr == nil:
				t.Errorf("%s (%s): literal failed (%v), prepared did not\n%s", s.where, mode, lerr, pr.SQL)
			case lerr == nil && perr != nil:
				t.Errorf("%s (%s): prepared failed: %v\n%s", s.where, mode, perr, pr.SQL)
			case gotTypes != wantTypes:
				t.Errorf("%s (%s): column types %s, literal %s\n%s", s.where, mode, gotTypes, wantTypes, pr.SQL)
			case partial && len(got) != len(want):
				t.Errorf("%s (%s): %d rows, literal %d\n%s", s.where, mode, len(got), len(want), pr.SQL)
			case !partial && strings.Join(got, "\n") != strings.Join(want, "\n"):
				t.Errorf("%s (%s): %d rows, literal %d\nprepared: %v\nliteral:  %v\n%s", s.where, mode, len(got), len(want), head(got), head(want), pr.SQL)
			}
		}
		compared++
		resetConn(t, conn)
	}
	t.Logf("%d statements: %d prepared forms compared with their literal rewrites, %d rejected at prepare, %d failing as literals only for their planning-time constants", len(stmts), compared, rejected, generic)
	if compared < 40 {
		t.Errorf("only %d prepared forms compared", compared)
	}
}

var limitRE = regexp.MustCompile(`(?i)\b(LIMIT|FETCH|DISTINCT\s+ON)\b`)

// resultOf is a result's rows (sorted text lines) and column types.
func resultOf(results []*pgconn.Result, err error) ([]string, string, error) {
	if err != nil {
		return nil, "", err
	}
	r := results[len(results)-1]
	var types strings.Builder
	for _, f := range r.FieldDescriptions {
		fmt.Fprintf(&types, "%d(%d),", f.DataTypeOID, f.TypeModifier)
	}
	lines, _ := rowsLines(r)
	return lines, types.String(), nil
}

func resetConn(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	if _, err := conn.PgConn().Exec(context.Background(), "ROLLBACK; DEALLOCATE ALL; RESET plan_cache_mode").ReadAll(); err != nil {
		t.Fatalf("reset: %v", err)
	}
}
