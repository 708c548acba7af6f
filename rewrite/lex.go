package rewrite

import (
	"strconv"
	"strings"
)

// lexConstants is normalize without cgo for the plain statements that make
// up most simple-protocol traffic: pg_query.Scan and its protobuf are a tenth
// of the proxy's CPU under pgbench -M simple.
//
// A template keyed on a constant boundary or kind that PostgreSQL's lexer
// (scan.l, PostgreSQL 16 as in pg_query) would read differently applies to
// the wrong statement, so this lexer knows only a subset of the language in
// which every token boundary is certain, and reports sure false for anything
// else: the caller then asks pg_query.Scan. When sure, its (n, ok) is what
// scanNormalize returns; FuzzNormalize holds it to that.
//
// Not known, so not sure: any byte outside printable ASCII, tab, CR and LF
// (\f and \v are whitespace to some PostgreSQL versions, NUL ends the C
// string); backslash (an escape when standard_conforming_strings is off);
// '$' outside strings, names and comments (parameters, dollar quotes,
// identifiers containing '$': inside a string it is just text); '/*'
// comments; a letter right before a quote (E'x', B'0', X'f', N'x', U&'x');
// strings followed by whitespace and another quote (one continued SCONST);
// numbers with '_', a base prefix, trailing letters or a following '.';
// '..'; unterminated or empty quoted names; long operators; '{', '}'.
func lexConstants(sql string) (n normalized, ok, sure bool) {
	var buf [16]span // most statements have few constants
	spans, ok, sure := lexSpans(sql, buf[:0])
	if !ok {
		return normalized{}, false, sure
	}
	n.kinds = make([]byte, len(spans))
	n.consts = make([]string, len(spans))
	var text strings.Builder
	text.Grow(normalizedLen(sql, spans))
	last := 0
	for k, s := range spans {
		n.kinds[k] = s.kind
		n.consts[k] = sql[s.start:s.end]
		text.WriteString(sql[last:s.start])
		text.WriteByte('$')
		text.WriteString(strconv.Itoa(k + 1))
		last = s.end
	}
	text.WriteString(sql[last:])
	n.text = text.String()
	return n, true, true
}

// span is a constant found by lexSpans: sql[start:end], of kind.
type span struct {
	start, end int
	kind       byte
}

// lexSpans is lexConstants' scan: it appends the constants' spans to spans.
// ok is false when there are none or the text is not sure. It reads each
// byte once, by its class (lexClass): a byte outside the subset anywhere,
// in strings, names and comments too, makes the text not sure.
func lexSpans(sql string, spans []span) (_ []span, ok, sure bool) {
	ops := 0 // length of the current run of operator characters
	for i := 0; i < len(sql); {
		c := sql[i]
		cl := lexClass[c] & lxClassMask
		if cl >= lxDash && cl <= lxOp {
			// PostgreSQL refuses operators of NAMEDATALEN (64) characters.
			if ops++; ops > 32 {
				return spans, false, false
			}
		} else {
			ops = 0
		}
		switch cl {
		case lxSpace:
			i++
		case lxIdent:
			j := i + 1
			for j < len(sql) && lexClass[sql[j]]&lxIdentCont != 0 {
				j++
			}
			if j < len(sql) && (sql[j] == '\'' || sql[j] == '&' && j == i+1 && (c == 'u' || c == 'U')) {
				return spans, false, false // a string prefix: E'x', U&'x', …
			}
			i = j
		case lxDigit:
			end, kind, sure := lexNumber(sql, i)
			if !sure {
				return spans, false, false
			}
			spans = append(spans, span{i, end, kind})
			i = end
		case lxDot:
			switch {
			case i+1 < len(sql) && isDigit(sql[i+1]):
				end, kind, sure := lexNumber(sql, i)
				if !sure {
					return spans, false, false
				}
				spans = append(spans, span{i, end, kind})
				i = end
			case i+1 < len(sql) && sql[i+1] == '.':
				return spans, false, false
			default:
				i++
			}
		case lxQuote:
			end := lexQuoted(sql, i)
			if end < 0 || quoteFollows(sql, end) {
				return spans, false, false
			}
			spans = append(spans, span{i, end, constString})
			i = end
		case lxDQuote:
			end := lexQuoted(sql, i)
			if end < 0 || end == i+2 {
				return spans, false, false // unterminated, not sure, or the zero-length name ""
			}
			i = end
		case lxDash:
			if i+1 < len(sql) && sql[i+1] == '-' {
				// A comment to the end of the line, even inside an
				// operator (scan.l cuts operators at "--").
				if i = skipLineComment(sql, i); i < 0 {
					return spans, false, false
				}
				ops = 0
			} else {
				i++
			}
		case lxSlash:
			if i+1 < len(sql) && sql[i+1] == '*' {
				return spans, false, false
			}
			i++
		case lxOp, lxSelf:
			i++
		default: // '$' (a parameter, a dollar quote, or in a name), '{', '}', or not in the subset
			return spans, false, false
		}
	}
	return spans, len(spans) > 0, true
}

// Byte classes of lexSpans (lexClass). The operator characters are the
// classes from lxDash to lxOp.
const (
	lxBad   = iota // anywhere: outside printable ASCII, tab, CR and LF, or '\\'
	lxOther        // outside strings, names and comments: '$', '{', '}'
	lxSpace
	lxIdent  // ident_start
	lxDigit  // a digit
	lxQuote  // '
	lxDQuote // "
	lxDot    // '.': self, a number's start, or '..'
	lxDash   // '-': an operator character, or a comment's start
	lxSlash  // '/': an operator character, or a comment's start
	lxOp     // the other op_chars
	lxSelf   // the self characters that are not op_chars

	lxClassMask = 0x3f
	lxIdentCont = 0x40 // flag: ident_cont (a letter, '_' or a digit)
)

// lexClass is the class of each byte, with the lxIdentCont flag; read-only.
var lexClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case c < 0x20 && b != '\t' && b != '\n' && b != '\r' || c >= 0x7f || b == '\\':
			t[c] = lxBad
		case b == ' ' || b == '\t' || b == '\n' || b == '\r':
			t[c] = lxSpace
		case isIdentStart(b):
			t[c] = lxIdent | lxIdentCont
		case isDigit(b):
			t[c] = lxDigit | lxIdentCont
		case b == '\'':
			t[c] = lxQuote
		case b == '"':
			t[c] = lxDQuote
		case b == '.':
			t[c] = lxDot
		case b == '-':
			t[c] = lxDash
		case b == '/':
			t[c] = lxSlash
		case isOpChar(b):
			t[c] = lxOp
		case isSelfChar(b):
			t[c] = lxSelf
		default:
			t[c] = lxOther
		}
	}
	return t
}()

// normalizedLen is the length of sql with spans replaced by $1..$n.
func normalizedLen(sql string, spans []span) int {
	size := len(sql)
	for k, s := range spans {
		size += 1 + digits(k+1) - (s.end - s.start)
	}
	return size
}

// appendNormalized appends sql with spans replaced by $1..$n, as
// lexConstants' text (sameAsScan in lex_test.go holds the two together).
func appendNormalized(b []byte, sql string, spans []span) []byte {
	last := 0
	for k, s := range spans {
		b = append(b, sql[last:s.start]...)
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(k+1), 10)
		last = s.end
	}
	return append(b, sql[last:]...)
}

func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// lexNumber reads the number at sql[i:] (a digit, or '.' and a digit) as
// scan.l's decinteger, numeric and real rules do, without their '_'
// separators and base prefixes.
func lexNumber(sql string, i int) (end int, kind byte, sure bool) {
	j := i
	for j < len(sql) && isDigit(sql[j]) {
		j++
	}
	float := false
	if j < len(sql) && sql[j] == '.' {
		if j+1 < len(sql) && sql[j+1] == '.' {
			return 0, 0, false // "1..": an integer, then DOT_DOT
		}
		float = true
		for j++; j < len(sql) && isDigit(sql[j]); j++ {
		}
	}
	if j < len(sql) && (sql[j] == 'e' || sql[j] == 'E') {
		k := j + 1
		if k < len(sql) && (sql[k] == '+' || sql[k] == '-') {
			k++
		}
		if k >= len(sql) || !isDigit(sql[k]) {
			return 0, 0, false // trailing junk (an error to scan.l)
		}
		for k < len(sql) && isDigit(sql[k]) {
			k++
		}
		j, float = k, true
	}
	// Letters, '_' or digits after a number are junk or another form
	// (0x1, 1_000); a '.' after a complete number is legal but rare.
	if j < len(sql) && (isIdentCont(sql[j]) || sql[j] == '.') {
		return 0, 0, false
	}
	if float || !fitsInt32(sql[i:j]) {
		return j, constFloat, true
	}
	return j, constInt, true
}

// fitsInt32 reports whether the digits are at most 2^31-1: scan.l's
// process_integer_literal makes the rest FCONST. Leading zeros are fine.
func fitsInt32(digits string) bool {
	var v uint64
	for i := 0; i < len(digits); i++ {
		if v = v*10 + uint64(digits[i]-'0'); v > 1<<31-1 {
			return false
		}
	}
	return true
}

// lexQuoted returns the end of the string or quoted name opening at sql[i],
// whose quote character is doubled inside it, or -1 when unterminated or
// not sure (a byte of class lxBad inside).
func lexQuoted(sql string, i int) int {
	q := sql[i]
	for j := i + 1; j < len(sql); j++ {
		if sql[j] != q {
			if lexClass[sql[j]] == lxBad {
				return -1
			}
			continue
		}
		if j+1 < len(sql) && sql[j+1] == q {
			j++
			continue
		}
		return j + 1
	}
	return -1
}

// quoteFollows reports whether whitespace and comments after a string lead
// to another quote: with a newline among them scan.l continues the string
// as one SCONST, so either way it is not ours.
func quoteFollows(sql string, i int) bool {
	for i < len(sql) {
		switch c := sql[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			if i = skipLineComment(sql, i); i < 0 {
				return false // not sure: lexSpans finds it again
			}
		default:
			return c == '\''
		}
	}
	return false
}

// skipLineComment returns the end of the "--" comment at sql[i]: scan.l's
// comment runs to the next CR or LF. It returns -1 for a comment with a
// byte of class lxBad, which is not sure.
func skipLineComment(sql string, i int) int {
	for i += 2; i < len(sql) && sql[i] != '\n' && sql[i] != '\r'; i++ {
		if lexClass[sql[i]] == lxBad {
			return -1
		}
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isIdentStart and isIdentCont are scan.l's ident_start and ident_cont
// without the non-ASCII bytes and '$', which lexConstants refuses.
func isIdentStart(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' }

func isIdentCont(c byte) bool { return isIdentStart(c) || isDigit(c) }

// isOpChar is scan.l's op_chars, isSelfChar its self (single-character
// tokens); together they are the punctuation that never starts a constant.
func isOpChar(c byte) bool {
	switch c {
	case '~', '!', '@', '#', '^', '&', '|', '`', '?', '+', '-', '*', '/', '%', '<', '>', '=':
		return true
	}
	return false
}

func isSelfChar(c byte) bool {
	switch c {
	case ',', '(', ')', '[', ']', '.', ';', ':', '+', '-', '*', '/', '%', '^', '<', '>', '=':
		return true
	}
	return false
}
