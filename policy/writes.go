package policy

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Writes opens a relation for INSERT, UPDATE and DELETE. Reads are unchanged;
// a session writes only its own tenant's rows, in the columns listed here.
//
//	public.comments:
//	  tenant_column: tenant_id
//	  writes:
//	    roles: [viewer, querier]        # required: connection roles that may write
//	    groups: [commenters]            # optional: and only sessions in one of these
//	    insert: true
//	    update: [body, resolved]        # the columns UPDATE may set
//	    delete: true
//	    fill: { created_by: "{{external_id}}" }   # set from the session on INSERT
//	    read_only: [comment_id, created_at]       # never written by clients
//	    returning: false                # refuse RETURNING (default: allowed, masked as reads are)
type Writes struct {
	Roles  []Role
	Groups []string
	Insert bool
	// Update lists the columns an UPDATE may set; empty refuses UPDATE.
	Update []string
	Delete bool
	// Fill are the columns an INSERT takes from the session (the tenant
	// column always, added by the parser). No client may set them: an
	// INSERT may only repeat the session's value, an UPDATE never.
	Fill     map[string]FillValue
	ReadOnly []string
	// NoReturning refuses RETURNING on the relation.
	NoReturning bool
}

// FillValue is what a filled column gets: a session field or a constant.
type FillValue struct {
	// Kind is PlaceTenant, PlaceExternalID or PlaceEmail when Session is
	// set; otherwise the column gets Literal.
	Session bool
	Kind    PlaceholderKind
	Literal string
}

// Value returns the filled value for id; ok is false when the session has
// no value for it (an empty external id), which refuses the write.
func (f FillValue) Value(id *Identity) (v string, ok bool) {
	if !f.Session {
		return f.Literal, true
	}
	switch f.Kind {
	case PlaceTenant:
		v = id.Tenant
	case PlaceExternalID:
		v = id.ExternalID
	case PlaceEmail:
		v = id.Email
	}
	return v, v != ""
}

// Personal reports whether a filled value names the session's external id or
// email (rewrites then depend on them).
func (w *Writes) Personal() bool {
	if w == nil {
		return false
	}
	for _, f := range w.Fill {
		if f.Session && (f.Kind == PlaceExternalID || f.Kind == PlaceEmail) {
			return true
		}
	}
	return false
}

// Allows reports whether a session with id may write the relation at all.
func (w *Writes) Allows(id *Identity) bool {
	if w == nil || !slices.Contains(w.Roles, id.Role) {
		return false
	}
	return len(w.Groups) == 0 || id.InGroup(w.Groups...)
}

// Updatable reports whether UPDATE may set col.
func (w *Writes) Updatable(col string) bool { return slices.Contains(w.Update, col) }

// Writable reports whether an INSERT may name col with a value of its own
// (filled columns are checked apart).
func (w *Writes) Writable(col string) bool { return !slices.Contains(w.ReadOnly, col) }

// FillColumns returns the filled columns in a stable order (the tenant column first).
func (w *Writes) FillColumns(tenantColumn string) []string {
	cols := make([]string, 0, len(w.Fill))
	for c := range w.Fill {
		if c != tenantColumn {
			cols = append(cols, c)
		}
	}
	sort.Strings(cols)
	return append([]string{tenantColumn}, cols...)
}

// HasWrites reports whether any relation of the policy is writable: only
// then may clients ask for READ WRITE transactions.
func (p *Policy) HasWrites() bool {
	for _, set := range []map[string]*Relation{p.Relations, p.Internal} {
		for _, r := range set {
			if r.Writes != nil {
				return true
			}
		}
	}
	return false
}

type fileWrites struct {
	Roles     []string          `yaml:"roles"`
	Groups    []string          `yaml:"groups"`
	Insert    bool              `yaml:"insert"`
	Update    []string          `yaml:"update"`
	Delete    bool              `yaml:"delete"`
	Fill      map[string]string `yaml:"fill"`
	ReadOnly  []string          `yaml:"read_only"`
	Returning *bool             `yaml:"returning"`
}

// parseWrites validates a relation's writes: field (where names the relation).
func (p *Policy) parseWrites(fw *fileWrites, r *Relation, where string) (*Writes, error) {
	if fw == nil {
		return nil, nil
	}
	where += ".writes"
	if r.Shared {
		return nil, fmt.Errorf("%s: shared relations cannot be written (every tenant reads them)", where)
	}
	w := &Writes{Insert: fw.Insert, Delete: fw.Delete, Groups: fw.Groups, Fill: map[string]FillValue{},
		NoReturning: fw.Returning != nil && !*fw.Returning}
	if len(fw.Roles) == 0 {
		return nil, fmt.Errorf("%s.roles: missing (the connection roles that may write)", where)
	}
	for i, s := range fw.Roles {
		role := Role(s)
		if !role.Valid() || role == RoleNoAccess {
			return nil, fmt.Errorf("%s.roles[%d]: unknown role %q (want viewer, restricted_querier or querier)", where, i, s)
		}
		w.Roles = append(w.Roles, role)
	}
	for i, g := range fw.Groups {
		if g == "" || !p.KnowsGroup(g) {
			return nil, fmt.Errorf("%s.groups[%d]: unknown group %q", where, i, g)
		}
	}
	if !w.Insert && !w.Delete && len(fw.Update) == 0 {
		return nil, fmt.Errorf("%s: opens nothing (want insert, update or delete)", where)
	}
	w.Fill[r.TenantColumn] = FillValue{Session: true, Kind: PlaceTenant}
	for col, src := range fw.Fill {
		if col == r.TenantColumn {
			return nil, fmt.Errorf("%s.fill.%s: the tenant column is always filled with the session's tenant", where, col)
		}
		v, err := parseFill(src)
		if err != nil {
			return nil, fmt.Errorf("%s.fill.%s: %w", where, col, err)
		}
		w.Fill[col] = v
	}
	w.ReadOnly = append(w.ReadOnly, fw.ReadOnly...)
	for i, col := range fw.Update {
		switch {
		case col == r.TenantColumn:
			return nil, fmt.Errorf("%s.update[%d]: the tenant column cannot be updated (that moves a row to another tenant)", where, i)
		case w.Fill[col] != (FillValue{}):
			return nil, fmt.Errorf("%s.update[%d]: column %q is filled from the session and cannot be updated", where, i, col)
		case slices.Contains(w.ReadOnly, col):
			return nil, fmt.Errorf("%s.update[%d]: column %q is read_only", where, i, col)
		}
		for _, f := range r.Filters {
			if slices.Contains(f.Columns, col) {
				return nil, fmt.Errorf("%s.update[%d]: column %q is used by a filter (an update could move rows out of the session's sight)", where, i, col)
			}
		}
		w.Update = append(w.Update, col)
	}
	return w, nil
}

func parseFill(src string) (FillValue, error) {
	s := strings.TrimSpace(src)
	if !strings.Contains(s, "{{") && !strings.Contains(s, "}}") {
		return FillValue{Literal: src}, nil
	}
	name, ok1 := strings.CutPrefix(s, "{{")
	name, ok2 := strings.CutSuffix(name, "}}")
	if !ok1 || !ok2 || strings.Contains(name, "{{") || strings.Contains(name, "}}") {
		return FillValue{}, fmt.Errorf("want one placeholder or a constant, got %q", src)
	}
	switch strings.TrimSpace(name) {
	case "tenant":
		return FillValue{Session: true, Kind: PlaceTenant}, nil
	case "external_id":
		return FillValue{Session: true, Kind: PlaceExternalID}, nil
	case "email":
		return FillValue{Session: true, Kind: PlaceEmail}, nil
	}
	return FillValue{}, fmt.Errorf("unknown placeholder %s (want {{tenant}}, {{external_id}} or {{email}})", s)
}

// checkWrites checks a relation's writes against the catalog: every column
// it names exists.
func checkWrites(r *Relation, cr *CatalogRelation, where string) error {
	w := r.Writes
	if w == nil {
		return nil
	}
	where += ".writes"
	named := func(field string, cols []string) error {
		for _, c := range cols {
			if _, ok := cr.Column(c); !ok {
				return fmt.Errorf("%s.%s: column %q does not exist", where, field, c)
			}
		}
		return nil
	}
	fill := make([]string, 0, len(w.Fill))
	for c := range w.Fill {
		fill = append(fill, c)
	}
	sort.Strings(fill)
	for _, f := range []struct {
		field string
		cols  []string
	}{{"update", w.Update}, {"read_only", w.ReadOnly}, {"fill", fill}} {
		if err := named(f.field, f.cols); err != nil {
			return err
		}
	}
	return nil
}

// uniqueKeysQuery lists the unique indexes of a relation and whether each
// has the given column among its key columns.
const uniqueKeysQuery = `
SELECT i.relname::text,
       EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
               WHERE a.attrelid = x.indrelid AND a.attname = $3 AND a.attnum = ANY (x.indkey::smallint[]))
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class c ON c.oid = x.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
WHERE x.indisunique AND n.nspname = $1 AND c.relname = $2
ORDER BY 1`

// WriteWarnings names the unique indexes of writable relations that lack
// the tenant column. Such a key is an oracle pgwarden cannot close: an
// INSERT or UPDATE that collides with another tenant's key fails with
// 23505 (and PostgreSQL's detail shows the key), which tells the session
// that the key exists. `pgwarden policy check --catalog` prints them.
func WriteWarnings(ctx context.Context, conn *pgx.Conn, p *Policy) ([]string, error) {
	var out []string
	for _, set := range []struct {
		field string
		rels  map[string]*Relation
	}{{"relations", p.Relations}, {"internal.relations", p.Internal}} {
		keys := make([]string, 0, len(set.rels))
		for k, r := range set.rels {
			if r.Writes != nil {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			r := set.rels[k]
			rows, err := conn.Query(ctx, uniqueKeysQuery, r.Schema, r.Name, r.TenantColumn)
			if err != nil {
				return nil, fmt.Errorf("policy: unique keys of %s: %w", k, err)
			}
			for rows.Next() {
				var index string
				var hasTenant bool
				if err := rows.Scan(&index, &hasTenant); err != nil {
					rows.Close()
					return nil, fmt.Errorf("policy: unique keys of %s: %w", k, err)
				}
				if !hasTenant {
					out = append(out, fmt.Sprintf("%s: %s.%q.writes: unique index %s does not include the tenant column %s: "+
						"a write that collides with another tenant's key fails with 23505, which tells the session the key exists",
						p.File, set.field, k, index, r.TenantColumn))
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("policy: unique keys of %s: %w", k, err)
			}
		}
	}
	return out, nil
}
