package rewrite

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"github.com/pganalyze/pg_query_go/v5/parser"
	"google.golang.org/protobuf/encoding/protowire"

	// Large C thread stacks, the margin behind checkDepth.
	_ "github.com/pgwarden/pgwarden/internal/cstack"
	"github.com/pgwarden/pgwarden/pgerr"
)

// Statements that nest deeply crash the process rather than fail:
// pg_query's C code (protobuf output, deparse, fingerprint) recurses over the
// parse tree on the thread's stack, up to 5.5 KiB a level,
// and bison bounds only right-nested input (parentheses, subqueries: 42601
// "memory exhausted" at a few thousand levels), not left-recursive chains
// (1+1+…, x::int::int…, IS NULL, COLLATE, UNION, JOIN). So before any
// client text reaches pg_query.Parse, checkDepth bounds the tree's depth
// from the tokens of PostgreSQL's own lexer (pg_query's scan loops, it does
// not recurse) and refuses what may be too deep with 54001, as PostgreSQL
// answers statements deeper than its max_stack_depth.
//
// The estimate is an upper bound of the depth, up to a constant factor
// (FuzzDepthBound holds it to that):
//   - "(", "[" and CASE open a nested level; ")", "]" and END close it;
//   - within a level, ",", AND (but BETWEEN's), OR, ";" and, in a CASE,
//     WHEN, THEN and ELSE separate segments, whose parts are siblings in
//     the tree (the grammar flattens AND and OR chains into one node and
//     lists into one list);
//   - a segment's units are its tokens other than names, constants and
//     comments: each operator or keyword adds at most a few tree levels;
//   - UNION, INTERSECT, EXCEPT and JOIN separate segments too (their
//     operands are siblings) but count for the whole statement at their
//     level, since set operations and joins chain, across commas and ANDs;
//   - a level's depth is 1 + its level-wide count + the largest segment,
//     where a segment counts its units plus its deepest nested level (a
//     nested level may sit at the bottom of the chain that follows it).
//
// C stack per level differs by construct (depth_test.go measures it; the
// deparse is the deepest step): 1888 bytes for a binary operator, twice
// that for a CASE or a subscript, three times for a subquery. So CASE and
// "]" add a unit, and so does SELECT right after "(": no unit then costs
// more than 1888 bytes, and the limit keeps the deepest accepted statement
// of every construct under 760 KiB of C stack, within even the 2 MiB
// thread stacks glibc gives under an unlimited RLIMIT_STACK (which
// internal/cstack raises to 64 MiB as well).

// maxDepthUnits is the largest accepted estimate. Text whose textDepthBound
// is within it passes without the scan: most statements do.
const maxDepthUnits = 400

// errTooDeep is PostgreSQL's answer to a statement that nests too deeply.
func errTooDeep() *pgerr.Error {
	return pgerr.StackDepth("the statement nests deeper than pgwarden's limit of %d levels", maxDepthUnits)
}

// checkDepth refuses sql with 54001 when its tree may be deeper than
// maxDepthUnits allows. Text that does not lex passes: the parser then
// reports the syntax error before building any tree.
func checkDepth(sql string) *pgerr.Error {
	if textDepthBound(sql, maxDepthUnits) <= maxDepthUnits {
		return nil
	}
	// The scanner's protobuf is read in place: decoding it into ScanTokens
	// would cost more than the scan (a 2 MB chain is 2 M tokens).
	scan, err := parser.ScanToProtobuf(sql)
	if err != nil {
		return nil
	}
	if _, ok := estimateDepth(scan, maxDepthUnits); !ok {
		return errTooDeep()
	}
	return nil
}

// scanTokens calls f with each token kind of a pg_query ScanResult until f
// returns false; it reports false then, or when scan is malformed.
func scanTokens(scan []byte, f func(pg_query.Token) bool) bool {
	for len(scan) > 0 {
		num, typ, n := protowire.ConsumeTag(scan)
		if n < 0 {
			return false
		}
		scan = scan[n:]
		if num != 2 || typ != protowire.BytesType { // not ScanResult.tokens
			if n = protowire.ConsumeFieldValue(num, typ, scan); n < 0 {
				return false
			}
			scan = scan[n:]
			continue
		}
		tok, n := protowire.ConsumeBytes(scan)
		if n < 0 {
			return false
		}
		scan = scan[n:]
		kind := pg_query.Token_NUL
		for len(tok) > 0 {
			num, typ, n := protowire.ConsumeTag(tok)
			if n < 0 {
				return false
			}
			tok = tok[n:]
			if num == 4 && typ == protowire.VarintType { // ScanToken.token
				v, n := protowire.ConsumeVarint(tok)
				if n < 0 {
					return false
				}
				kind = pg_query.Token(v)
			}
			if n = protowire.ConsumeFieldValue(num, typ, tok); n < 0 {
				return false
			}
			tok = tok[n:]
		}
		if !f(kind) {
			return false
		}
	}
	return true
}

// depthLevel is one open "(", "[" or CASE of estimateDepth.
type depthLevel struct {
	kind  pg_query.Token // ASCII_40, ASCII_91 or CASE; NUL for the statement level
	base  int            // the path's value down to where this level opened
	seg   int            // units of the current segment
	child int            // deepest nested level in the current segment
	segs  int            // largest finished segment of the current statement
	wide  int            // level-wide units of the current statement
	stmts int            // largest finished statement
	// between counts BETWEENs still to meet their AND, which is then no
	// separator.
	between int
	// afterOpen is set right after "(", for the subquery weight.
	afterOpen bool
}

// value is the level's depth so far.
func (l *depthLevel) value() int {
	return 1 + max(l.stmts, l.wide+max(l.segs, l.seg+l.child))
}

// endSegment closes the current segment (a separator).
func (l *depthLevel) endSegment() {
	l.segs = max(l.segs, l.seg+l.child)
	l.seg, l.child = 0, 0
}

// depthWalk is the state of one estimateDepth pass.
type depthWalk struct {
	stack []depthLevel
	limit int
}

// estimateDepth returns the depth estimate of a statement from its
// pg_query ScanResult, and false as soon as it exceeds limit (the value is
// then partial) or the scan is malformed. It is iterative and linear in the
// number of tokens.
func estimateDepth(scan []byte, limit int) (int, bool) {
	w := depthWalk{stack: make([]depthLevel, 1, 16), limit: limit}
	if !scanTokens(scan, w.token) {
		return w.bound(), false
	}
	// Unclosed levels (a syntax error) fold into their parents.
	for len(w.stack) > 1 {
		w.close()
	}
	v := w.stack[0].value()
	return v, v <= limit
}

// bound is a lower bound of the final estimate: the open path's value.
func (w *depthWalk) bound() int {
	top := &w.stack[len(w.stack)-1]
	return top.base + top.value()
}

// token adds one token; false when the estimate is over the limit.
func (w *depthWalk) token(t pg_query.Token) bool {
	top := &w.stack[len(w.stack)-1]
	afterOpen := top.afterOpen
	top.afterOpen = false
	switch t {
	case pg_query.Token_IDENT, pg_query.Token_UIDENT, pg_query.Token_ICONST, pg_query.Token_FCONST,
		pg_query.Token_SCONST, pg_query.Token_USCONST, pg_query.Token_BCONST, pg_query.Token_XCONST,
		pg_query.Token_PARAM, pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
		return true
	case pg_query.Token_ASCII_40, pg_query.Token_ASCII_91, pg_query.Token_CASE:
		if t == pg_query.Token_CASE {
			top.seg++ // a CASE level costs twice an operator's stack
		}
		// The path down to the new level: this level's value without the
		// rest of its segment, which comes later and is not on the path.
		base := top.base + 1 + top.wide + top.seg
		w.stack = append(w.stack, depthLevel{kind: t, base: base, afterOpen: t == pg_query.Token_ASCII_40})
		return base+1 <= w.limit
	case pg_query.Token_ASCII_41, pg_query.Token_ASCII_93:
		// Closes the innermost bracket, and any CASE left open inside it.
		for len(w.stack) > 1 {
			kind := w.stack[len(w.stack)-1].kind
			w.close()
			if kind != pg_query.Token_CASE {
				return w.bound() <= w.limit
			}
		}
		w.stack[0].seg++ // unbalanced: a syntax error
	case pg_query.Token_END_P:
		if top.kind == pg_query.Token_CASE {
			w.close()
			return w.bound() <= w.limit
		}
		top.seg++
	case pg_query.Token_AND:
		if top.between > 0 { // BETWEEN's own AND: its operands stack up
			top.between--
			top.seg++
		} else {
			top.endSegment()
		}
	case pg_query.Token_ASCII_44, pg_query.Token_OR:
		top.endSegment()
	case pg_query.Token_WHEN, pg_query.Token_THEN, pg_query.Token_ELSE:
		if top.kind == pg_query.Token_CASE {
			top.endSegment()
		} else {
			top.seg++
		}
	case pg_query.Token_ASCII_59:
		top.endSegment()
		top.stmts = max(top.stmts, top.wide+top.segs)
		top.wide, top.segs, top.between = 0, 0, 0
	case pg_query.Token_UNION, pg_query.Token_INTERSECT, pg_query.Token_EXCEPT, pg_query.Token_JOIN:
		// The operands of a set operation or a join are siblings below it,
		// but the operations chain: each adds a level to all that precede.
		top.endSegment()
		top.wide++
	case pg_query.Token_BETWEEN:
		top.seg++
		top.between++
	case pg_query.Token_SELECT:
		top.seg++
		if afterOpen {
			top.seg++ // a subquery level costs three operators' stack
		}
	default:
		top.seg++
	}
	return w.bound() <= w.limit
}

// close pops the innermost level into its parent's current segment.
func (w *depthWalk) close() {
	l := &w.stack[len(w.stack)-1]
	d, kind := l.value(), l.kind
	w.stack = w.stack[:len(w.stack)-1]
	top := &w.stack[len(w.stack)-1]
	top.child = max(top.child, d)
	if kind == pg_query.Token_ASCII_91 {
		top.seg++ // a subscript costs twice an operator's stack: "]" weighs 1
	}
}

// textDepthBound is an upper bound of the estimate of sql (estimateDepth),
// read from the text alone for the price of a pass over its bytes, in Go:
// the scan it spares costs a call into C, PostgreSQL's lexer and a protobuf
// of every token. It stops early, with a value over limit, once the bound
// passes limit.
//
// The estimate is 1 for the statement level plus at most each token's
// weight: 0 for names, constants, comments, ")", "]" and separators; 1 for
// "(" (the level it opens), an operator or a keyword; 2 for "[" (its level,
// and a unit when the level closes), SELECT (after "(") and CASE (which opens
// a level too). The bound counts 2 for "[", 1 for every other byte that is
// neither space nor part of a word (a token of punctuation has at least one,
// a quoted name or a string two), 2 for a word
// that starts with a digit or "$" (a constant or a parameter, which weighs
// nothing, or whatever such a word lexes as) and, for the other words, 2 for
// SELECT and CASE, 1 for another keyword and 0 for a name. A keyword inside
// a string or a comment counts too: the bound only ever exceeds the
// estimate.
func textDepthBound(sql string, limit int) int {
	n := 1
	for i := 0; i < len(sql) && n <= limit; {
		c := sql[i]
		switch {
		case c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f': // PostgreSQL 16's spaces (no \v)
			i++
		case isWordByte(c):
			j := i + 1
			for j < len(sql) && isWordByte(sql[j]) {
				j++
			}
			n += wordWeight(sql[i:j])
			i = j
		case c == '[':
			n += 2 // its level, and the unit its close adds (depthWalk.close)
			i++
		default:
			n++
			i++
		}
	}
	return n
}

// isWordByte reports whether c may continue a name, a keyword or a number
// (bytes of non-ASCII characters included, as PostgreSQL's lexer has them).
func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

// wordWeight is textDepthBound's weight of a word.
func wordWeight(w string) int {
	if c := w[0]; '0' <= c && c <= '9' || c == '$' {
		return 2
	}
	if len(w) > len(keywordWords.buf) {
		return 2 // no keyword is this long (TestTextDepthBoundKeywords); as if it were
	}
	buf := keywordWords.buf // a copy, on the stack
	for i := 0; i < len(w); i++ {
		c := w[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return int(keywordWords.weight[string(buf[:len(w)])])
}

// keywordWords are the words that lex as keywords, from pg_query's token
// names (ABORT_P is "abort", NOT_LA "not"), with their weight in
// textDepthBound. Names of tokens that are not words (ASCII_40, IDENT) are
// in it too and only make the bound larger. Read only.
var keywordWords = func() (k struct {
	weight map[string]uint8
	buf    [32]byte
}) {
	k.weight = make(map[string]uint8, len(pg_query.Token_name))
	for _, name := range pg_query.Token_name {
		w := strings.ToLower(name)
		w = strings.TrimSuffix(strings.TrimSuffix(w, "_p"), "_la")
		k.weight[w] = 1
	}
	k.weight["select"], k.weight["case"] = 2, 2
	return k
}()
