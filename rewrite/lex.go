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
// ok is false when there are none or the text is not sure.
func lexSpans(sql string, spans []span) (_ []span, ok, sure bool) {
	for i := 0; i < len(sql); i++ {
		if c := sql[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c >= 0x7f || c == '\\' {
			return spans, false, false
		}
	}
	ops := 0 // length of the current run of operator characters
	for i := 0; i < len(sql); {
		c := sql[i]
		if isOpChar(c) {
			// PostgreSQL refuses operators of NAMEDATALEN (64) characters.
			if ops++; ops > 32 {
				return spans, false, false
			}
		} else {
			ops = 0
		}
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(sql) && isIdentCont(sql[j]) {
				j++
			}
			if j < len(sql) && (sql[j] == '\'' || sql[j] == '&' && j == i+1 && (c == 'u' || c == 'U')) {
				return spans, false, false // a string prefix: E'x', U&'x', …
			}
			i = j
		case isDigit(c) || c == '.' && i+1 < len(sql) && isDigit(sql[i+1]):
			end, kind, sure := lexNumber(sql, i)
			if !sure {
				return spans, false, false
			}
			spans = append(spans, span{i, end, kind})
			i = end
		case c == '\'':
			end := lexQuoted(sql, i)
			if end < 0 || quoteFollows(sql, end) {
				return spans, false, false
			}
			spans = append(spans, span{i, end, constString})
			i = end
		case c == '"':
			end := lexQuoted(sql, i)
			if end < 0 || end == i+2 {
				return spans, false, false // unterminated, or the zero-length name ""
			}
			i = end
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			// A comment to the end of the line, even inside an operator
			// (scan.l cuts operators at "--").
			i = skipLineComment(sql, i)
			ops = 0
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*',
			c == '.' && i+1 < len(sql) && sql[i+1] == '.':
			return spans, false, false
		case isOpChar(c) || isSelfChar(c):
			i++
		default: // '$' (a parameter, a dollar quote, or in a name), '{', '}'
			return spans, false, false
		}
	}
	return spans, len(spans) > 0, true
}

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
// whose quote character is doubled inside it, or -1 when unterminated.
func lexQuoted(sql string, i int) int {
	q := sql[i]
	for j := i + 1; j < len(sql); j++ {
		if sql[j] != q {
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
			i = skipLineComment(sql, i)
		default:
			return c == '\''
		}
	}
	return false
}

// skipLineComment returns the end of the "--" comment at sql[i]: scan.l's
// comment runs to the next CR or LF.
func skipLineComment(sql string, i int) int {
	for i += 2; i < len(sql) && sql[i] != '\n' && sql[i] != '\r'; i++ {
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
