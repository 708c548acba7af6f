package rewrite

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// Learned is a statement a viewer session ran that the policy's content
// does not list, allowed because the warehouse (or the session's tenant) is
// learning: the proxy records it for `pgwarden content`.
type Learned struct {
	// Fingerprint is pg_query's fingerprint, hex: what content entries
	// match on.
	Fingerprint string
	// Normalized is the statement with its constants as $n parameters:
	// what an entry's sql would say.
	Normalized string
	// Example is the statement as the client sent it (constants included).
	Example string
}

// contentFor returns the allow-list that binds id, or nil: a policy's
// content binds viewer sessions only; restricted_querier keeps ad-hoc
// statements on published relations, querier on every listed one.
func (r *Rewriter) contentFor(id *policy.Identity) *policy.Content {
	if r.pol.Content == nil || id.Role != policy.RoleViewer {
		return nil
	}
	return r.pol.Content
}

// checkContent decides whether a viewer may run one statement (raw, of the
// text sql, which the pass classified as kind and found reading rels). It
// runs once per rewrite: the result is cached with the rewrite, so a cached
// statement pays nothing for it. A statement allowed only because the
// session is learning comes back as a *Learned to record.
func checkContent(c *policy.Content, sql string, raw *pg_query.RawStmt, kind Kind, rels []string, id *policy.Identity) (*Learned, *pgerr.Error) {
	switch kind {
	case KindSet, KindShow, KindTransaction, KindEmpty, KindDiscard, KindDeallocate, KindExecute:
		// Settings (allow-listed), SHOW, transaction control, and running
		// or dropping what a checked PREPARE prepared.
		return nil, nil
	case KindCursor:
		if raw.Stmt.GetDeclareCursorStmt() == nil {
			// FETCH, MOVE, CLOSE read a cursor whose DECLARE was checked.
			return nil, nil
		}
	}
	text := stmtText(sql, raw)
	fp, err := pg_query.Fingerprint(text)
	if err != nil {
		return nil, pgerr.Unsupported("statement cannot be fingerprinted: %v", err)
	}
	if matches := c.Match(fp, id); len(matches) > 0 {
		var slots []policy.ConstSlot
		why := ""
		for _, s := range matches {
			if !s.Constrained() {
				return nil, nil
			}
			if slots == nil {
				// The pass rewrote raw in place (fences carry constants of
				// their own): read the client's constants from its text.
				tree, err := pg_query.Parse(text)
				if err != nil || len(tree.Stmts) != 1 {
					return nil, pgerr.Unsupported("statement cannot be parsed alone")
				}
				slots = policy.ConstSlots(tree.Stmts[0].Stmt)
			}
			w := s.Check(slots)
			if w == "" {
				return nil, nil
			}
			if why == "" {
				why = w
			}
		}
		return nil, pgerr.Denied("permission denied: %s", why)
	}
	if c.Introspection == policy.IntrospectCatalog && catalogOnly(rels) {
		return nil, nil
	}
	if c.Learns(id.Tenant) {
		norm, err := pg_query.Normalize(text)
		if err != nil {
			norm = text
		}
		return &Learned{Fingerprint: fp, Normalized: strings.TrimSpace(norm), Example: strings.TrimSpace(text)}, nil
	}
	return nil, pgerr.Denied("permission denied: viewer sessions may run only the statements listed in the policy's content, and this one (fingerprint %s) is not listed", fp).
		WithHint("ask for the dashboard's statement to be added under content.statements (pgwarden content)")
}

// catalogOnly reports whether a statement reads no relation of the policy:
// only catalogs, or nothing (SELECT 1, version()).
func catalogOnly(rels []string) bool {
	for _, r := range rels {
		if !strings.HasPrefix(r, "pg_catalog.") && !strings.HasPrefix(r, "information_schema.") {
			return false
		}
	}
	return true
}

// stmtText is the text of one statement of a (possibly multi-statement)
// string, as pg_query located it.
func stmtText(sql string, raw *pg_query.RawStmt) string {
	start := int(raw.StmtLocation)
	if start < 0 || start > len(sql) {
		return sql
	}
	end := len(sql)
	if raw.StmtLen > 0 && start+int(raw.StmtLen) <= len(sql) {
		end = start + int(raw.StmtLen)
	}
	return sql[start:end]
}
