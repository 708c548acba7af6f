package rewrite

import (
	"strconv"
	"strings"
	"unsafe"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/pgerr"
)

// Templates let statements that differ only in their constants share one
// rewrite, as the simple protocol sends them (pgbench -S, dashboards with
// literal filters): without them every new constant misses the cache.
//
// The statement's constants are replaced by placeholders $1..$n, found with
// PostgreSQL's own lexer (pg_query.Scan; lexConstants for the plain subset,
// where it reads the same), so a constant is exactly what the warehouse will
// read as one token. The placeholder text is rewritten once
// per session identity as if $k were a parameter, and each later statement
// of that shape is its template with the $k put back as the original
// constants' text.
//
// Why this is safe: the rewriter already treats parameters as arbitrary
// values (the extended protocol binds them unseen), so a placeholder's
// rewrite is safe for any constant in its place; and a constant token cannot
// be more than a constant. The sites that rewrite constants differently
// from parameters (relation names given as strings, pushdown of literals)
// know the placeholder's token kind or refuse to template. Whether a shape
// templates at all is decided on its first statement by comparing the
// instantiated template with that statement's own rewrite: a shape whose
// rewrite differs is marked and always rewritten in full.

// Constant token kinds, part of the template key: an integer and a string
// in the same place can rewrite differently (pushdown).
const (
	constInt    = 'i'
	constFloat  = 'f'
	constString = 's'
)

// normalized is a statement with its constants replaced by $1..$n.
type normalized struct {
	text   string   // the statement with placeholders
	kinds  []byte   // constInt, constFloat or constString per placeholder
	consts []string // the constants' original text, as the client wrote them
}

// normalize replaces sql's constants by placeholders. It reports false when
// there is nothing to share (no constants) or the text is not fit for it:
// it has parameters of its own, or does not lex.
func normalize(m *meter, sql string) (normalized, bool) {
	if n, ok, sure := lexConstants(sql); sure {
		m.stop(len(n.consts))
		return n, ok
	}
	return scanNormalize(m, sql)
}

// scanNormalize is normalize by PostgreSQL's own lexer, for any text.
func scanNormalize(m *meter, sql string) (normalized, bool) {
	scan, err := pg_query.Scan(sql)
	if err != nil {
		return normalized{}, false
	}
	var n normalized
	var b strings.Builder
	last := 0
	for _, tok := range scan.Tokens {
		if m.stop(1) {
			return normalized{}, false
		}
		var kind byte
		switch tok.Token {
		case pg_query.Token_ICONST:
			kind = constInt
		case pg_query.Token_FCONST:
			kind = constFloat
		case pg_query.Token_SCONST:
			kind = constString
		case pg_query.Token_PARAM:
			return normalized{}, false
		default:
			continue
		}
		start, end := int(tok.Start), int(tok.End)
		if start < last || end <= start || end > len(sql) {
			return normalized{}, false // not the lexer we know: fail closed
		}
		if b.Len() == 0 {
			b.Grow(len(sql) + 8)
		}
		b.WriteString(sql[last:start])
		n.kinds = append(n.kinds, kind)
		n.consts = append(n.consts, sql[start:end])
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(len(n.consts)))
		last = end
	}
	if len(n.consts) == 0 {
		return normalized{}, false
	}
	b.WriteString(sql[last:])
	n.text = b.String()
	return n, true
}

// key is the cache key of n's template: the placeholder text and the kinds,
// after the identity's part of the key (identityKey).
func (n normalized) key(idKey string) string {
	return idKey + "\x00T" + string(n.kinds) + "\x00" + n.text
}

// appendTemplateKey appends to idKey (in its buffer) the rest of the key
// of the template of sql, whose constants lexSpans found: n.key without
// the normalized statement.
func appendTemplateKey(idKey []byte, sql string, spans []span) []byte {
	b := append(idKey, 0, 'T')
	for _, s := range spans {
		b = append(b, s.kind)
	}
	b = append(b, 0)
	return appendNormalized(b, sql, spans)
}

// template is the rewrite of a normalized statement, ready to instantiate.
// A template with ok false records that the shape does not template.
type template struct {
	ok bool
	// res holds everything but the statements' SQL, which is parts[i]
	// with consts[slots[i][j]] between parts[i][j] and parts[i][j+1].
	res   *Result
	parts [][]string
	slots [][]int
	prep  *prepForm // nil: the shape has no prepared form (prepared.go)
}

var noTemplate = &template{}

// errNoTemplate is how the walk declines to rewrite a placeholder: the
// statement then goes through the full rewrite. Never shown to a client.
var errNoTemplate = pgerr.New(pgerr.FeatureNotSupported, "statement shape is not shared")

// newTemplate splits a rewrite of n.text at its placeholders; kinds are
// n's constant kinds.
func newTemplate(m *meter, res *Result, kinds []byte) *template {
	nconsts := len(kinds)
	t := &template{ok: true, res: res}
	for _, st := range res.Statements {
		if st.Kind != KindQuery {
			return noTemplate
		}
		refs, ok := paramTokens(st.SQL)
		if !ok {
			return noTemplate
		}
		var parts []string
		var slots []int
		last := 0
		if m.stop(len(refs)) {
			return noTemplate
		}
		for _, ref := range refs {
			if ref.n < 1 || ref.n > nconsts || ref.start < last {
				return noTemplate
			}
			parts = append(parts, st.SQL[last:ref.start])
			slots = append(slots, ref.n-1)
			last = ref.end
		}
		t.parts = append(t.parts, append(parts, st.SQL[last:]))
		t.slots = append(t.slots, slots)
	}
	if len(res.Statements) == 1 && len(t.slots[0]) > 0 {
		t.prep = newPrepForm(m, res.Statements[0].SQL, kinds)
	}
	if t.prep != nil {
		var b strings.Builder
		for j, k := range t.slots[0] {
			b.WriteString(t.parts[0][j])
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(k + 1))
		}
		b.WriteString(t.parts[0][len(t.slots[0])])
		t.prep.text = b.String()
	}
	return t
}

// instantiate puts consts into the template; m counts them.
func (t *template) instantiate(m *meter, consts []string) *Result {
	if len(t.res.Statements) == 1 {
		// A single statement, as most are: the result and its statement
		// in one allocation.
		one := &struct {
			res Result
			st  [1]Statement
		}{}
		return t.fill(m, &one.res, one.st[:], consts)
	}
	return t.fill(m, &Result{}, make([]Statement, len(t.res.Statements)), consts)
}

// hit is instantiate and prepared at once, for a template hit: a single
// statement of few constants with a prepared form gets its result, its
// statement, that form and (up to hitSQLBytes) its SQL in one allocation.
func (t *template) hit(consts []string, kinds []byte, buf *HitBuf) *Result {
	if len(t.res.Statements) != 1 || t.prep == nil || t.prep.probe.State() == ProbeRejected || !fitsSmall(consts) {
		res := t.instantiate(nil, consts)
		res.Prepared = t.prepared(nil, consts, kinds)
		return res
	}
	n := t.sqlLen(0, consts)
	if n > hitSQLBytes {
		one := &struct {
			res Result
			st  [1]Statement
			pr  smallPrepared
		}{}
		res := t.fill(nil, &one.res, one.st[:], consts)
		res.Prepared = t.preparedIn(nil, consts, kinds, &one.pr)
		return res
	}
	// The SQL's bytes are one's, written here once and never again: the
	// string keeps one alive as long as anybody holds it. In buf, only a
	// query's result: the caller's promise (RewriteInto) is that nothing
	// holds it past the next, and a query's result leaves nothing behind it
	// on the session (a setting, a savepoint, a deallocation) that would.
	var one *hitResult
	if buf != nil && t.res.Statements[0].Kind == KindQuery {
		one = &buf.one
		*one = hitResult{}
	} else {
		one = &hitResult{}
	}
	b := t.appendSQL(one.sql[:0], 0, consts)
	sql := unsafe.String(unsafe.SliceData(b), len(b))
	one.res = *t.res
	one.st[0] = t.res.Statements[0]
	one.st[0].SQL, one.res.SQL = sql, sql
	one.res.Statements = one.st[:]
	one.res.Prepared = t.preparedIn(nil, consts, kinds, &one.pr)
	return &one.res
}

// hitResult is a template hit's result in one allocation (or a HitBuf).
type hitResult struct {
	res Result
	st  [1]Statement
	pr  smallPrepared
	sql [hitSQLBytes]byte
}

// hitSQLBytes is the longest statement SQL that a template hit keeps in its
// result's allocation: with the rest of it (464 bytes) and the 8-byte
// header the allocator gives an object of pointers over 512 bytes, exactly
// its 640-byte size class.
const hitSQLBytes = 168

// sqlLen is the length of statement i's SQL with consts put in.
func (t *template) sqlLen(i int, consts []string) int {
	n := 0
	for _, p := range t.parts[i] {
		n += len(p)
	}
	for _, k := range t.slots[i] {
		n += len(consts[k])
	}
	return n
}

// appendSQL appends statement i's SQL with consts put in to b.
func (t *template) appendSQL(b []byte, i int, consts []string) []byte {
	for j, k := range t.slots[i] {
		b = append(b, t.parts[i][j]...)
		b = append(b, consts[k]...)
	}
	return append(b, t.parts[i][len(t.slots[i])]...)
}

// fill sets res to the template's result with consts put in, its
// statements in sts (one per statement of the template).
func (t *template) fill(m *meter, res *Result, sts []Statement, consts []string) *Result {
	*res = *t.res
	res.Statements = sts
	for i, st := range t.res.Statements {
		n := t.sqlLen(i, consts)
		m.stop(len(t.slots[i]))
		// As strings.Builder does: the bytes are written here once and
		// never again, so the string may be them.
		b := t.appendSQL(make([]byte, 0, n), i, consts)
		st.SQL = unsafe.String(unsafe.SliceData(b), len(b))
		sts[i] = st
	}
	if len(sts) == 1 {
		res.SQL = sts[0].SQL
	} else {
		sqls := make([]string, len(sts))
		for i := range sts {
			sqls[i] = sts[i].SQL
		}
		res.SQL = strings.Join(sqls, "; ")
	}
	return res
}

// matches reports whether the template instantiated with consts is the
// statement's own rewrite, want.
func (t *template) matches(m *meter, consts []string, want *Result) bool {
	got := t.instantiate(m, consts)
	if len(got.Statements) != len(want.Statements) || got.SQL != want.SQL {
		return false
	}
	for i := range got.Statements {
		if got.Statements[i].SQL != want.Statements[i].SQL || got.Statements[i].Kind != want.Statements[i].Kind ||
			strings.Join(got.Statements[i].Relations, ",") != strings.Join(want.Statements[i].Relations, ",") {
			return false
		}
	}
	return true
}

func (t *template) size() int64 {
	if !t.ok {
		return 64
	}
	n := resultSize(t.res) + 64
	if t.prep != nil {
		n += int64(len(t.prep.literal)+len(t.prep.text)) + 48
	}
	for i := range t.parts {
		n += int64(len(t.slots[i]))*8 + int64(len(t.parts[i]))*16
	}
	return n
}

// placeholder reports whether the walk is rewriting a template and n is one
// of its placeholders.
func (p *pass) placeholder(n *pg_query.Node) bool {
	return p.kinds != nil && n.GetParamRef() != nil
}

// placeholderKind is the token kind of the constant placeholder n stands
// for, or 0.
func (p *pass) placeholderKind(n *pg_query.ParamRef) byte {
	if p.kinds == nil || n.Number < 1 || int(n.Number) > len(p.kinds) {
		return 0
	}
	return p.kinds[n.Number-1]
}

// paramToken is a $n in a statement's text, as PostgreSQL's lexer reads it.
type paramToken struct {
	start, end int // byte offsets of "$n"
	n          int
}

// paramTokens lists sql's parameters in order; false when it does not lex.
func paramTokens(sql string) ([]paramToken, bool) {
	scan, err := pg_query.Scan(sql)
	if err != nil {
		return nil, false
	}
	var out []paramToken
	for _, tok := range scan.Tokens {
		if tok.Token != pg_query.Token_PARAM {
			continue
		}
		start, end := int(tok.Start), int(tok.End)
		n, err := strconv.Atoi(sql[start+1 : end])
		if err != nil {
			return nil, false
		}
		out = append(out, paramToken{start, end, n})
	}
	return out, true
}
