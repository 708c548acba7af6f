package proxy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgproto3"
)

func sampleBackend(big int) []pgproto3.BackendMessage {
	return []pgproto3.BackendMessage{
		&pgproto3.ParseComplete{},
		&pgproto3.BindComplete{},
		&pgproto3.ParameterDescription{ParameterOIDs: []uint32{23, 25}},
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("1"), nil}},
		&pgproto3.DataRow{Values: [][]byte{bytes.Repeat([]byte("x"), big)}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 2")},
		&pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "hello"},
		&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42P01", Message: "no such table", Position: 15},
		&pgproto3.ParameterStatus{Name: "TimeZone", Value: "UTC"},
		&pgproto3.EmptyQueryResponse{},
		&pgproto3.PortalSuspended{},
		&pgproto3.NoData{},
		&pgproto3.CloseComplete{},
		&pgproto3.ReadyForQuery{TxStatus: 'T'},
	}
}

// trickleReader returns at most n bytes a read and, when timeouts is set,
// a deadline error before every read that returns data.
type trickleReader struct {
	r        io.Reader
	n        int
	timeouts bool
	timedOut bool
}

func (t *trickleReader) Read(p []byte) (int, error) {
	if t.timeouts && !t.timedOut {
		t.timedOut = true
		return 0, os.ErrDeadlineExceeded
	}
	t.timedOut = false
	return t.r.Read(p[:min(len(p), t.n)])
}

// TestFrameReader reads every kind of message, split at every size and
// interrupted by deadlines, and checks that each frame is the message's
// bytes and decodes to it.
func TestFrameReader(t *testing.T) {
	msgs := sampleBackend(3 * frameBufSize)
	stream := encodeStream(t, msgs)
	for _, tc := range []struct {
		name     string
		chunk    int
		timeouts bool
	}{
		{"whole", len(stream), false},
		{"bytewise", 1, false},
		{"odd chunks", 7, false},
		{"deadlines", 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := &serverConn{rd: frameReader{r: &trickleReader{r: bytes.NewReader(stream), n: tc.chunk, timeouts: tc.timeouts}}}
			for i, want := range msgs {
				var frame []byte
				var err error
				for {
					frame, err = sc.ReceiveFrame()
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						break
					}
				}
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				wantBytes, _ := want.Encode(nil)
				if !bytes.Equal(frame, wantBytes) {
					t.Fatalf("message %d: frame %q, want %q", i, frame, wantBytes)
				}
				got, err := sc.Decode(frame)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("message %d (-want +got):\n%s", i, diff)
				}
			}
			// As pgproto3's Frontend: the warehouse never closes between messages.
			_, err := sc.ReceiveFrame()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				_, err = sc.ReceiveFrame()
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("at the end: %v, want %v", err, io.ErrUnexpectedEOF)
			}
		})
	}
}

func TestFrameReaderErrors(t *testing.T) {
	row, _ := (&pgproto3.DataRow{Values: [][]byte{make([]byte, 100)}}).Encode(nil)
	for _, tc := range []struct {
		name    string
		stream  []byte
		maxBody int
		check   func(error) bool
	}{
		{"too long", row, 50, func(err error) bool {
			var e *pgproto3.ExceededMaxBodyLenErr
			return errors.As(err, &e) && e.ActualBodyLen == len(row)-5
		}},
		{"cut short", row[:20], 0, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"bad length", []byte{'D', 0, 0, 0, 3}, 0, func(err error) bool { return err != nil && !errors.Is(err, io.EOF) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := frameReader{r: bytes.NewReader(tc.stream), maxBody: tc.maxBody}
			if _, err := fr.next(); !tc.check(err) {
				t.Fatalf("unexpected error %v", err)
			}
		})
	}
	var d backendMessages
	if _, err := d.decode([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 0}); err == nil {
		t.Fatal("decoded an authentication message after startup")
	}
}

// TestRowDescriptionReuse: a RowDescription with the bytes of the last one
// is not decoded again, and what it gives stays right when the frame's
// buffer is reused and when descriptions alternate.
func TestRowDescriptionReuse(t *testing.T) {
	a := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), TableOID: 16400, TableAttributeNumber: 3, DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}}
	b := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("id"), DataTypeOID: 20, DataTypeSize: 8, TypeModifier: -1},
		{Name: []byte("name"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1, Format: 1},
	}}
	var d backendMessages
	buf := make([]byte, 0, 256) // the read buffer: each frame overwrites the last
	for i, want := range []*pgproto3.RowDescription{a, a, b, b, a, b} {
		frame, err := want.Encode(buf[:0])
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.decode(frame)
		if err != nil {
			t.Fatalf("description %d: %v", i, err)
		}
		clear(frame) // the buffer is read into again
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("description %d (-want +got):\n%s", i, diff)
		}
	}
	if _, err := d.decode([]byte{'T', 0, 0, 0, 6, 0, 1}); err == nil {
		t.Fatal("decoded a truncated RowDescription")
	}
	if got, err := d.decode(mustEncode(t, a)); err != nil || cmp.Diff(a, got) != "" {
		t.Fatalf("after a bad frame: %v, %v", got, err)
	}
}

func mustEncode(t *testing.T, m pgproto3.BackendMessage) []byte {
	t.Helper()
	b, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
