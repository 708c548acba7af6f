package rewrite

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"github.com/pganalyze/pg_query_go/v5/parser"

	"github.com/pgwarden/pgwarden/internal/pgmarshal"
)

// Fences are most of a rewritten statement's tree (pgbench's one-line
// SELECT grows from 10 nodes to 28), and pg_query's C deparser pays about a
// microsecond per node before it prints anything: its protobuf-c decoder
// and the free after it visit each of the ~250 fields of every Node
// message. Yet a fence's text hardly varies: for one session's tenant and
// relation it is the same but for the constants of the comparisons
// pushdown.go copied into it. So the statement is deparsed with each fence
// replaced by a one-node placeholder, a relation named by a marker, and
// the fence's text is put in its place afterwards: the text the deparser
// printed for the same subquery with sentinels for those constants (kept
// per Rewriter, keyed by the subquery's exact protobuf encoding, so that
// the same key is the same text), with the constants printed as the
// deparser prints them. What the warehouse receives is byte for byte what
// deparsing the whole tree gives (TestFenceTextIdentical); any doubt (a
// marker that the statement's own text could have printed, a fence the
// tree no longer holds where it was put) deparses the whole tree instead.

// fence is a relation reference a pass replaced by its fenced subquery.
type fence struct {
	node    *pg_query.Node                // the FROM item, now the subquery
	wrapper *pg_query.Node_RangeSubselect // what node holds
	sel     *pg_query.SelectStmt
	from    *pg_query.Node // sel's relation, as fencedSubquery built it
	// base is sel's WHERE before pushdown added to it, with nBase
	// arguments when it is an AND (which pushdown extends in place).
	base  *pg_query.Node
	nBase int
	// values are the constants of the comparisons pushdown added, in
	// order: a string or integer constant or a parameter.
	values []*pg_query.Node
}

// newFence records the fenced subquery sub that the pass put in n.
func (p *pass) newFence(n, sub *pg_query.Node) *fence {
	w, ok := sub.Node.(*pg_query.Node_RangeSubselect)
	if !ok {
		return nil
	}
	sel := w.RangeSubselect.GetSubquery().GetSelectStmt()
	if sel == nil || len(sel.FromClause) != 1 {
		return nil
	}
	f := &fence{node: n, wrapper: w, sel: sel, from: sel.FromClause[0], base: sel.WhereClause}
	if b := sel.WhereClause.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR {
		f.nBase = len(b.Args)
	}
	p.fences = append(p.fences, f)
	return f
}

// pushed records the constant (or parameter) of a comparison pushdown
// added to f's WHERE, after the ones before it.
func (f *fence) pushed(v *pg_query.Node) {
	if f == nil {
		return
	}
	if tc := v.GetTypeCast(); tc != nil {
		v = tc.Arg
	}
	f.values = append(f.values, v)
}

// Sentinels stand for a fence's constants in the text kept for it: one per
// kind, none a part of another's text.
const (
	sentinelString = "pgwarden_fence_value"
	sentinelInt    = 1987654321
	sentinelParam  = 2123456789
)

var sentinelTexts = [...]string{
	kindString: "'" + sentinelString + "'",
	kindInt:    strconv.Itoa(sentinelInt),
	kindParam:  "$" + strconv.Itoa(sentinelParam),
}

type valueKind uint8

const (
	kindString valueKind = iota
	kindInt
	kindParam
)

// valueText is v as pg_query's deparser prints it, and its kind; ok is
// false for anything but the constants pushdown copies.
func valueText(v *pg_query.Node) (text string, kind valueKind, ok bool) {
	switch x := v.Node.(type) {
	case *pg_query.Node_AConst:
		if x.AConst.Isnull {
			return "", 0, false
		}
		switch c := x.AConst.Val.(type) {
		case *pg_query.A_Const_Sval:
			if c.Sval == nil || strings.IndexByte(c.Sval.Sval, 0) >= 0 {
				return "", 0, false // C would end the string there
			}
			return stringLiteral(c.Sval.Sval), kindString, true
		case *pg_query.A_Const_Ival:
			if c.Ival == nil {
				return "0", kindInt, true
			}
			return strconv.FormatInt(int64(c.Ival.Ival), 10), kindInt, true
		}
	case *pg_query.Node_ParamRef:
		if n := x.ParamRef.Number; n > 0 {
			return "$" + strconv.Itoa(int(n)), kindParam, true
		}
	}
	return "", 0, false
}

// stringLiteral is pg_query's deparseStringLiteral: quotes doubled, and
// backslashes too under E” when there are any.
func stringLiteral(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 3)
	if strings.IndexByte(s, '\\') >= 0 {
		b.WriteByte('E')
	}
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\'' || c == '\\' {
			b.WriteByte(c)
		}
		b.WriteByte(c)
	}
	b.WriteByte('\'')
	return b.String()
}

func sentinel(kind valueKind) *pg_query.Node {
	switch kind {
	case kindString:
		return strConst(sentinelString)
	case kindInt:
		return intConst(sentinelInt)
	}
	return paramRef(sentinelParam)
}

// fenceCacheEntries bounds a Rewriter's fence texts: distinct ones are
// per tenant, relation and set of pushed-down comparisons.
const fenceCacheEntries = 4096

// fenceCache keeps fence texts by the encoding of the subquery they were
// printed from: the text split at its sentinels, or nil when the sentinels
// were not found exactly once each.
type fenceCache struct {
	// marker starts the name of a fence's placeholder: random per
	// Rewriter, so that no statement can be written to print it.
	marker string
	mu     sync.Mutex
	m      map[string][]string
}

func newFenceCache() *fenceCache {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &fenceCache{marker: "pgwarden_" + hex.EncodeToString(b[:]) + "_", m: map[string][]string{}}
}

func (c *fenceCache) get(key string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	segs, ok := c.m[key]
	return segs, ok
}

func (c *fenceCache) put(key string, segs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= fenceCacheEntries {
		clear(c.m)
	}
	c.m[key] = segs
}

// text returns f's subquery as the deparser prints it, or false when it
// must be deparsed with the statement.
func (c *fenceCache) text(f *fence, version int32) (string, bool) {
	if w, ok := f.node.Node.(*pg_query.Node_RangeSubselect); !ok || w != f.wrapper || w.RangeSubselect.Lateral ||
		len(f.sel.FromClause) != 1 || f.sel.FromClause[0] != f.from {
		return "", false // moved or changed since it was built (TABLESAMPLE)
	}
	vals := make([]string, len(f.values))
	kinds := make([]valueKind, len(f.values))
	swap := make([]*pg_query.Node, len(f.values))
	for i, v := range f.values {
		t, k, ok := valueText(v)
		if !ok {
			return "", false
		}
		vals[i], kinds[i], swap[i] = t, k, sentinel(k)
	}
	// The key and the text are the subquery's with sentinels for its
	// constants: swapped in, and back out.
	for i, v := range f.values {
		v.Node, swap[i].Node = swap[i].Node, v.Node
	}
	pb, err := pgmarshal.Marshal(singleStatement(version, &pg_query.RawStmt{Stmt: f.wrapper.RangeSubselect.Subquery}))
	for i, v := range f.values {
		v.Node, swap[i].Node = swap[i].Node, v.Node
	}
	if err != nil {
		return "", false
	}
	key := string(pb)
	segs, ok := c.get(key)
	if !ok {
		segs = splitSentinels(pb, kinds)
		c.put(key, segs)
	}
	if segs == nil {
		return "", false
	}
	var b strings.Builder
	n := 2
	for _, s := range segs {
		n += len(s)
	}
	for _, v := range vals {
		n += len(v)
	}
	b.Grow(n)
	b.WriteByte('(')
	b.WriteString(segs[0])
	for i, v := range vals {
		b.WriteString(v)
		b.WriteString(segs[i+1])
	}
	b.WriteByte(')')
	return b.String(), true
}

// splitSentinels deparses pb, a fence's subquery with sentinels of kinds
// for its constants, and splits the text at them; nil when a sentinel's
// text is not found as often as it stands for a constant.
func splitSentinels(pb []byte, kinds []valueKind) []string {
	text, err := parser.DeparseFromProtobuf(pb)
	if err != nil {
		return nil
	}
	var want [len(sentinelTexts)]int
	for _, k := range kinds {
		want[k]++
	}
	for k, s := range sentinelTexts {
		if strings.Count(text, s) != want[k] {
			return nil
		}
	}
	segs := make([]string, 0, len(kinds)+1)
	for _, k := range kinds {
		s := sentinelTexts[k]
		i := strings.Index(text, s)
		if i < 0 {
			return nil
		}
		segs = append(segs, text[:i])
		text = text[i+len(s):]
	}
	return append(segs, text)
}

// placeFences puts a placeholder in place of each of the pass's fences
// whose text is known, and returns their texts and a function that puts
// the fences back.
func (p *pass) placeFences(version int32) (texts []string, restore func()) {
	c := p.r.fenceText
	if len(p.fences) == 0 || c == nil {
		return nil, nil
	}
	var placed []*fence
	for _, f := range p.fences {
		t, ok := c.text(f, version)
		if !ok {
			continue
		}
		rs := f.wrapper.RangeSubselect
		f.node.Node = &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{
			Relname: c.marker + strconv.Itoa(len(texts)) + "_", Inh: true, Relpersistence: "p", Alias: rs.Alias}}
		texts = append(texts, t)
		placed = append(placed, f)
	}
	if len(placed) == 0 {
		return nil, nil
	}
	return texts, func() {
		for _, f := range placed {
			f.node.Node = f.wrapper
		}
	}
}

// spliceFences replaces the placeholders in out by their fences' texts;
// false when out does not hold each placeholder exactly once and the
// marker nowhere else.
func (c *fenceCache) spliceFences(out string, texts []string) (string, bool) {
	if strings.Count(out, c.marker) != len(texts) {
		return "", false
	}
	seen := make([]bool, len(texts))
	var b strings.Builder
	n := len(out)
	for _, t := range texts {
		n += len(t)
	}
	b.Grow(n)
	for {
		i := strings.Index(out, c.marker)
		if i < 0 {
			break
		}
		b.WriteString(out[:i])
		out = out[i+len(c.marker):]
		j := strings.IndexByte(out, '_')
		if j <= 0 {
			return "", false
		}
		k, err := strconv.Atoi(out[:j])
		if err != nil || k < 0 || k >= len(texts) || seen[k] {
			return "", false
		}
		seen[k] = true
		b.WriteString(texts[k])
		out = out[j+1:]
	}
	b.WriteString(out)
	return b.String(), true
}
