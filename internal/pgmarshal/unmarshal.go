package pgmarshal

import (
	"errors"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/encoding/protowire"
)

var (
	errWire    = errors.New("pgmarshal: malformed protobuf")
	errUnknown = errors.New("pgmarshal: field unknown to pg_query's schema")
	// errDepth is proto.Unmarshal's limit too (protowire.DefaultRecursionLimit).
	errDepth = errors.New("pgmarshal: exceeded maximum recursion depth")
)

// recursionLimit is how deep proto.Unmarshal nests messages by default.
const recursionLimit = 10000

// Unmarshal decodes a ParseResult from pg_query's C parser into tree, as
// proto.Unmarshal(b, tree) does but for a field the schema does not have,
// which it refuses. tree should be empty.
func Unmarshal(b []byte, tree *pg_query.ParseResult) error {
	return unmarshalParseResult(b, tree, recursionLimit)
}

func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	num, typ, n := protowire.ConsumeTag(b)
	return num, typ, n
}

func consumeVarint(b []byte, typ protowire.Type) (uint64, int) {
	if typ != protowire.VarintType {
		return 0, -1
	}
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}

func consumeFixed64(b []byte, typ protowire.Type) (uint64, int) {
	if typ != protowire.Fixed64Type {
		return 0, -1
	}
	return protowire.ConsumeFixed64(b)
}

func consumeBytes(b []byte, typ protowire.Type) ([]byte, int) {
	if typ != protowire.BytesType {
		return nil, -1
	}
	if len(b) > 0 && b[0] < 0x80 {
		if n := int(b[0]); n < len(b) {
			return b[1 : 1+n], 1 + n
		}
	}
	return protowire.ConsumeBytes(b)
}

// consumeUint64s appends a repeated uint64 field's values to vs, packed or
// not.
func consumeUint64s(b []byte, typ protowire.Type, vs []uint64) ([]uint64, int, error) {
	if typ == protowire.VarintType {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return vs, 0, errWire
		}
		return append(vs, v), n, nil
	}
	p, n := consumeBytes(b, typ)
	if n < 0 {
		return vs, 0, errWire
	}
	for len(p) > 0 {
		v, k := protowire.ConsumeVarint(p)
		if k < 0 {
			return vs, 0, errWire
		}
		vs = append(vs, v)
		p = p[k:]
	}
	return vs, n, nil
}

func validUTF8(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.Valid(b)
		}
	}
	return true
}
