package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgproto3"
)

// encodeStream encodes msgs as a client (FrontendMessage) or a server
// (BackendMessage) would send them.
func encodeStream[M interface{ Encode([]byte) ([]byte, error) }](t testing.TB, msgs []M) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func sampleFrontend(big int) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{
		&pgproto3.PasswordMessage{Password: "token"},
		&pgproto3.Query{String: "SELECT 1"},
		&pgproto3.Parse{Name: "s1", Query: "SELECT $1::int", ParameterOIDs: []uint32{23}},
		&pgproto3.Bind{DestinationPortal: "", PreparedStatement: "s1", ParameterFormatCodes: []int16{0}, Parameters: [][]byte{[]byte("42"), nil}, ResultFormatCodes: []int16{1}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{MaxRows: 10},
		&pgproto3.Query{String: "SELECT '" + string(bytes.Repeat([]byte("x"), big)) + "'"},
		&pgproto3.Close{ObjectType: 'S', Name: "s1"},
		&pgproto3.Flush{},
		&pgproto3.Sync{},
		&pgproto3.CopyData{Data: []byte("row")},
		&pgproto3.CopyDone{},
		&pgproto3.CopyFail{Message: "no"},
		&pgproto3.Terminate{},
	}
}

// chunky returns at most n bytes per Read and, every other call, a timeout
// before any byte: a read interrupted mid-message must lose nothing.
type chunky struct {
	r       io.Reader
	n       int
	calls   int
	timeout bool
}

func (c *chunky) Read(p []byte) (int, error) {
	c.calls++
	if c.timeout && c.calls%2 == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	return c.r.Read(p[:min(len(p), c.n)])
}

// TestMsgReaderMatchesBackend decodes the same streams as pgproto3's Backend,
// however the bytes arrive.
func TestMsgReaderMatchesBackend(t *testing.T) {
	msgs := sampleFrontend(3 * readBufSize)
	stream := encodeStream(t, msgs)
	for _, n := range []int{1, 3, 5, 7, 100, readBufSize, 1 << 20} {
		for _, timeout := range []bool{false, true} {
			r := newMsgReader(&chunky{r: bytes.NewReader(stream), n: n, timeout: timeout}, newReadBufPool(), nil, nil)
			for i, want := range msgs {
				var got pgproto3.FrontendMessage
				var err error
				for {
					got, err = r.receive()
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						break
					}
				}
				if err != nil {
					t.Fatalf("chunk %d timeout %v: message %d: %v", n, timeout, i, err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("chunk %d timeout %v: message %d (-want +got):\n%s", n, timeout, i, diff)
				}
			}
			_, err := r.receive()
			for errors.Is(err, os.ErrDeadlineExceeded) {
				_, err = r.receive()
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("chunk %d: after the stream: %v, want io.ErrUnexpectedEOF", n, err)
			}
		}
	}
}

func TestMsgReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream []byte
		max    int
		check  func(error) bool
	}{
		{"too big", encodeStream(t, []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 12345"}}), 8,
			func(err error) bool {
				var e *pgproto3.ExceededMaxBodyLenErr
				return errors.As(err, &e) && e.ActualBodyLen == 13
			}},
		{"bad length", []byte{'Q', 0, 0, 0, 3}, 0, func(err error) bool { return err != nil }},
		{"unknown type", []byte{'z', 0, 0, 0, 4}, 0, func(err error) bool { return err != nil }},
		{"truncated", []byte{'Q', 0, 0, 0, 9, 'S'}, 0, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newMsgReader(bytes.NewReader(tc.stream), newReadBufPool(), nil, nil)
			r.maxBodyLen = tc.max
			if _, err := r.receive(); !tc.check(err) {
				t.Errorf("receive: %v", err)
			}
		})
	}
}

// tcpPair returns both ends of a loopback TCP connection, the server's
// wrapped as the proxy wraps it.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, wrapSocket(server)
}

// TestMsgReaderIdleHoldsNoBuffer: a reader parked on a socket waiting for
// the next message holds no read buffer, and one that timed out there
// holds none either.
func TestMsgReaderIdleHoldsNoBuffer(t *testing.T) {
	client, server := tcpPair(t)
	if _, ok := server.(pooledReader); !ok {
		t.Skip("no pooled reads on this platform")
	}
	pool := newReadBufPool()
	r := newMsgReader(server, pool, nil, nil)
	// Messages that point into the buffer they were decoded from, more
	// parameters than the decoder keeps an array for included.
	many := make([][]byte, reuseMax+1)
	for i := range many {
		many[i] = []byte("7")
	}
	batch := []pgproto3.FrontendMessage{
		&pgproto3.Query{String: "SELECT 1"},
		&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("42"), nil}, ResultFormatCodes: []int16{}},
		&pgproto3.Bind{PreparedStatement: "s2", Parameters: many, ResultFormatCodes: []int16{}},
		&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("43")}, ResultFormatCodes: []int16{}},
		&pgproto3.FunctionCall{Function: 1, ArgFormatCodes: []uint16{}, Arguments: [][]byte{[]byte("x")}},
		&pgproto3.CopyData{Data: []byte("row")},
	}
	got := make(chan error, 1)
	go func() {
		for i := 0; i <= len(batch); i++ {
			m, err := r.receive()
			if err == nil && !cmp.Equal(m, batch[i]) {
				err = fmt.Errorf("message %d: %#v, want %#v", i, m, batch[i])
			}
			got <- err
		}
	}()
	if _, err := client.Write(encodeStream(t, batch)); err != nil {
		t.Fatal(err)
	}
	// The second receive parks: nothing more comes. The reader's fields
	// are the loop's; look once its wait ends at a deadline, as an
	// interrupt would end it.
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	for range batch {
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-got; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("last receive: %v, want a timeout", err)
	}
	if r.buf != nil || r.big != nil {
		t.Errorf("a reader that timed out waiting holds a %d-byte buffer", len(r.bytes()))
	}
	// Nor does a message it decoded point into one the pool may drop.
	var stale [][]byte
	stale = append(stale, r.dec.params...)
	stale = append(stale, r.fly.bind.Parameters[:cap(r.fly.bind.Parameters)]...)
	stale = append(stale, r.fly.functionCall.Arguments...)
	stale = append(stale, r.fly.copyData.Data)
	for i, b := range stale {
		if b != nil {
			t.Errorf("a decoded message still points into the read buffer (%d: %q)", i, b)
		}
	}
}

// TestMsgReaderAllocs guards the per-message cost: reading a batch
// allocates nothing beyond what decoding its messages does, as with
// pgproto3's Backend.
func TestMsgReaderAllocs(t *testing.T) {
	batch := encodeStream(t, extendedBatch())
	src := bytes.NewReader(nil)
	r := newMsgReader(src, newReadBufPool(), nil, nil)
	be := pgproto3.NewBackend(src, io.Discard)
	count := func(receive func() (pgproto3.FrontendMessage, error)) float64 {
		return testing.AllocsPerRun(200, func() {
			src.Reset(batch)
			for range 5 {
				if _, err := receive(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if got, want := count(r.receive), count(be.Receive); got > want {
		t.Errorf("%.1f allocations per Parse … Sync batch, pgproto3's Backend %.1f", got, want)
	}
}

func extendedBatch() []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{
		&pgproto3.Parse{Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("4244")}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	}
}

func BenchmarkMsgReaderExtendedBatch(b *testing.B) {
	batch := encodeStream(b, extendedBatch())
	src := bytes.NewReader(nil)
	r := newMsgReader(src, newReadBufPool(), nil, nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		src.Reset(batch)
		for j := 0; j < 5; j++ {
			if _, err := r.receive(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkBackendExtendedBatch(b *testing.B) {
	batch := encodeStream(b, extendedBatch())
	src := bytes.NewReader(nil)
	be := pgproto3.NewBackend(src, io.Discard)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		src.Reset(batch)
		for j := 0; j < 5; j++ {
			if _, err := be.Receive(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
