package proxy

// Decoding the client's messages of the query cycle without allocating.
// pgproto3's Decode copies every name and text into a new string and makes
// new slices for each Bind, four or five allocations per transaction that a
// driver repeating the same statement does not need: names and texts equal
// to the connection's previous ones are the same string again, and Bind's
// slices reuse the reader's. The result is exactly what pgproto3 decodes,
// field for field; a malformed message goes to pgproto3's Decode, so that
// the error is its own (FuzzDecodeFrontend checks both).

import (
	"bytes"
	"encoding/binary"

	"github.com/jackc/pgx/v5/pgproto3"
)

const (
	// internMax is the longest text the reader keeps to compare the next
	// one with: a text that size costs more to copy than to keep, and an
	// idle client keeps a few of them at most.
	internMax = 1 << 10
	// reuseMax caps the Bind slices the reader keeps for the next Bind.
	reuseMax = 64
)

// interned keeps the last string decoded for one field.
type interned struct{ s string }

// of returns b as a string: the previous one when the bytes are the same.
func (in *interned) of(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if string(b) == in.s { // compared without a copy
		return in.s
	}
	s := string(b)
	if len(s) <= internMax {
		in.s = s
	}
	return s
}

// frontendDecoder holds what the reader reuses from one message to the next.
type frontendDecoder struct {
	query, parseName, parseQuery, portal, stmt, describe, execute interned
	// Bind's slices, handed out again at the next Bind: valid, as the
	// message is, until the next receive.
	formats, results []int16
	params           [][]byte
}

// decode fills msg from body as msg.Decode would.
func (d *frontendDecoder) decode(msg pgproto3.FrontendMessage, body []byte) error {
	var ok bool
	switch m := msg.(type) {
	case *pgproto3.Query:
		ok = d.decodeQuery(m, body)
	case *pgproto3.Parse:
		ok = d.decodeParse(m, body)
	case *pgproto3.Bind:
		ok = d.decodeBind(m, body)
	case *pgproto3.Describe:
		ok = d.decodeDescribe(m, body)
	case *pgproto3.Execute:
		ok = d.decodeExecute(m, body)
	}
	if ok {
		return nil
	}
	return msg.Decode(body) // the others, and pgproto3's error for a malformed one
}

// cstring splits off a NUL-terminated string.
func cstring(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

func (d *frontendDecoder) decodeQuery(m *pgproto3.Query, b []byte) bool {
	if len(b) == 0 || bytes.IndexByte(b, 0) != len(b)-1 {
		return false
	}
	m.String = d.query.of(b[:len(b)-1])
	return true
}

func (d *frontendDecoder) decodeParse(m *pgproto3.Parse, b []byte) bool {
	name, b, ok := cstring(b)
	if !ok {
		return false
	}
	query, b, ok := cstring(b)
	if !ok || len(b) < 2 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < 4*n {
		return false
	}
	var oids []uint32
	if n > 0 {
		// A fresh slice, as pgproto3's: the statement keeps its types.
		oids = make([]uint32, n)
		for i := range oids {
			oids[i] = binary.BigEndian.Uint32(b[4*i:])
		}
	}
	*m = pgproto3.Parse{Name: d.parseName.of(name), Query: d.parseQuery.of(query), ParameterOIDs: oids}
	return true
}

func (d *frontendDecoder) decodeBind(m *pgproto3.Bind, b []byte) bool {
	portal, b, ok := cstring(b)
	if !ok {
		return false
	}
	stmt, b, ok := cstring(b)
	if !ok {
		return false
	}
	formats, b, ok := d.int16s(&d.formats, b)
	if !ok || len(b) < 2 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	var params [][]byte
	if n > 0 {
		params = reuse(&d.params, n)
		for i := range params {
			if len(b) < 4 {
				return false
			}
			size := int(int32(binary.BigEndian.Uint32(b)))
			b = b[4:]
			if size == -1 {
				params[i] = nil
				continue
			}
			if size < 0 || len(b) < size {
				return false
			}
			params[i] = b[:size:size]
			b = b[size:]
		}
	}
	results, _, ok := d.int16s(&d.results, b)
	if !ok {
		return false
	}
	if results == nil {
		results = []int16{} // pgproto3 gives an empty slice, not nil; no allocation
	}
	*m = pgproto3.Bind{
		DestinationPortal:    d.portal.of(portal),
		PreparedStatement:    d.stmt.of(stmt),
		ParameterFormatCodes: formats,
		Parameters:           params,
		ResultFormatCodes:    results,
	}
	return true
}

// int16s decodes a count and that many int16s into *keep's array.
func (d *frontendDecoder) int16s(keep *[]int16, b []byte) ([]int16, []byte, bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < 2*n {
		return nil, nil, false
	}
	if n == 0 {
		return nil, b, true
	}
	v := reuse(keep, n)
	for i := range v {
		v[i] = int16(binary.BigEndian.Uint16(b[2*i:]))
	}
	return v, b[2*n:], true
}

// reuse returns a slice of n elements, *keep's array when it is large
// enough; a new array is kept for next time unless it is large.
func reuse[T any](keep *[]T, n int) []T {
	if n <= cap(*keep) {
		return (*keep)[:n]
	}
	v := make([]T, n)
	if n <= reuseMax {
		*keep = v
	}
	return v
}

func (d *frontendDecoder) decodeDescribe(m *pgproto3.Describe, b []byte) bool {
	if len(b) < 2 || bytes.IndexByte(b[1:], 0) != len(b)-2 {
		return false
	}
	m.ObjectType = b[0]
	m.Name = d.describe.of(b[1 : len(b)-1])
	return true
}

func (d *frontendDecoder) decodeExecute(m *pgproto3.Execute, b []byte) bool {
	portal, b, ok := cstring(b)
	if !ok || len(b) < 4 {
		return false
	}
	m.Portal = d.execute.of(portal)
	m.MaxRows = binary.BigEndian.Uint32(b)
	return true
}
