package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// TenantSchema is what the warehouse has for one tenant's schema: usable
// when Problems is empty, refused for the tenant otherwise.
type TenantSchema struct {
	Tenant string
	// Schema is the tenant's physical schema.
	Schema string
	// Problems say how the schema differs from the logical model (or that
	// it does not exist); the tenant's schema-per-tenant relations are then
	// refused rather than served from a schema of another shape.
	Problems []string
	// Gen changes whenever the entry is read again: rewrite caches key by it.
	Gen uint64
}

// OK reports whether the schema may be served.
func (ts *TenantSchema) OK() bool { return ts != nil && len(ts.Problems) == 0 }

// SchemaLoader reads the relations named names (unqualified) of one
// warehouse schema; exists is false when the schema does not exist.
type SchemaLoader func(ctx context.Context, schema string, names []string) (rels []CatalogRelation, exists bool, err error)

// TenantCatalog knows the tenants' schemas. Each is read from the warehouse
// on its tenant's first use (so a tenant created after start is served
// without a restart) and compared with the logical model; a schema found
// missing or different is read again on use, at most once per Retry. It is
// safe for concurrent use; a policy reload builds a new one.
type TenantCatalog struct {
	pol   *Policy
	model *Catalog
	load  SchemaLoader
	// Retry is the least time between two reads of a schema that was
	// missing, different or unreadable.
	retry time.Duration
	now   func() time.Time
	// loads bounds the warehouse reads in flight at once.
	loads chan struct{}

	mu      sync.Mutex
	gen     uint64
	entries map[string]*tenantEntry // by kind and physical schema
}

type tenantEntry struct {
	done chan struct{} // closed when ts/err are set
	ts   *TenantSchema
	err  error
	at   time.Time
}

// DefaultTenantRetry is TenantCatalog's retry interval when none is given.
const DefaultTenantRetry = 5 * time.Second

// maxTenantLoads bounds concurrent schema reads: a burst of new tenants
// queues instead of opening a connection each.
const maxTenantLoads = 2

// NewTenantCatalog returns a catalog of p's tenant schemas checked against
// model (the catalog LoadCatalog read for p). retry 0 is DefaultTenantRetry;
// now nil is time.Now.
func NewTenantCatalog(p *Policy, model *Catalog, load SchemaLoader, retry time.Duration, now func() time.Time) (*TenantCatalog, error) {
	if p == nil || model == nil || load == nil {
		return nil, errors.New("policy: tenant catalog needs a policy, a model catalog and a loader")
	}
	if retry <= 0 {
		retry = DefaultTenantRetry
	}
	if now == nil {
		now = time.Now
	}
	return &TenantCatalog{pol: p, model: model, load: load, retry: retry, now: now,
		loads: make(chan struct{}, maxTenantLoads), entries: map[string]*tenantEntry{}}, nil
}

// TenantSchema returns tenant's schema for sessions of kind k, reading it
// from the warehouse when it is not known yet (or was found wanting more
// than Retry ago). The error is for a read that failed; a schema that
// does not exist or differs comes back with Problems.
func (c *TenantCatalog) TenantSchema(ctx context.Context, k Kind, tenant string) (*TenantSchema, error) {
	ts := c.pol.TenantSchemasFor(k)
	schema, ok := ts.SchemaFor(tenant)
	if !ok {
		return &TenantSchema{Tenant: tenant, Problems: []string{"the policy gives this tenant no schema"}}, nil
	}
	key := string(k) + "\x00" + schema
	for {
		c.mu.Lock()
		e := c.entries[key]
		if e != nil {
			select {
			case <-e.done:
				if (e.err == nil && e.ts.OK()) || c.now().Sub(e.at) < c.retry {
					c.mu.Unlock()
					return e.result(tenant)
				}
				e = nil // stale: read again
			default:
			}
		}
		if e != nil { // a read is under way: wait for it
			c.mu.Unlock()
			select {
			case <-e.done:
				continue
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		e = &tenantEntry{done: make(chan struct{})}
		c.entries[key] = e
		c.gen++
		gen := c.gen
		c.mu.Unlock()
		// The read is the tenant's, not this caller's: a client that goes
		// away must not leave a failed read for the next one to find.
		go func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), maxTenantRead)
			defer cancel()
			ts, err := c.read(rctx, k, schema, gen)
			c.mu.Lock()
			e.ts, e.err, e.at = ts, err, c.now()
			close(e.done)
			c.mu.Unlock()
		}()
	}
}

// maxTenantRead bounds one read of a tenant schema (the loader's connect
// timeout usually ends it sooner).
const maxTenantRead = time.Minute

func (e *tenantEntry) result(tenant string) (*TenantSchema, error) {
	if e.err != nil {
		return nil, e.err
	}
	ts := *e.ts
	ts.Tenant = tenant
	return &ts, nil
}

func (c *TenantCatalog) read(ctx context.Context, k Kind, schema string, gen uint64) (*TenantSchema, error) {
	select {
	case c.loads <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	defer func() { <-c.loads }()
	names := c.pol.schemaRelationNames(k)
	rels, exists, err := c.load(ctx, schema, names)
	if err != nil {
		return nil, fmt.Errorf("policy: read tenant schema %s: %w", schema, err)
	}
	ts := &TenantSchema{Schema: schema, Gen: gen}
	if !exists {
		ts.Problems = []string{fmt.Sprintf("schema %s does not exist in the warehouse", schema)}
		return ts, nil
	}
	ts.Problems = c.pol.CompareTenantSchema(k, c.model, rels)
	return ts, nil
}

// schemaRelationNames are the (unqualified, sorted) names of the relations
// of kind k's set kept one schema per tenant.
func (p *Policy) schemaRelationNames(k Kind) []string {
	var names []string
	for _, r := range p.RelationsFor(k) {
		if r.Tenancy == TenancySchema {
			names = append(names, r.Name)
		}
	}
	sort.Strings(names)
	return names
}

// CompareTenantSchema lists how a tenant schema's relations (rels, as read
// from it) differ from the logical model: a relation missing, of another
// kind, or with other columns (names, types or order). Relations the model
// does not list are ignored: nobody can name them.
func (p *Policy) CompareTenantSchema(k Kind, model *Catalog, rels []CatalogRelation) []string {
	ts := p.TenantSchemasFor(k)
	have := map[string]*CatalogRelation{}
	for i := range rels {
		have[rels[i].Name] = &rels[i]
	}
	var problems []string
	for _, name := range p.schemaRelationNames(k) {
		want, ok := model.Relation(ts.Logical, name)
		if !ok {
			continue // LoadCatalog's check reports it
		}
		got := have[name]
		switch {
		case got == nil:
			problems = append(problems, fmt.Sprintf("relation %s is missing", name))
			continue
		case got.Partitioned != want.Partitioned:
			problems = append(problems, fmt.Sprintf("relation %s: partitioned in one schema only", name))
		}
		wantCols, gotCols := columnList(want.Columns), columnList(got.Columns)
		if !slices.Equal(wantCols, gotCols) {
			problems = append(problems, fmt.Sprintf("relation %s: columns (%s), want (%s)", name,
				strings.Join(gotCols, ", "), strings.Join(wantCols, ", ")))
		}
	}
	return problems
}

func columnList(cols []Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name + " " + c.Type
	}
	return out
}

const tenantSchemaQuery = `
SELECT c.relname, c.relkind = 'p', a.attname, format_type(a.atttypid, a.atttypmod), a.attnum
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = $1 AND c.relname = ANY($2)
ORDER BY 1, a.attnum`

// ReadSchema reads the relations names of schema over conn (a SchemaLoader's work).
func ReadSchema(ctx context.Context, conn *pgx.Conn, schema string, names []string) ([]CatalogRelation, bool, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		return nil, false, err
	}
	if !exists {
		return nil, false, nil
	}
	rows, err := conn.Query(ctx, tenantSchemaQuery, schema, names)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var rels []CatalogRelation
	for rows.Next() {
		var rel, att, typ string
		var part bool
		var num int16
		if err := rows.Scan(&rel, &part, &att, &typ, &num); err != nil {
			return nil, false, err
		}
		if len(rels) == 0 || rels[len(rels)-1].Name != rel {
			rels = append(rels, CatalogRelation{Schema: schema, Name: rel, Partitioned: part})
		}
		r := &rels[len(rels)-1]
		r.Columns = append(r.Columns, Column{Name: att, Type: typ, Ordinal: int(num)})
	}
	return rels, true, rows.Err()
}

// DialLoader is a SchemaLoader that opens a connection with dial for each
// read (reads are rare: a tenant's first use, or a retry).
func DialLoader(dial func(ctx context.Context) (*pgx.Conn, error)) SchemaLoader {
	return func(ctx context.Context, schema string, names []string) ([]CatalogRelation, bool, error) {
		conn, err := dial(ctx)
		if err != nil {
			return nil, false, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return ReadSchema(ctx, conn, schema, names)
	}
}

// TenantReport is one tenant schema as `pgwarden policy check` reports it.
type TenantReport struct {
	Kind     Kind
	Tenant   string
	Schema   string
	Problems []string
}

// CheckTenantSchemas reads every tenant schema the policy can name over conn
// (the map's, the tenants list's, and the warehouse's schemas that match
// the template) and compares each with the model.
func CheckTenantSchemas(ctx context.Context, conn *pgx.Conn, p *Policy, model *Catalog) ([]TenantReport, error) {
	var out []TenantReport
	for _, k := range []Kind{KindEmbed, KindInternal} {
		if !p.HasSchemaTenancy(k) || (k == KindInternal && p.Internal == nil) {
			continue
		}
		ts := p.TenantSchemasFor(k)
		tenants := map[string]bool{}
		for t := range ts.Map {
			tenants[t] = true
		}
		for _, t := range p.Tenants {
			tenants[t] = true
		}
		if ts.Template != "" {
			pre, suf, _ := strings.Cut(ts.Template, "{{tenant}}")
			rows, err := conn.Query(ctx, "SELECT nspname FROM pg_catalog.pg_namespace WHERE starts_with(nspname, $1) AND right(nspname, $2) = $3 AND length(nspname) > $4",
				pre, len(suf), suf, len(pre)+len(suf))
			if err != nil {
				return nil, fmt.Errorf("policy: list tenant schemas: %w", err)
			}
			names, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return nil, fmt.Errorf("policy: list tenant schemas: %w", err)
			}
			for _, n := range names {
				t := strings.TrimSuffix(strings.TrimPrefix(n, pre), suf)
				if s, ok := ts.SchemaFor(t); ok && s == n && !strings.Contains(suf+t, "{{") {
					tenants[t] = true
				}
			}
		}
		list := make([]string, 0, len(tenants))
		for t := range tenants {
			list = append(list, t)
		}
		sort.Strings(list)
		for _, t := range list {
			rep := TenantReport{Kind: k, Tenant: t}
			s, ok := ts.SchemaFor(t)
			if !ok {
				rep.Problems = []string{"the policy gives this tenant no schema"}
				out = append(out, rep)
				continue
			}
			rep.Schema = s
			rels, exists, err := ReadSchema(ctx, conn, s, p.schemaRelationNames(k))
			if err != nil {
				return nil, fmt.Errorf("policy: read tenant schema %s: %w", s, err)
			}
			if !exists {
				rep.Problems = []string{fmt.Sprintf("schema %s does not exist in the warehouse", s)}
			} else {
				rep.Problems = p.CompareTenantSchema(k, model, rels)
			}
			out = append(out, rep)
		}
	}
	return out, nil
}
