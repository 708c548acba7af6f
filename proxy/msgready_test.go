package proxy

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// ready says a message is buffered exactly when receive returns it without
// reading: after each message of a batch read whole, and never for a message
// cut short, whose rest the next read brings.
func TestMsgReaderReady(t *testing.T) {
	batch := encodeStream(t, []pgproto3.FrontendMessage{
		&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("42")}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	})
	for _, cut := range []int{len(batch), len(batch) - 1, len(batch) - 3, 7, 3} {
		src := &chunky{r: bytes.NewReader(batch), n: cut}
		r := newMsgReader(src, newReadBufPool(), nil, nil)
		if r.ready() {
			t.Fatalf("cut %d: ready before any read", cut)
		}
		for i := 0; i < 4; i++ {
			reads, was := r.reads, r.ready()
			if _, err := r.receive(); err != nil {
				t.Fatalf("cut %d, message %d: %v", cut, i, err)
			}
			if read := r.reads != reads; was == read {
				t.Errorf("cut %d, message %d: ready() = %v, but receive read: %v", cut, i, was, read)
			}
		}
		if r.ready() {
			t.Errorf("cut %d: ready after the batch", cut)
		}
	}
}

// An invalid length is left to receive, which reports it.
func TestMsgReaderReadyInvalidLength(t *testing.T) {
	r := newMsgReader(bytes.NewReader([]byte{'S', 0, 0, 0, 2, 'S', 0, 0, 0, 4}), newReadBufPool(), nil, nil)
	if err := r.fill(5); err != nil {
		t.Fatal(err)
	}
	if r.ready() {
		t.Error("ready with a length below 4")
	}
	if _, err := r.receive(); err == nil {
		t.Error("receive took a length below 4")
	}
}
