package rewrite

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// catalogFromDDL builds a catalog from CREATE TABLE statements, so goldens
// need no database. Types are spelled as format_type prints them.
func catalogFromDDL(t testing.TB, ddl string) *policy.Catalog {
	t.Helper()
	tree, err := pg_query.Parse(ddl)
	if err != nil {
		t.Fatalf("parse DDL: %v", err)
	}
	var rels []policy.CatalogRelation
	for _, raw := range tree.Stmts {
		cs := raw.Stmt.GetCreateStmt()
		if cs == nil {
			continue
		}
		schema := cs.Relation.Schemaname
		if schema == "" {
			schema = "public"
		}
		r := policy.CatalogRelation{Schema: schema, Name: cs.Relation.Relname}
		for _, el := range cs.TableElts {
			cd := el.GetColumnDef()
			if cd == nil {
				continue
			}
			r.Columns = append(r.Columns, policy.Column{Name: cd.Colname, Type: formatType(cd.TypeName), Ordinal: len(r.Columns) + 1})
		}
		rels = append(rels, r)
	}
	return policy.NewCatalog(rels...)
}

func formatType(tn *pg_query.TypeName) string {
	name := tn.Names[len(tn.Names)-1].GetString_().Sval
	switch name {
	case "int4":
		name = "integer"
	case "int8":
		name = "bigint"
	case "int2":
		name = "smallint"
	case "timestamptz":
		name = "timestamp with time zone"
	case "timestamp":
		name = "timestamp without time zone"
	case "bool":
		name = "boolean"
	case "float8":
		name = "double precision"
	case "varchar":
		name = "character varying"
	case "bpchar":
		name = "character"
	}
	if len(tn.Typmods) > 0 {
		var mods []string
		for _, m := range tn.Typmods {
			mods = append(mods, fmt.Sprint(m.GetAConst().GetIval().GetIval()))
		}
		name += "(" + strings.Join(mods, ",") + ")"
	}
	return name
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// demoRewriter is the rewriter for the demo schema and policy.
func demoRewriter(t testing.TB, opts Options) *Rewriter {
	t.Helper()
	p, err := policy.Load("../testdata/demo/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat := catalogFromDDL(t, readFile(t, "../testdata/demo/schema.sql"))
	r, err := New(p, cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// liveRewriter connects to the database at url and builds a rewriter for p
// with that database's catalog, as the proxy does at start. The connection
// closes when the test ends.
func liveRewriter(t testing.TB, url string, p *policy.Policy) (*pgx.Conn, *Rewriter) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	cat, err := policy.LoadCatalog(ctx, conn, p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(p, cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return conn, r
}

// parseSession reads "session tenant=acme groups=pii,analysts attr.regions=EU,NA role=querier kind=embed".
func parseSession(line string) (*policy.Identity, error) {
	id := &policy.Identity{Kind: policy.KindEmbed, Role: policy.RoleQuerier, Attributes: map[string][]string{}}
	fields := strings.Fields(line)
	if len(fields) == 0 || fields[0] != "session" {
		return nil, fmt.Errorf("want a session line, got %q", line)
	}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("bad session field %q", f)
		}
		list := func() []string {
			if v == "" {
				return []string{}
			}
			return strings.Split(v, ",")
		}
		switch {
		case k == "tenant":
			id.Tenant = v
		case k == "groups":
			id.Groups = list()
		case k == "role":
			id.Role = policy.Role(v)
		case k == "kind":
			id.Kind = policy.Kind(v)
		case k == "external_id":
			id.ExternalID = v
		case k == "email":
			id.Email = v
		case strings.HasPrefix(k, "attr."):
			id.Attributes[strings.TrimPrefix(k, "attr.")] = list()
		default:
			return nil, fmt.Errorf("unknown session field %q", k)
		}
	}
	return id, nil
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
