package proxy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgproto3"
)

// decodeKinds are the messages frontendDecoder decodes itself.
var decodeKinds = map[byte]func() pgproto3.FrontendMessage{
	'Q': func() pgproto3.FrontendMessage { return &pgproto3.Query{} },
	'P': func() pgproto3.FrontendMessage { return &pgproto3.Parse{} },
	'B': func() pgproto3.FrontendMessage { return &pgproto3.Bind{} },
	'D': func() pgproto3.FrontendMessage { return &pgproto3.Describe{} },
	'E': func() pgproto3.FrontendMessage { return &pgproto3.Execute{} },
}

// FuzzDecodeFrontend: the decoder accepts exactly what pgproto3's Decode
// accepts, with the same error, and decodes the same fields, also when the
// message before (decoded into the same flyweight) was another.
func FuzzDecodeFrontend(f *testing.F) {
	for _, m := range append(sampleFrontend(10), extendedBatch()...) {
		b, err := m.Encode(nil)
		if err != nil {
			f.Fatal(err)
		}
		if _, ok := decodeKinds[b[0]]; ok {
			f.Add(b[0], b[5:], b[5:])
			f.Add(b[0], b[5:], b[5:len(b)-1])
		}
	}
	f.Add(byte('B'), []byte("\x00s\x00\x00\x01\x00\x01\x00\x02\xff\xff\xff\xff\x00\x00\x00\x01x\x00\x02\x00\x01\x00\x00"), []byte("p\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, kind byte, first, second []byte) {
		mk, ok := decodeKinds[kind]
		if !ok {
			return
		}
		var d frontendDecoder
		fly := mk()
		for _, body := range [][]byte{first, second, first} {
			body = append([]byte(nil), body...)
			want := mk()
			wantErr := want.Decode(body)
			gotErr := d.decode(fly, body)
			if (wantErr == nil) != (gotErr == nil) || wantErr != nil && wantErr.Error() != gotErr.Error() {
				t.Fatalf("%c %q: error %v, pgproto3's %v", kind, body, gotErr, wantErr)
			}
			if wantErr != nil {
				continue
			}
			if diff := cmp.Diff(want, fly); diff != "" {
				t.Fatalf("%c %q (-pgproto3 +ours):\n%s", kind, body, diff)
			}
		}
	})
}

// TestKeptFormats: a portal's result formats are its own, not the
// reader's slice, which the next Bind reuses.
func TestKeptFormats(t *testing.T) {
	for _, codes := range [][]int16{nil, {}, {0}, {1}, {0, 1}, {1, 1, 0}} {
		in := append([]int16(nil), codes...)
		got := keptFormats(in)
		if diff := cmp.Diff(codes, got, cmpEmptyNil); diff != "" {
			t.Errorf("keptFormats(%v) (-want +got):\n%s", codes, diff)
		}
		for i := range in {
			in[i] = 7
		}
		if diff := cmp.Diff(codes, got, cmpEmptyNil); diff != "" {
			t.Errorf("keptFormats(%v) changed with its input (-want +got):\n%s", codes, diff)
		}
	}
}

var cmpEmptyNil = cmp.Comparer(func(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
})
