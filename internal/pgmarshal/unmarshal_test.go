package pgmarshal

import (
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"github.com/pganalyze/pg_query_go/v5/parser"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// checkDecode decodes pb with Unmarshal and proto.Unmarshal: when Unmarshal
// succeeds, proto.Unmarshal must too, with an equal tree. It reports
// whether Unmarshal succeeded.
func checkDecode(t *testing.T, pb []byte, what string) bool {
	t.Helper()
	var want, got pg_query.ParseResult
	werr := proto.Unmarshal(pb, &want)
	gerr := Unmarshal(pb, &got)
	if gerr != nil {
		return false
	}
	if werr != nil {
		t.Fatalf("%s: Unmarshal accepts what proto.Unmarshal refuses (%v)", what, werr)
	}
	if !proto.Equal(&want, &got) {
		t.Fatalf("%s: Unmarshal's tree differs from proto.Unmarshal's", what)
	}
	return true
}

// TestUnmarshalSameAsProto decodes the C parser's output for every
// statement of the corpora and goldens as proto.Unmarshal does, and the
// edge trees of TestEdgeValues that proto.Marshal can write.
func TestUnmarshalSameAsProto(t *testing.T) {
	for _, s := range statements(t) {
		pb, err := parser.ParseToProtobuf(s)
		if err != nil {
			t.Fatal(err)
		}
		if !checkDecode(t, pb, s) {
			t.Fatalf("Unmarshal refuses the parse of %q", s)
		}
	}
	for name, tree := range edgeTrees() {
		pb, err := proto.Marshal(tree)
		if err != nil {
			continue // invalid UTF-8
		}
		if !checkDecode(t, pb, name) {
			t.Errorf("%s: Unmarshal refuses proto.Marshal's bytes", name)
		}
	}
}

// TestUnmarshalRefuses: malformed input, a field the schema lacks, a wire
// type that is not the field's, invalid UTF-8 and nesting past protobuf's
// recursion limit are errors.
func TestUnmarshalRefuses(t *testing.T) {
	deep := []byte{}
	for range recursionLimit + 5 {
		// Node.list (field 233) holding a List whose items (field 1) hold
		// the next Node.
		deep = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), deep)
		deep = protowire.AppendBytes(protowire.AppendTag(nil, 233, protowire.BytesType), deep)
	}
	deep = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), deep)      // RawStmt.stmt
	deep = protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), deep)      // ParseResult.stmts
	str := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "a\xffb") // String.sval
	str = protowire.AppendBytes(protowire.AppendTag(nil, 247, protowire.BytesType), str)      // Node.string
	str = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), str)
	str = protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), str)
	for name, pb := range map[string][]byte{
		"truncated":     {0x12, 0x05, 0x0a},
		"bad tag":       {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"unknown field": protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1),
		"wrong type":    protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), nil),
		"invalid utf-8": str,
		"too deep":      deep,
	} {
		var tree pg_query.ParseResult
		if err := Unmarshal(pb, &tree); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzUnmarshal: what Unmarshal accepts, proto.Unmarshal decodes the same;
// the parse of any text that parses is accepted unless proto.Unmarshal
// refuses it too.
func FuzzUnmarshal(f *testing.F) {
	f.Add("SELECT 1", []byte{0x08, 0x01, 0x12, 0x00})
	f.Add("SELECT a[1], -1.5, B'1' FROM t WHERE x IN (1, 2)", []byte{0x12, 0x03, 0x0a, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, sql string, raw []byte) {
		checkDecode(t, raw, "raw bytes")
		pb, err := parser.ParseToProtobuf(sql)
		if err != nil {
			return
		}
		// Both refuse a parse with invalid UTF-8 (the C parser passes it on).
		if !checkDecode(t, pb, sql) && proto.Unmarshal(pb, &pg_query.ParseResult{}) == nil {
			t.Fatalf("Unmarshal refuses the parse of %q", sql)
		}
	})
}

// BenchmarkUnmarshal is the A/B of Unmarshal against proto.Unmarshal over
// the TPC-H queries' parses; one op = the 22 queries.
func BenchmarkUnmarshal(b *testing.B) {
	var pbs [][]byte
	for _, tree := range tpchTrees(b) {
		pb, err := proto.Marshal(tree)
		if err != nil {
			b.Fatal(err)
		}
		pbs = append(pbs, pb)
	}
	for _, c := range []struct {
		name      string
		unmarshal func([]byte, *pg_query.ParseResult) error
	}{
		{"proto", func(pb []byte, t *pg_query.ParseResult) error { return proto.Unmarshal(pb, t) }},
		{"pgmarshal", Unmarshal},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, pb := range pbs {
					if err := c.unmarshal(pb, &pg_query.ParseResult{}); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
