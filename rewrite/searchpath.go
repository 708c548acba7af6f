package rewrite

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/pgerr"
)

// SET search_path. The rewriter resolves unqualified relation names through
// the policy's search_path and qualifies every relation it lets through, so
// the warehouse's search_path never decides what a name means, and a client
// cannot change it. What tools send when a user picks a schema, SET
// search_path TO public or "$user", public, is accepted when it names only
// schemas the policy exposes and resolves every exposed relation's
// unqualified name as the policy's path does (a path that would change what
// a name means is refused, as the rewriter would not follow it). It runs as SET pgwarden.search_path, a setting of
// pgwarden's own: the warehouse keeps it with PostgreSQL's semantics
// (transactions, SET LOCAL, RESET) and the proxy replays it on pooled
// connections like any setting, and SHOW search_path answers it.

// searchPathSetting is where the client's search_path is kept on the warehouse.
const searchPathSetting = "pgwarden.search_path"

// setSearchPath checks a SET/RESET search_path and turns it into one of
// searchPathSetting, in place.
func (p *pass) setSearchPath(s *pg_query.VariableSetStmt, st Statement) Statement {
	st.SetName = searchPathSetting
	s.Name = searchPathSetting
	if s.Kind != pg_query.VariableSetKind_VAR_SET_VALUE {
		// RESET and SET ... TO DEFAULT: back to the policy's path.
		if s.Kind == pg_query.VariableSetKind_VAR_SET_DEFAULT {
			s.Kind = pg_query.VariableSetKind_VAR_RESET
		}
		return st
	}
	schemas := make([]string, 0, len(s.Args))
	for _, a := range s.Args {
		sv := a.GetAConst().GetSval()
		if sv == nil {
			p.unsupported("SET search_path value " + nodeKind(a))
			return st
		}
		schemas = append(schemas, sv.Sval)
	}
	for _, schema := range schemas {
		if !p.pathSchema(schema) {
			p.fail(pgerr.Denied("permission denied to set search_path: schema %s is not exposed", quoteSchemas([]string{schema})[0]).
				WithHint("pgwarden resolves unqualified names through %s", strings.Join(quoteSchemas(p.r.pol.SearchPath), ", ")))
			return st
		}
	}
	if name, ok := p.samePath(schemas); !ok {
		p.fail(pgerr.Denied("permission denied to set search_path: %s would name relation %s differently",
			strings.Join(quoteSchemas(schemas), ", "), name).
			WithHint("pgwarden resolves unqualified names through %s; qualify other relations with their schema",
				strings.Join(quoteSchemas(p.r.pol.SearchPath), ", ")))
		return st
	}
	st.SetValue = strings.Join(quoteSchemas(schemas), ", ")
	s.Args = []*pg_query.Node{strConst(st.SetValue)}
	return st
}

// pathSchema reports whether a search_path may name schema: one holding a
// relation the policy lists, pg_catalog, information_schema or "$user"
// (which names no schema here).
func (p *pass) pathSchema(schema string) bool {
	switch schema {
	case "pg_catalog", "information_schema", "$user":
		return true
	}
	for _, t := range p.tmpl {
		if t.rel.Schema == schema && p.relationReadable(t) {
			return true
		}
	}
	return false
}

// samePath reports whether schemas resolve the unqualified name of every
// relation the session's policy lists as the policy's search_path does,
// and else one name they would resolve differently.
func (p *pass) samePath(schemas []string) (string, bool) {
	resolve := func(path []string, name string) string {
		for _, schema := range path {
			// A relation the session cannot read does not exist for it,
			// here as in statements.
			if t := p.tmpl[schema+"."+name]; t != nil && p.relationReadable(t) {
				return schema
			}
		}
		return ""
	}
	for _, key := range sortedTemplateKeys(p.tmpl) {
		if !p.relationReadable(p.tmpl[key]) {
			continue
		}
		name := p.tmpl[key].rel.Name
		if resolve(schemas, name) != resolve(p.r.pol.SearchPath, name) {
			return name, false
		}
	}
	return "", true
}

// quoteSchemas prints schema names as SHOW search_path does: quoted when
// they are not plain lowercase identifiers.
func quoteSchemas(schemas []string) []string {
	out := make([]string, len(schemas))
	for i, s := range schemas {
		out[i] = s
		if !plainIdent(s) {
			out[i] = quoteIdent(s)
		}
	}
	return out
}

func plainIdent(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// searchPathValue is the client's search_path as the warehouse keeps it,
// or the policy's: what SHOW search_path and current_setting answer.
func (p *pass) searchPathValue() *pg_query.Node {
	return clientSetting(searchPathSetting, strings.Join(quoteSchemas(p.r.pol.SearchPath), ", "))
}
