package rewrite

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	pg_query "github.com/pganalyze/pg_query_go/v5"

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
// printed for the same subquery with sentinels for those constants (the
// first time, in the same call as the statement; kept per Rewriter, keyed
// by the subquery's exact protobuf encoding, so that the same key is the
// same text), with the constants printed as the deparser prints them. What the warehouse receives is byte for byte what
// deparsing the whole tree gives (TestFenceTextIdentical); any doubt (a
// marker that the statement's own text could have printed, a fence the
// tree no longer holds where it was put) deparses the whole tree instead.

// fence is a relation reference a pass replaced by its fenced subquery.
type fence struct {
	node    *pg_query.Node                // the FROM item, now the subquery
	wrapper *pg_query.Node_RangeSubselect // what node holds
	sel     *pg_query.SelectStmt
	from    *pg_query.Node // sel's relation, as fencedSubquery built it
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
	f := &fence{node: n, wrapper: w, sel: sel, from: sel.FromClause[0]}
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
	// wholes counts the statements deparsed again whole because their
	// fence texts did not fit in.
	wholes atomic.Int64
}

func newFenceCache() *fenceCache {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &fenceCache{marker: "pgwarden_" + hex.EncodeToString(b[:]) + "_", m: map[string][]string{}}
}

func (c *fenceCache) get(key []byte) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	segs, ok := c.m[string(key)] // no copy of key
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

// fenceKey is a fence's subquery with sentinels for its constants: its
// encoding is the key of its text, and what the deparser prints it from.
type fenceKey struct {
	f     *fence
	pb    []byte
	vals  []string // the constants as the deparser prints them
	kinds []valueKind
	swap  []*pg_query.Node // the sentinels, while swapped out
}

// key encodes f's subquery with sentinels for its constants; false when f
// must be deparsed with the statement.
func (f *fence) key(version int32) (*fenceKey, bool) {
	if w, ok := f.node.Node.(*pg_query.Node_RangeSubselect); !ok || w != f.wrapper || w.RangeSubselect.Lateral ||
		len(f.sel.FromClause) != 1 || f.sel.FromClause[0] != f.from {
		return nil, false // moved or changed since it was built (TABLESAMPLE)
	}
	k := &fenceKey{f: f, vals: make([]string, len(f.values)), kinds: make([]valueKind, len(f.values)),
		swap: make([]*pg_query.Node, len(f.values))}
	for i, v := range f.values {
		t, kind, ok := valueText(v)
		if !ok {
			return nil, false
		}
		k.vals[i], k.kinds[i], k.swap[i] = t, kind, sentinel(kind)
	}
	k.swapSentinels()
	pb, err := pgmarshal.Marshal(singleStatement(version, &pg_query.RawStmt{Stmt: f.wrapper.RangeSubselect.Subquery}))
	k.swapSentinels()
	if err != nil {
		return nil, false
	}
	k.pb = pb
	return k, true
}

// swapSentinels puts the sentinels in place of the constants, or back.
func (k *fenceKey) swapSentinels() {
	for i, v := range k.f.values {
		v.Node, k.swap[i].Node = k.swap[i].Node, v.Node
	}
}

// text is the fence's text from segs, its subquery's text split at the
// sentinels.
func (k *fenceKey) text(segs []string) string {
	n := 2
	for _, s := range segs {
		n += len(s)
	}
	for _, v := range k.vals {
		n += len(v)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('(')
	b.WriteString(segs[0])
	for i, v := range k.vals {
		b.WriteString(v)
		b.WriteString(segs[i+1])
	}
	b.WriteByte(')')
	return b.String()
}

// splitSentinels splits text, a fence's subquery printed with sentinels of
// kinds for its constants, at them; nil when a sentinel's text is not
// found as often as it stands for a constant.
func splitSentinels(text string, kinds []valueKind) []string {
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
		segs = append(segs, text[:i])
		text = text[i+len(s):]
	}
	return append(segs, text)
}

// fencePlan is how a statement's fences go to the deparser: as
// placeholders, with the texts of those met before, and the subqueries of
// the others printed by the same call, after the statement (each behind a
// separator statement), to be split and kept.
type fencePlan struct {
	c       *fenceCache
	placed  []*fence
	texts   []string    // by placeholder; "" until a pending one is printed
	pending []*fenceKey // by separator
	pendAt  []int       // their placeholders
	// dups are pending fences of the same subquery as an earlier one (but
	// their own constants), printed from its text.
	dups []dupKey
}

type dupKey struct {
	k      *fenceKey
	of, at int // the pending fence it repeats; its placeholder
}

// placeFences puts a placeholder in place of each of the pass's fences it
// can print, and returns the plan; nil when there is none.
func (p *pass) placeFences(version int32) *fencePlan {
	c := p.r.fenceText
	if len(p.fences) == 0 || c == nil {
		return nil
	}
	var fp *fencePlan
	var pendingKeys map[string]int // fences of the same text are printed once
	for _, f := range p.fences {
		k, ok := f.key(version)
		if !ok {
			continue
		}
		if fp == nil {
			fp = &fencePlan{c: c}
		}
		text := ""
		if segs, ok := c.get(k.pb); !ok {
			if i, ok := pendingKeys[string(k.pb)]; ok {
				fp.dups = append(fp.dups, dupKey{k: k, of: i, at: len(fp.texts)})
			} else {
				if pendingKeys == nil {
					pendingKeys = map[string]int{}
				}
				pendingKeys[string(k.pb)] = len(fp.pending)
				fp.pending = append(fp.pending, k)
				fp.pendAt = append(fp.pendAt, len(fp.texts))
			}
		} else if segs == nil {
			continue // its sentinels were not found: printed with the statement
		} else {
			text = k.text(segs)
		}
		f.node.Node = &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{
			Relname: c.marker + strconv.Itoa(len(fp.texts)) + "_", Inh: true, Relpersistence: "p",
			Alias: f.wrapper.RangeSubselect.Alias}}
		fp.texts = append(fp.texts, text)
		fp.placed = append(fp.placed, f)
	}
	return fp
}

// separator is the name the separator statement before pending subquery i
// selects.
func (fp *fencePlan) separator(i int) string {
	return fp.c.marker + "s" + strconv.Itoa(i) + "_"
}

// statements is what the deparser is given: raw, then a separator and
// the subquery of each pending fence, its sentinels swapped in until
// swapBack.
func (fp *fencePlan) statements(version int32, raw *pg_query.RawStmt) *pg_query.ParseResult {
	tree := singleStatement(version, raw)
	for i, k := range fp.pending {
		tree.Stmts = append(tree.Stmts, &pg_query.RawStmt{Stmt: selectAs("", colRef(fp.separator(i)))},
			&pg_query.RawStmt{Stmt: k.f.wrapper.RangeSubselect.Subquery})
		k.swapSentinels()
	}
	return tree
}

// swapBack puts the pending fences' constants back after statements.
func (fp *fencePlan) swapBack() {
	for _, k := range fp.pending {
		k.swapSentinels()
	}
}

// restore puts the fences back in place of their placeholders, for the
// statement to be deparsed whole.
func (fp *fencePlan) restore() {
	fp.c.wholes.Add(1)
	for _, f := range fp.placed {
		f.node.Node = f.wrapper
	}
}

// splice returns the statement's text from out, the deparse of statements:
// pending subqueries split and kept, placeholders replaced by fence texts;
// false when out does not hold each placeholder and separator exactly once
// and the marker nowhere else.
func (fp *fencePlan) splice(out string) (string, bool) {
	c := fp.c
	if strings.Count(out, c.marker) != len(fp.texts)+len(fp.pending) {
		return "", false
	}
	// The pending subqueries, from the last: the marker is in no text but
	// the placeholders and separators.
	for i := len(fp.pending) - 1; i >= 0; i-- {
		sep := "; SELECT " + fp.separator(i) + "; "
		j := strings.LastIndex(out, sep)
		if j < 0 {
			return "", false
		}
		k := fp.pending[i]
		segs := splitSentinels(out[j+len(sep):], k.kinds)
		c.put(string(k.pb), segs)
		if segs == nil {
			return "", false
		}
		fp.texts[fp.pendAt[i]] = k.text(segs)
		for _, d := range fp.dups {
			if d.of == i {
				fp.texts[d.at] = d.k.text(segs)
			}
		}
		out = out[:j]
	}
	seen := make([]bool, len(fp.texts))
	n := len(out)
	for _, t := range fp.texts {
		n += len(t)
	}
	var b strings.Builder
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
		if err != nil || k < 0 || k >= len(fp.texts) || seen[k] {
			return "", false
		}
		seen[k] = true
		b.WriteString(fp.texts[k])
		out = out[j+1:]
	}
	for _, s := range seen {
		if !s {
			return "", false
		}
	}
	b.WriteString(out)
	return b.String(), true
}
