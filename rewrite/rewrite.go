package rewrite

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"github.com/pganalyze/pg_query_go/v5/parser"
	"google.golang.org/protobuf/proto"

	"github.com/pgwarden/pgwarden/internal/memrelease"
	"github.com/pgwarden/pgwarden/internal/pgmarshal"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// releaseBytes is the statement length from which a rewrite gives the
// memory of its parse trees back to the system as it goes (see
// internal/memrelease): its trees are then tens of MiB or more, and a
// collection of the Go heap costs little beside their parse.
const releaseBytes = 1 << 20

// Options tunes a Rewriter.
type Options struct {
	// CacheBytes bounds the rewrite cache (keys plus values); 0 means 64 MiB
	// and a negative value disables the cache.
	CacheBytes int64
	// MaxStatementTimeout caps SET statement_timeout; 0 means no cap.
	MaxStatementTimeout time.Duration
	// MaxWorkMem caps SET work_mem, in bytes; 0 means no cap.
	MaxWorkMem int64
	// Database is the warehouse name clients connect with: current_database()
	// and pg_database answer it instead of the real database's name. Empty
	// leaves both as they are.
	Database string
	// Fingerprints fills Result.Fingerprint, which costs a second parse of
	// the statement: for audit and statement logs, which group by it.
	Fingerprints bool
	// Gate bounds rewrites across the process (budget.go): give every
	// Rewriter of a process the same one. Nil gives the Rewriter a gate of
	// its own with the default limits.
	Gate *Gate
	// TenantSchemas knows the tenants' schemas; required when the policy
	// has relations with tenancy: schema (schematenancy.go).
	TenantSchemas TenantSchemaSource
}

const defaultCacheBytes = 64 << 20

// maxDepth bounds the walk's recursion (PostgreSQL's own parser limits depth
// too; this keeps the walk's stack small whatever the input).
const maxDepth = 2000

// Rewriter rewrites statements for sessions under one policy and catalog.
// It is safe for concurrent use.
type Rewriter struct {
	pol   *policy.Policy
	opts  Options
	embed map[string]*relTemplate // by schema.name
	inter map[string]*relTemplate
	cache *cache
	gate  *Gate
	// personal is set when a filter names {{external_id}} or {{email}}.
	// Otherwise a rewrite never sees them (impersonal) nor keys its cache
	// entry by them, so that a tenant's users share rewrites: a dashboard
	// that a thousand users open is rewritten once.
	personal bool
	// fills is set when a writable relation fills a column from the
	// external id or email (policy.Writes.Fill): an INSERT then depends on
	// them, and only an INSERT (fills are for inserts), whose text says so.
	fills   bool
	flights flights
	// bodies caches parsed catalog view bodies (catalog.go).
	bodies *bodyCache
	// cat has the column lists of the warehouse's pg_catalog relations.
	cat *policy.Catalog
	// tenancy is schema per tenant's state (schematenancy.go).
	tenancy *schemaTenancy
	// fenceText keeps the deparsed text of fences (fencetext.go).
	fenceText *fenceCache
	// keyBufs holds rewriteFor's key buffers (*[]byte), reused from one
	// statement to the next: a buffer on its stack would be zeroed at every
	// statement, and a statement longer than it would allocate its key.
	keyBufs sync.Pool
}

// relTemplate is what New precomputes per exposed relation: everything that
// does not depend on the session.
type relTemplate struct {
	rel  *policy.Relation
	cat  *policy.CatalogRelation
	cols []colTemplate
	// guard[i] is set when filter i could fail or raise on a row (a cast, a
	// function, arithmetic): it then runs only on the tenant's own rows.
	guard []bool
}

type colTemplate struct {
	name     string
	typ      *pg_query.TypeName
	rule     *policy.ColumnRule // nil when unrestricted
	masked   *pg_query.Node     // the mask expression, when rule has a mask
	colIndex int
}

// New builds a Rewriter. The catalog must describe every relation the policy
// lists.
func New(p *policy.Policy, cat *policy.Catalog, opts Options) (*Rewriter, error) {
	if p == nil || cat == nil {
		return nil, errors.New("rewrite: nil policy or catalog")
	}
	if err := p.Check(cat); err != nil {
		return nil, err
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = defaultCacheBytes
	}
	r := &Rewriter{pol: p, opts: opts, gate: opts.Gate, bodies: &bodyCache{}, cat: cat, fenceText: newFenceCache()}
	var err error
	if r.gate == nil {
		if r.gate, err = NewGate(Limits{}); err != nil {
			return nil, err
		}
	}
	r.personal = personal(p.Relations) || personal(p.Internal)
	if r.tenancy, err = newSchemaTenancy(p, opts.TenantSchemas); err != nil {
		return nil, err
	}
	r.fills = fillsPersonal(p.Relations) || fillsPersonal(p.Internal)
	if r.embed, err = templates(p.Relations, cat); err != nil {
		return nil, err
	}
	if p.Internal != nil {
		if r.inter, err = templates(p.Internal, cat); err != nil {
			return nil, err
		}
	} else {
		r.inter = r.embed
	}
	if opts.CacheBytes > 0 {
		r.cache = newCache(opts.CacheBytes)
	}
	return r, nil
}

// RowSecurity is the policy's row_security block, or nil: what the proxy
// sets on warehouse connections for the warehouse's own policies.
func (r *Rewriter) RowSecurity() *policy.RowSecurity { return r.pol.RowSecurity }

// personal reports whether a filter of rels names the session's external id
// or email.
func personal(rels map[string]*policy.Relation) bool {
	for _, rel := range rels {
		for _, f := range rel.Filters {
			for _, ph := range f.Placeholders {
				if ph.Kind == policy.PlaceExternalID || ph.Kind == policy.PlaceEmail {
					return true
				}
			}
		}
	}
	return false
}

// impersonal is id as a rewrite may see it: without its external id and
// email unless the policy's filters name them (see Rewriter.personal).
func (r *Rewriter) impersonal(id *policy.Identity) *policy.Identity {
	if r.personal || id.ExternalID == "" && id.Email == "" {
		return id
	}
	cp := *id
	cp.ExternalID, cp.Email = "", ""
	return &cp
}

func templates(rels map[string]*policy.Relation, cat *policy.Catalog) (map[string]*relTemplate, error) {
	out := make(map[string]*relTemplate, len(rels))
	for key, rel := range rels {
		cr, _ := cat.Relation(rel.Schema, rel.Name)
		t := &relTemplate{rel: rel, cat: cr}
		for _, f := range rel.Filters {
			t.guard = append(t.guard, rel.TenantColumn != "" && !plainFilter(f.Expr))
		}
		for i, c := range cr.Columns {
			tn, err := parseTypeName(c.Type)
			if err != nil {
				return nil, fmt.Errorf("rewrite: relation %s column %s: %w", key, c.Name, err)
			}
			ct := colTemplate{name: c.Name, typ: tn, rule: rel.Columns[c.Name], colIndex: i}
			if ct.rule != nil && ct.rule.Mask != nil {
				ct.masked = maskExpr(ct.rule.Mask, c, tn)
			}
			t.cols = append(t.cols, ct)
		}
		out[key] = t
	}
	return out, nil
}

func maskExpr(m *policy.Mask, c policy.Column, tn *pg_query.TypeName) *pg_query.Node {
	switch m.Kind {
	case policy.MaskNull:
		return nullOf(tn)
	case policy.MaskRedact:
		return redactConst(policy.TypeFamily(c.Type), tn)
	case policy.MaskHash:
		return hashMask(c.Name)
	case policy.MaskEmail:
		return emailMask(c.Name)
	case policy.MaskLast4:
		return keepMask(c.Name, 0, 4)
	case policy.MaskPartial:
		return keepMask(c.Name, m.KeepFirst, m.KeepLast)
	case policy.MaskSQL:
		return proto.Clone(m.Expr).(*pg_query.Node)
	}
	return nullOf(tn) // unreachable: the policy validated the kind; fail closed anyway
}

// Rewrite parses sql (one or more statements) and returns what may run on the
// warehouse for the session id. Every error is a *pgerr.Error. A Result may
// come from the cache and be shared with other callers: do not modify it.
//
// Each reference to an exposed relation, at any depth, becomes a fenced
// subquery in place (see fencedSubquery); anything the rewriter does not know
// how to check is refused.
//
// The rewrite stops when ctx ends (57014, or the context's cause when that
// is a *pgerr.Error) and within the limits of the Rewriter's Gate (54000
// past its budget, 53200 when memory is short).
func (r *Rewriter) Rewrite(ctx context.Context, sql string, id *policy.Identity) (*Result, error) {
	return r.rewriteFor(ctx, sql, id, nil, nil)
}

// HitBuf is room for one template hit's result (template.hit), which
// RewriteInto fills in place of a new allocation: a session that runs one
// statement at a time keeps one and reuses it. Its zero value is ready.
type HitBuf struct{ one hitResult }

// RewriteInto is Rewrite, except that a query answered by its template is
// written into buf. Such a result, its SQL and its prepared form's
// parameters are valid until the next RewriteInto with buf; a caller that
// keeps any of them longer copies them. Every other result is Rewrite's
// own, as before.
func (r *Rewriter) RewriteInto(ctx context.Context, sql string, id *policy.Identity, buf *HitBuf) (*Result, error) {
	return r.rewriteFor(ctx, sql, id, nil, buf)
}

// RewriteParams is Rewrite for a statement the client prepares with the
// extended protocol's Parse, given the parameter types it declared there
// (0, or none, for unspecified). Knowing them lets comparisons of columns
// with parameters other than = be pushed into the fence (pushdown.go).
func (r *Rewriter) RewriteParams(ctx context.Context, sql string, id *policy.Identity, paramTypes []uint32) (*Result, error) {
	return r.rewriteFor(ctx, sql, id, &params{types: paramTypes}, nil)
}

func (r *Rewriter) rewriteFor(ctx context.Context, sql string, id *policy.Identity, prm *params, buf *HitBuf) (res *Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, pgerr.New(pgerr.InternalError, "internal error in statement rewrite")
		}
	}()
	if id == nil {
		return nil, pgerr.Denied("permission denied: no session")
	}
	if id.Role == policy.RoleNoAccess || !id.Role.Valid() {
		return nil, pgerr.Denied("permission denied: connection role %s has no access", roleName(id.Role))
	}
	if id.Tenant != "" && !r.pol.KnowsTenant(id.Tenant) {
		return nil, pgerr.Denied("permission denied: unknown tenant")
	}
	ts := r.tenantFor(ctx, id)
	// A statement too long to cache skips the cache, its key's copy of the
	// text and the template's second rewrite.
	cached := r.cache != nil && r.cache.fits(len(sql))
	personal := r.personal || r.fills && mayInsert(sql)
	if !cached {
		if !personal {
			id = r.impersonal(id)
		}
		return r.rewriteMiss(ctx, sql, id, ts, prm.clone(), false, "", "")
	}
	// The keys are built in a buffer that a statement the cache answers
	// does not let escape: only a miss copies them.
	kbuf, _ := r.keyBufs.Get().(*[]byte)
	if kbuf == nil {
		kbuf = new([]byte)
		*kbuf = make([]byte, 0, keyBufBytes)
	}
	defer r.putKeyBuf(kbuf)
	kb := appendIdentityKey((*kbuf)[:0], r.pol.Version(), id, personal)
	kb = appendParamsKey(kb, prm)
	kb = appendTenantKey(kb, ts)
	idLen := len(kb)
	kb = append(kb, sql...)
	*kbuf = kb
	if res, ok := r.cache.getBytes(kb); ok {
		return res, nil
	}
	if res := r.templateHit(ctx, kb[:idLen], sql, buf); res != nil {
		return res, nil
	}
	idKey := string(kb[:idLen])
	key := idKey + sql
	if !personal {
		id = r.impersonal(id)
	}
	own := prm.clone()
	// Sessions that share a key and miss together (a dashboard opened by
	// many users at once, every session after a policy reload) wait for
	// one rewrite instead of queueing at the gate for the same work.
	return r.flights.do(ctx, key, func() (*Result, error) {
		return r.rewriteMiss(ctx, sql, id, ts, own, true, idKey, key)
	})
}

// keyBufBytes is the room a new key buffer of rewriteFor has: an identity
// and a statement of a few hundred bytes. One grown past keyBufMax (a
// statement that long) is not kept.
const (
	keyBufBytes = 512
	keyBufMax   = 64 << 10
)

// putKeyBuf gives a key buffer of rewriteFor back once nothing refers to
// its bytes: a miss copies its keys (rewriteMiss keeps strings, never the
// buffer).
func (r *Rewriter) putKeyBuf(b *[]byte) {
	if cap(*b) <= keyBufMax {
		r.keyBufs.Put(b)
	}
}

// hitBytes is the longest statement that templateHit answers: a template
// hit is a scan of the statement and a copy of its template, a few
// microseconds at this length, so it takes no slot of the gate; longer
// statements go through the gate's checks as every rewrite does.
const hitBytes = 8 << 10

// templateHit answers a statement of at most hitBytes whose shape has a
// template (template.go) without the gate and the single flight that a
// rewrite goes through: nil when it cannot, and rewriteMiss then does what
// it always does. idKey is the key's identity part, in a buffer that
// templateHit may append to. What it answers is rewriteMiss's answer for
// the same template.
func (r *Rewriter) templateHit(ctx context.Context, idKey []byte, sql string, buf *HitBuf) *Result {
	if len(sql) > hitBytes || int64(len(sql)) > r.gate.lim.MemoryBytes {
		return nil
	}
	var spanBuf [16]span
	spans, ok, sure := lexSpans(sql, spanBuf[:0])
	if !ok || !sure || len(spans) > maxParams {
		return nil // scanned by PostgreSQL's lexer in rewriteMiss, or not a template
	}
	t, ok := r.cache.getTemplateBytes(appendTemplateKey(idKey, sql, spans))
	// A cancelled statement gets its answer from rewriteMiss, as it did
	// before templates were answered here.
	if !ok || !t.ok || ctx.Err() != nil {
		return nil
	}
	var constBuf [16]string
	var kindBuf [16]byte
	consts, kinds := constBuf[:0], kindBuf[:0]
	for _, s := range spans {
		consts = append(consts, sql[s.start:s.end])
		kinds = append(kinds, s.kind)
	}
	return t.hit(consts, kinds, buf)
}

// rewriteMiss rewrites a statement the cache did not answer, within a slot
// of the gate; cached says whether its result may be cached, under key.
func (r *Rewriter) rewriteMiss(ctx context.Context, sql string, id *policy.Identity, ts *tenantState, prm *params, cached bool, idKey, key string) (*Result, error) {
	m, perr := r.gate.enter(ctx, len(sql))
	if perr != nil {
		return nil, perr
	}
	defer r.gate.leave(m)
	if !cached {
		res, perr := r.rewriteAs(m, sql, id, ts, prm, nil)
		if perr != nil {
			return nil, perr
		}
		return res, nil
	}
	n, ok := normalize(m, sql)
	if m.check() {
		return nil, m.err
	}
	if !ok {
		return r.rewriteCached(m, sql, key, id, ts, prm, prm == nil && constantFree(sql))
	}
	if len(n.consts) > maxParams {
		// No prepared form can take so many (prepared.go), and a template
		// would cost a second rewrite for a shape that hardly repeats.
		return r.rewriteCached(m, sql, key, id, ts, prm, false)
	}
	tkey := n.key(idKey)
	if t, ok := r.cache.getTemplate(tkey); ok {
		if t.ok {
			res := t.instantiate(m, n.consts)
			res.Prepared = t.prepared(m, n.consts, n.kinds)
			if m.check() {
				return nil, m.err
			}
			return res, nil
		}
		return r.rewriteCached(m, sql, key, id, ts, prm, false)
	}
	res, perr := r.rewriteAs(m, sql, id, ts, prm, nil)
	if perr != nil {
		return nil, perr
	}
	res.Cacheable = true
	t := noTemplate
	// The text has no parameters of its own (normalize), so prm is moot.
	if tres, perr := r.rewriteAs(m, n.text, id, ts, nil, n.kinds); perr == nil {
		tres.Fingerprint, tres.Cacheable = res.Fingerprint, true
		if cand := newTemplate(m, tres, n.kinds); cand.ok && cand.matches(m, n.consts, res) {
			t = cand
			// Before the result is shared: the same text again is the
			// same prepared statement.
			res.Prepared = t.prepared(m, n.consts, n.kinds)
		}
	}
	// A stopped rewrite decided nothing about the shape: nothing is kept.
	if m.check() {
		return nil, m.err
	}
	r.cache.putTemplate(tkey, t)
	r.cache.put(key, res)
	return res, nil
}

// rewriteCached rewrites sql in full and caches the result under key. A
// statement without constants or parameters (constFree) that is a single
// query gets its own rewrite as its prepared form, so that repeating it (a
// dashboard's refresh) reuses the warehouse's plan.
func (r *Rewriter) rewriteCached(m *meter, sql, key string, id *policy.Identity, ts *tenantState, prm *params, constFree bool) (*Result, error) {
	res, perr := r.rewriteAs(m, sql, id, ts, prm, nil)
	if perr != nil {
		return nil, perr
	}
	res.Cacheable = true
	if constFree && len(res.Statements) == 1 && res.Statements[0].Kind == KindQuery {
		res.Prepared = &Prepared{SQL: res.SQL, Probe: &Probe{}}
	}
	r.cache.put(key, res)
	return res, nil
}

func roleName(r policy.Role) string {
	if r == "" {
		return "(none)"
	}
	return string(r)
}

// rewrite rewrites sql in full, within m. prm is set for a statement of the
// extended protocol's Parse; kinds when sql is a template's placeholder text
// (see template.go).
func (r *Rewriter) rewrite(m *meter, sql string, id *policy.Identity, prm *params, kinds []byte) (*Result, *pgerr.Error) {
	return r.rewriteAs(m, sql, id, r.tenantFor(context.Background(), id), prm, kinds)
}

// rewriteAs is rewrite for the session's tenant schema ts (tenantFor).
func (r *Rewriter) rewriteAs(m *meter, sql string, id *policy.Identity, ts *tenantState, prm *params, kinds []byte) (*Result, *pgerr.Error) {
	// A template's text (kinds set) is a statement that passed this check
	// with its constants turned into placeholders: tokens of the same
	// weight (none), so the same estimate.
	large := len(sql) >= releaseBytes
	if kinds == nil {
		if perr := checkDepth(sql); perr != nil {
			return nil, perr
		}
		if large {
			memrelease.Release() // the scan's tokens, in Go and in C
		}
	}
	tree, err := parse(sql, large)
	if err != nil {
		var pe *parser.Error
		if errors.As(err, &pe) {
			return nil, pgerr.Syntax(int32(pe.Cursorpos), "%s", pe.Message)
		}
		// Not a parser error: the tree did not survive decoding (nesting
		// deeper than protobuf's limit, which checkDepth should prevent).
		return nil, errTooDeep()
	}
	if m.check() {
		return nil, m.err
	}
	tmpl := r.embed
	if id.Kind == policy.KindInternal {
		tmpl = r.inter
	}
	res := &Result{}
	if len(tree.Stmts) == 0 {
		res.Statements = []Statement{{Kind: KindEmpty}}
		return res, nil
	}
	sqls := make([]string, 0, len(tree.Stmts))
	content := r.contentFor(id)
	for i, raw := range tree.Stmts {
		p := &pass{r: r, m: m, sql: sql, id: id, tmpl: tmpl, kinds: kinds, params: prm, tenant: ts}
		st := p.statement(raw.Stmt)
		if p.err != nil {
			return nil, p.err
		}
		if content != nil {
			l, perr := checkContent(content, sql, raw, st.Kind, p.relations, id)
			if perr != nil {
				return nil, perr
			}
			if l != nil {
				res.Learned = append(res.Learned, *l)
			}
		}
		raw.StmtLocation, raw.StmtLen = 0, 0
		var fetch string
		if f := raw.Stmt.GetFetchStmt(); f != nil {
			fetch = fetchSQL(f)
		}
		// Fences go to the deparser as placeholders, their texts in after
		// (fencetext.go); a large statement's tree is deparsed whole.
		var plan *fencePlan
		if !large {
			plan = p.placeFences(tree.Version)
		}
		stmts := singleStatement(tree.Version, raw)
		if plan != nil {
			stmts = plan.statements(tree.Version, raw)
		}
		pb, err := marshal(stmts, large)
		if plan != nil {
			plan.swapBack()
		}
		if err != nil {
			return nil, pgerr.Unsupported("statement cannot be rewritten: %v", err)
		}
		// The deparse needs only pb: the Go tree of this statement goes
		// before the C deparser builds its own, so that the two do not
		// add up (a 16 MiB IN list makes each about 450 MiB). A small
		// one is kept while its fences are placeholders, to deparse it
		// whole should their texts not fit in (fencePlan.splice).
		sort.Strings(p.relations)
		st.Relations = p.relations
		whole := raw
		if plan == nil {
			whole = nil
		}
		stmts, tree.Stmts[i], raw, p = nil, nil, nil, nil
		if large {
			memrelease.Release()
		}
		out, err := parser.DeparseFromProtobuf(pb)
		pb = nil
		if large {
			memrelease.ReleaseC() // the C deparser's trees
		}
		if whole != nil {
			spliced, ok := "", false
			if err == nil {
				spliced, ok = plan.splice(out)
			}
			if ok {
				out = spliced
			} else {
				plan.restore()
				if pb, err = marshal(singleStatement(tree.Version, whole), false); err == nil {
					out, err = parser.DeparseFromProtobuf(pb)
				}
			}
		}
		whole, plan = nil, nil
		if err != nil {
			return nil, pgerr.Unsupported("statement cannot be rewritten: %v", err)
		}
		if m.check() {
			return nil, m.err
		}
		if fetch != "" {
			out = fetch
		}
		st.SQL = out
		res.Statements = append(res.Statements, st)
		sqls = append(sqls, out)
	}
	res.SQL = strings.Join(sqls, "; ")
	// Not asked for, or a template (which takes its first statement's).
	if kinds != nil || !r.opts.Fingerprints {
		return res, nil
	}
	fp, err := pg_query.Fingerprint(sql)
	if large {
		memrelease.ReleaseC() // its parse, as deep as the first
	}
	if err == nil {
		res.Fingerprint = fp
	}
	return res, nil
}

// parse is pg_query.Parse. For a large statement, it gives what the C
// parser freed back to the system before the Go tree is built, so that
// the two do not add up.
func parse(sql string, large bool) (*pg_query.ParseResult, error) {
	pb, err := parser.ParseToProtobuf(sql)
	if err != nil {
		return nil, err
	}
	if large {
		memrelease.ReleaseC()
	}
	// pgmarshal decodes what proto.Unmarshal would, with half the
	// allocations and no reflection; a large statement's tree is decoded
	// by the protobuf runtime, which peaks lower (see marshal).
	tree := &pg_query.ParseResult{}
	if large {
		err = proto.Unmarshal(pb, tree)
	} else {
		err = pgmarshal.Unmarshal(pb, tree)
	}
	if err != nil {
		return nil, err
	}
	return tree, nil
}

// marshal encodes tree for the deparser. pgmarshal writes what
// proto.Marshal would, a few times faster; but its side table of sizes and
// its combined allocations raise a large statement's peak memory (from 38
// to 56 times an 8 MiB IN list, TestLargeStatementPeakMemory), where the
// protobuf runtime keeps the sizes in the messages themselves.
func marshal(tree *pg_query.ParseResult, large bool) ([]byte, error) {
	if large {
		return proto.Marshal(tree)
	}
	return pgmarshal.Marshal(tree)
}

// plainFilter reports whether a policy filter is made only of column
// references, constants, placeholders and equality tests, which cannot fail
// or raise on a row's value, so it may run before the tenant filter.
func plainFilter(n *pg_query.Node) bool {
	if n == nil {
		return true
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_ColumnRef, *pg_query.Node_AConst, *pg_query.Node_ParamRef:
		return true
	case *pg_query.Node_BoolExpr:
		return plainFilters(x.BoolExpr.Args)
	case *pg_query.Node_NullTest:
		return plainFilter(x.NullTest.Arg)
	case *pg_query.Node_List:
		return plainFilters(x.List.Items)
	case *pg_query.Node_AExpr:
		e := x.AExpr
		switch e.Kind {
		case pg_query.A_Expr_Kind_AEXPR_OP, pg_query.A_Expr_Kind_AEXPR_OP_ANY, pg_query.A_Expr_Kind_AEXPR_IN:
		default:
			return false
		}
		if len(e.Name) != 1 {
			return false
		}
		if op := e.Name[0].GetString_().GetSval(); op != "=" && op != "<>" {
			return false
		}
		return plainFilter(e.Lexpr) && plainFilter(e.Rexpr)
	}
	return false
}

func plainFilters(ns []*pg_query.Node) bool {
	for _, n := range ns {
		if !plainFilter(n) {
			return false
		}
	}
	return true
}

// PolicyVersion names the version of the policy the rewriter enforces
// (audit records carry it; see policy.Policy.Version).
func (r *Rewriter) PolicyVersion() string { return r.pol.Version() }
