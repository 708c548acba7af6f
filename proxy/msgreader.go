package proxy

// Reading client messages. pgproto3's Backend keeps an 8 KiB read buffer
// for the life of the connection, which is most of what an idle client
// costs at ten thousand clients. msgReader decodes the same messages into
// the same flyweights, but its buffer is borrowed from the server's pool
// only while bytes are buffered or arriving: on a socket (sockConn) the
// borrow happens inside the poller's callback, so a client parked waiting
// for its next message holds no buffer at all, and a wake-up costs no
// system call more than before.

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
)

// readBufSize is the pooled read buffer's size: a batch of typical
// messages (pgbench's Parse … Sync is about 150 bytes) in one read.
const readBufSize = 8 << 10

func newReadBufPool() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}
}

// pooledReader is a source that can borrow the read buffer only once bytes
// are there to read (sockConn).
type pooledReader interface {
	// readPooled reads into a buffer from get, called only once the
	// socket is readable; put takes it back when the read would block.
	readPooled(get func() []byte, put func([]byte)) (n int, err error)
}

// msgReader reads frontend messages. A message it returns is valid until
// the next call to receive (as pgproto3's): Bind parameters point into its
// buffer, and a Bind's slices are reused by the next (msgdecode.go).
type msgReader struct {
	src        io.Reader
	pr         pooledReader // src's, when it has one
	beforeRead func()       // flushes what is owed before a read may block
	afterRead  func(n int)  // counts what was read
	pool       *sync.Pool   // of *[]byte, readBufSize each
	// got is the buffer readPooled borrowed; getBuf and putBuf are bound
	// once, so that a read allocates nothing.
	got        *[]byte
	getBuf     func() []byte
	putBuf     func([]byte)
	buf        *[]byte // nil while nothing is buffered
	big        []byte  // a buffer for one message larger than readBufSize
	rp, wp     int
	maxBodyLen int

	// reads counts the reads that brought bytes: messages returned with
	// no read between them arrived together.
	reads uint64

	// A header read before a timeout: the body follows at the next call.
	partial bool
	msgType byte
	bodyLen int

	fly frontendFlyweights
	dec frontendDecoder
}

// frontendFlyweights are the messages receive decodes into, each made at
// its first use: a client that only ever sends Query holds no Bind.
type frontendFlyweights struct {
	bind         *pgproto3.Bind
	close        *pgproto3.Close
	describe     *pgproto3.Describe
	execute      *pgproto3.Execute
	functionCall *pgproto3.FunctionCall
	copyFail     *pgproto3.CopyFail
	copyData     *pgproto3.CopyData
	copyDone     *pgproto3.CopyDone
	flush        *pgproto3.Flush
	parse        *pgproto3.Parse
	query        *pgproto3.Query
	sync         *pgproto3.Sync
	terminate    *pgproto3.Terminate
}

// fly returns *p, made first if need be.
func fly[T any](p **T) *T {
	if *p == nil {
		*p = new(T)
	}
	return *p
}

func newMsgReader(src io.Reader, pool *sync.Pool, beforeRead func(), afterRead func(int)) *msgReader {
	r := &msgReader{src: src, pool: pool, beforeRead: beforeRead, afterRead: afterRead}
	r.pr, _ = src.(pooledReader)
	r.getBuf = func() []byte {
		r.got = r.pool.Get().(*[]byte)
		return *r.got
	}
	r.putBuf = func([]byte) {
		r.pool.Put(r.got)
		r.got = nil
	}
	return r
}

// receive returns the next message. 'p' is always a cleartext password,
// the only authentication the proxy asks for (as pgproto3's Backend after
// SetAuthType: the loop refuses one as an unexpected message type).
func (r *msgReader) receive() (pgproto3.FrontendMessage, error) {
	if !r.partial {
		hdr, err := r.next(5)
		if err != nil {
			return nil, eofUnexpected(err)
		}
		r.msgType = hdr[0]
		n := int(int32(binary.BigEndian.Uint32(hdr[1:])))
		if n < 4 {
			return nil, fmt.Errorf("invalid message length: %d", n)
		}
		r.bodyLen = n - 4
		if r.maxBodyLen > 0 && r.bodyLen > r.maxBodyLen {
			return nil, &pgproto3.ExceededMaxBodyLenErr{MaxExpectedBodyLen: r.maxBodyLen, ActualBodyLen: r.bodyLen}
		}
		r.partial = true
	}
	var msg pgproto3.FrontendMessage
	f := &r.fly
	switch r.msgType {
	case 'B':
		msg = fly(&f.bind)
	case 'C':
		msg = fly(&f.close)
	case 'D':
		msg = fly(&f.describe)
	case 'E':
		msg = fly(&f.execute)
	case 'F':
		msg = fly(&f.functionCall)
	case 'f':
		msg = fly(&f.copyFail)
	case 'd':
		msg = fly(&f.copyData)
	case 'c':
		msg = fly(&f.copyDone)
	case 'H':
		msg = fly(&f.flush)
	case 'P':
		msg = fly(&f.parse)
	case 'p':
		msg = &pgproto3.PasswordMessage{}
	case 'Q':
		msg = fly(&f.query)
	case 'S':
		msg = fly(&f.sync)
	case 'X':
		msg = fly(&f.terminate)
	default:
		return nil, fmt.Errorf("unknown message type: %c", r.msgType)
	}
	body, err := r.next(r.bodyLen)
	if err != nil {
		return nil, eofUnexpected(err)
	}
	r.partial = false
	if err := r.dec.decode(msg, body); err != nil {
		return nil, err
	}
	return msg, nil
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// next returns the next n bytes, valid until the following call. What it
// returned before is no longer in use when it is called, so a buffer
// emptied then goes back to the pool before the read that may park.
func (r *msgReader) next(n int) ([]byte, error) {
	if r.rp == r.wp {
		r.release()
	}
	if n == 0 {
		return nil, nil // an empty body (Sync, Flush, …)
	}
	for r.wp-r.rp < n {
		if err := r.fill(n); err != nil {
			return nil, err
		}
	}
	b := r.bytes()[r.rp : r.rp+n : r.rp+n]
	r.rp += n
	return b, nil
}

func (r *msgReader) bytes() []byte {
	if r.big != nil {
		return r.big
	}
	return *r.buf
}

// release gives back an empty buffer. The messages decoded from it that
// point into it (a Bind's parameters, CopyData, a function call's
// arguments) let go of it too: a stale pointer would keep the buffer alive
// once the pool drops it, 8 KiB for every idle session whose last
// statement had parameters.
func (r *msgReader) release() {
	held := r.buf != nil || r.big != nil
	if r.buf != nil {
		r.pool.Put(r.buf)
		r.buf = nil
	}
	r.big = nil
	r.rp, r.wp = 0, 0
	if !held {
		return
	}
	clear(r.dec.params)
	if m := r.fly.bind; m != nil {
		clear(m.Parameters) // its own array when it had more than reuseMax
	}
	if m := r.fly.copyData; m != nil {
		m.Data = nil
	}
	if m := r.fly.functionCall; m != nil {
		clear(m.Arguments)
	}
}

// fill reads at least one more byte towards n buffered bytes.
func (r *msgReader) fill(n int) error {
	if r.beforeRead != nil {
		r.beforeRead()
	}
	if r.buf == nil && r.big == nil && r.pr != nil && n <= readBufSize {
		// Nothing buffered: borrow a buffer only once bytes are there.
		m, err := r.pr.readPooled(r.getBuf, r.putBuf)
		if r.got != nil {
			r.buf, r.rp, r.wp, r.got = r.got, 0, m, nil
		}
		r.counted(m)
		if m > 0 {
			return nil
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	if r.buf == nil && r.big == nil {
		r.buf = r.pool.Get().(*[]byte)
	}
	b := r.bytes()
	if len(b) < n {
		// The message does not fit: one buffer of its size, for it alone.
		nb := make([]byte, n)
		r.wp = copy(nb, b[r.rp:r.wp])
		r.rp = 0
		if r.buf != nil {
			r.pool.Put(r.buf)
			r.buf = nil
		}
		r.big, b = nb, nb
	} else if len(b)-r.rp < n {
		r.wp = copy(b, b[r.rp:r.wp])
		r.rp = 0
	}
	m, err := r.src.Read(b[r.wp:])
	r.wp += m
	r.counted(m)
	if m > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func (r *msgReader) counted(n int) {
	if n <= 0 {
		return
	}
	r.reads++
	if r.afterRead != nil {
		r.afterRead(n)
	}
}

// buffered reports whether any bytes are buffered.
func (r *msgReader) buffered() bool { return r.wp > r.rp }

// ready reports whether a whole message is buffered, which receive then
// returns without reading (or fails as it would after reading: an invalid
// length is left to receive).
func (r *msgReader) ready() bool {
	n := r.wp - r.rp
	if r.partial {
		return n >= r.bodyLen
	}
	if n < 5 {
		return false
	}
	l := int(int32(binary.BigEndian.Uint32(r.bytes()[r.rp+1:])))
	return l >= 4 && n-1 >= l
}
