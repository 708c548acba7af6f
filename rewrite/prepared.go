package rewrite

import (
	"strconv"
	"strings"
	"sync/atomic"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Templated statements as prepared statements.
//
// A statement sent with the simple protocol is parsed and planned by the
// warehouse every time, and its rewrite is longer than the client's text
// (the tenant fence), so the warehouse spends more on it than on the
// client's own statement. The template already holds the rewrite with the
// constants as placeholders $k: the proxy can prepare that text once per
// warehouse connection and bind the constants as parameters, so that the
// warehouse reuses the parse and, after a few executions, the plan, as it
// does for a driver's prepared statements.
//
// A parameter is not always the same as the constant it replaces, so a
// constant stays a literal in the prepared text where it could mean
// something else:
//   - a bare integer in ORDER BY, GROUP BY or DISTINCT ON is a column
//     position (so is one under a unary minus, which PostgreSQL refuses);
//   - a type modifier (numeric(10,2), varchar(3)) must be a literal;
//   - a string cast to a type with modifiers (interval '1' day, char(2)) is
//     read by the type's input with the modifier, a parameter without it;
//   - a string with a backslash reads differently when the session has
//     standard_conforming_strings off; E'', U&'' and dollar quotes are not
//     plain strings;
//   - a number whose negation PostgreSQL folds into a narrower type
//     (-2147483648 is an integer, -$1 with $1 = 2147483648 a bigint).
//
// Integers and numerics get the types PostgreSQL gives the literals (int4,
// int8 or numeric, by value); strings are left for the warehouse to infer,
// as it does for a string literal. Equal numbers share one parameter, so
// that an expression repeated in the select list and GROUP BY still
// matches. Strings never do: one parameter takes one type, and two equal
// strings may be read as two types. Whatever still fails to prepare (a
// string whose type cannot be inferred, as in format('%s', 'x')) is found
// by the proxy's probe (Probe), once per shape, and the shape then runs as
// a plain statement.

// A statement with no constants at all gets its own text as its prepared
// form, without parameters: the constants in it are the policy's (the
// tenant). Statements with constants that do not template are left alone:
// a literal in a prepared statement is read once, at Parse ('now'::date
// would stay the day it was prepared).

// constantFree reports whether sql certainly has neither constants nor
// parameters.
func constantFree(sql string) bool {
	_, ok, sure := lexConstants(sql)
	return sure && !ok
}

// Prepared is a statement's prepared form: run SQL with Params (text
// format, of types ParamOIDs; 0 lets the warehouse infer) to get the
// statement's result.
type Prepared struct {
	SQL       string
	ParamOIDs []uint32
	Params    [][]byte
	// Probe is shared by every statement of the shape.
	Probe *Probe
}

// ProbeState is what the warehouse said about a shape's prepared form.
type ProbeState int32

const (
	ProbeUnknown ProbeState = iota
	ProbeAccepted
	ProbeRejected
)

// Probe records whether the warehouse accepted a template's prepared form.
// The proxy prepares it once outside any transaction block before relying
// on it; a rejection makes the shape run as plain statements.
type Probe struct{ state atomic.Int32 }

func (p *Probe) State() ProbeState { return ProbeState(p.state.Load()) }
func (p *Probe) Accept()           { p.state.CompareAndSwap(int32(ProbeUnknown), int32(ProbeAccepted)) }
func (p *Probe) Reject()           { p.state.Store(int32(ProbeRejected)) }

// OIDs of the parameter types numbers get.
const (
	oidInt4    = 23
	oidInt8    = 20
	oidNumeric = 1700
)

// prepForm is how a template runs as a prepared statement.
type prepForm struct {
	literal []bool // per constant: stays a literal (see above)
	probe   *Probe
	m       *meter // while newPrepForm scans; nil after
	// text is the prepared text when every constant is a parameter of its
	// own, in order ($k for constant k): the same for every statement of
	// the shape that binds them so, computed once (newTemplate).
	text string
}

// newPrepForm decides which of a template's constants may become
// parameters, by where they stand in its rewritten text sql. Nil when the
// text has no place for one.
func newPrepForm(m *meter, sql string, kinds []byte) *prepForm {
	// sql is a rewrite, a little deeper than the statement that passed
	// checkDepth: bound it too rather than reason about the margin.
	if checkDepth(sql) != nil {
		return nil
	}
	tree, err := pg_query.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 {
		return nil
	}
	f := &prepForm{literal: make([]bool, len(kinds)), probe: &Probe{}, m: m}
	f.scan(tree.Stmts[0].Stmt.ProtoReflect(), kinds)
	f.m = nil
	if m.check() {
		return nil
	}
	for _, lit := range f.literal {
		if !lit {
			return f
		}
	}
	return nil
}

// scan marks the constants that must stay literals. It descends every
// field of every node, so that no placeholder goes unseen; the contexts
// that matter are the few below.
func (f *prepForm) scan(m protoreflect.Message, kinds []byte) {
	if f.m.stop(1) {
		return
	}
	switch n := m.Interface().(type) {
	case *pg_query.SelectStmt:
		for _, s := range n.SortClause {
			f.markPositional(s.GetSortBy().GetNode())
		}
		for _, g := range n.GroupClause {
			f.markGroupItem(g)
		}
		for _, d := range n.DistinctClause {
			f.markPositional(d)
		}
	case *pg_query.TypeName:
		for _, t := range n.Typmods {
			f.markAll(t.ProtoReflect())
		}
	case *pg_query.TypeCast:
		if pr := n.GetArg().GetParamRef(); pr != nil && len(n.GetTypeName().GetTypmods()) > 0 && f.kind(pr, kinds) == constString {
			f.mark(pr)
		}
	}
	eachChild(m, func(c protoreflect.Message) { f.scan(c, kinds) })
}

// eachChild calls fn on every node directly under m, in lists too.
func eachChild(m protoreflect.Message, fn func(protoreflect.Message)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() != protoreflect.MessageKind || fd.IsMap():
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				fn(l.Get(i).Message())
			}
		default:
			fn(v.Message())
		}
		return true
	})
}

// markGroupItem marks a GROUP BY item's position constants, inside
// grouping sets (ROLLUP, CUBE, GROUPING SETS) too.
func (f *prepForm) markGroupItem(n *pg_query.Node) {
	if gs := n.GetGroupingSet(); gs != nil {
		for _, c := range gs.Content {
			f.markGroupItem(c)
		}
		return
	}
	f.markPositional(n)
}

// markPositional marks a placeholder that PostgreSQL would read as a column
// position: bare, or negated.
func (f *prepForm) markPositional(n *pg_query.Node) {
	if e := n.GetAExpr(); e != nil && e.Lexpr == nil && len(e.Name) == 1 && e.Name[0].GetString_().GetSval() == "-" {
		n = e.Rexpr
	}
	if pr := n.GetParamRef(); pr != nil {
		f.mark(pr)
	}
}

func (f *prepForm) markAll(m protoreflect.Message) {
	if pr, ok := m.Interface().(*pg_query.ParamRef); ok {
		f.mark(pr)
		return
	}
	eachChild(m, f.markAll)
}

func (f *prepForm) mark(pr *pg_query.ParamRef) {
	if k := int(pr.Number) - 1; k >= 0 && k < len(f.literal) {
		f.literal[k] = true
	}
}

func (f *prepForm) kind(pr *pg_query.ParamRef, kinds []byte) byte {
	if k := int(pr.Number) - 1; k >= 0 && k < len(kinds) {
		return kinds[k]
	}
	return 0
}

// maxParams is the most parameters a Parse or Bind message can carry.
const maxParams = 1<<16 - 1

// prepared is the template's prepared form for consts, nil when it has
// none (no constant can be a parameter, more than maxParams would be, the
// warehouse rejected it, or m stopped).
func (t *template) prepared(m *meter, consts []string, kinds []byte) *Prepared {
	var sp *smallPrepared
	if fitsSmall(consts) {
		sp = &smallPrepared{}
	}
	return t.preparedIn(m, consts, kinds, sp)
}

// preparedIn is prepared in sp, which is nil or has room for consts
// (fitsSmall).
func (t *template) preparedIn(m *meter, consts []string, kinds []byte, sp *smallPrepared) *Prepared {
	f := t.prep
	if f == nil || f.probe.State() == ProbeRejected || len(kinds) != len(f.literal) {
		return nil
	}
	pr, vals := newPrepared(consts, sp)
	pr.Probe = f.probe
	// 1-based parameter of each constant; 0 for a literal.
	var paramBuf [16]int
	param := paramBuf[:0]
	if len(consts) <= len(paramBuf) {
		param = paramBuf[:len(consts)]
	} else {
		param = make([]int, len(consts))
	}
	// The parameter already given to each number, by kind (constInt,
	// constFloat): a map, where a search of the constants before made
	// statements of many constants quadratic; a search still for a few.
	var shared [2]map[string]int
	search := len(consts) <= 16
	// inOrder: constant k is parameter k+1, every one: the text is then
	// always the template's own (f.text).
	inOrder := true
	for k := range consts {
		if m.stop(1) {
			return nil
		}
		if f.literal[k] {
			inOrder = false
			continue
		}
		oid, ok := paramOID(kinds[k], consts[k])
		if !ok {
			inOrder = false
			continue
		}
		num := -1
		switch kinds[k] {
		case constInt:
			num = 0
		case constFloat:
			num = 1
		}
		switch {
		case num >= 0 && search:
			for j := 0; j < k; j++ {
				if param[j] != 0 && kinds[j] == kinds[k] && consts[j] == consts[k] {
					param[k] = param[j]
					break
				}
			}
		case num >= 0:
			param[k] = shared[num][consts[k]]
		}
		if param[k] != 0 {
			inOrder = false
			continue
		}
		if len(pr.Params) == maxParams {
			// The protocol counts parameters in 16 bits: such a
			// statement runs as it came, with its literals.
			return nil
		}
		pr.ParamOIDs = append(pr.ParamOIDs, oid)
		start := len(vals)
		vals = appendValue(vals, kinds[k], consts[k])
		pr.Params = append(pr.Params, vals[start:len(vals):len(vals)])
		param[k] = len(pr.Params)
		if num >= 0 && !search {
			if shared[num] == nil {
				shared[num] = make(map[string]int)
			}
			shared[num][consts[k]] = param[k]
		}
	}
	if len(pr.Params) == 0 {
		return nil
	}
	if inOrder && f.text != "" {
		pr.SQL = f.text
		return pr
	}
	parts, slots := t.parts[0], t.slots[0]
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	for _, k := range slots {
		n += len(consts[k]) + 6 // "$65535" at most
	}
	var b strings.Builder
	b.Grow(n)
	for j, k := range slots {
		b.WriteString(parts[j])
		if param[k] == 0 {
			b.WriteString(consts[k])
		} else {
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(param[k]))
		}
	}
	b.WriteString(parts[len(slots)])
	pr.SQL = b.String()
	return pr
}

// smallPrepared is a Prepared of a few parameters with room for them
// (fitsSmall), so that a template hit's prepared form takes no allocation
// of its own.
type smallPrepared struct {
	pr   Prepared
	oids [4]uint32
	vals [4][]byte
	buf  [48]byte
}

// fitsSmall reports whether a smallPrepared has room for the parameters of
// consts and their values.
func fitsSmall(consts []string) bool {
	var sp smallPrepared
	if len(consts) > len(sp.oids) {
		return false
	}
	size := 0
	for _, c := range consts {
		size += len(c)
	}
	return size <= len(sp.buf)
}

// newPrepared returns an empty Prepared with room for consts' parameters,
// and a buffer for their values (no value is longer than its literal): in
// sp when it is not nil.
func newPrepared(consts []string, sp *smallPrepared) (*Prepared, []byte) {
	if sp != nil {
		sp.pr.ParamOIDs, sp.pr.Params = sp.oids[:0], sp.vals[:0]
		return &sp.pr, sp.buf[:0]
	}
	size := 0
	for _, c := range consts {
		size += len(c)
	}
	return &Prepared{ParamOIDs: make([]uint32, 0, len(consts)), Params: make([][]byte, 0, len(consts))}, make([]byte, 0, size)
}

// appendValue appends the text value of a constant that paramOID accepts:
// a number's literal, a string's without its quotes and with doubled
// quotes single.
func appendValue(b []byte, kind byte, lit string) []byte {
	if kind != constString {
		return append(b, lit...)
	}
	body := lit[1 : len(lit)-1]
	for i := 0; i < len(body); i++ {
		if body[i] == '\'' {
			i++ // doubled, as paramOID checked
		}
		b = append(b, body[i])
	}
	return b
}

// paramOID is a constant's parameter type, as PostgreSQL would read the
// literal (0 for a string: the warehouse infers it); false when it must
// stay a literal. Its value is the literal's text, a string's without its
// quotes and with doubled quotes single (Prepared.appendValue).
func paramOID(kind byte, lit string) (uint32, bool) {
	switch kind {
	case constInt:
		// Decimal digits only: the lexer takes 0x1F and 1_000 as integers,
		// which a PostgreSQL 15 input function does not.
		if !decimalDigits(lit) {
			return 0, false
		}
		return oidInt4, true
	case constFloat:
		if decimalDigits(lit) {
			// Too big for int4: int8 when it fits, like the literal.
			v, err := strconv.ParseUint(strings.TrimLeft(lit, "0"), 10, 64)
			switch {
			case err == nil && (v == 1<<31 || v == 1<<63):
				return 0, false // negated, the literal is one type narrower
			case err == nil && v < 1<<63:
				return oidInt8, true
			}
			return oidNumeric, true
		}
		if !decimalLiteral(lit) {
			return 0, false
		}
		return oidNumeric, true
	case constString:
		if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' || strings.IndexByte(lit, '\\') >= 0 {
			return 0, false
		}
		// A quote inside must be a doubled one; anything else (strings
		// continued across lines) is not a plain string.
		body := lit[1 : len(lit)-1]
		for i := 0; i < len(body); i++ {
			if body[i] == '\'' {
				if i+1 >= len(body) || body[i+1] != '\'' {
					return 0, false
				}
				i++
			}
		}
		return 0, true
	}
	return 0, false
}

func decimalDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// decimalLiteral reports whether s is digits with a decimal point or an
// exponent, as numeric's input reads it: 1.5, .5, 5., 1e5, 1.5E-3.
func decimalLiteral(s string) bool {
	i, digits := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, exp = i+1, exp+1
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}
