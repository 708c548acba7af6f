package proxy

// Warehouse messages as bytes. The relay copies most of what the warehouse
// sends to the client unchanged (rows, command tags, ReadyForQuery...), so
// serverConn reads whole messages ("frames": type byte, length, body) into
// its buffer and hands them out before decoding: the relay decodes only
// what it must look at and copies the frame itself, rather than decoding
// every message and encoding it again for the client.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// frameConn is a pool.Conn that gives each message's bytes before, and in
// place of, decoding it. A pool.Conn that does not is relayed decoded.
type frameConn interface {
	// ReceiveFrame returns the next message whole, header included; it is
	// valid until the next receive.
	ReceiveFrame() ([]byte, error)
	// Decode decodes a frame ReceiveFrame returned; the message is valid
	// until the next receive.
	Decode(frame []byte) (pgproto3.BackendMessage, error)
}

// frameBufSize is a warehouse connection's read buffer, as pgproto3's; a
// larger message grows it for as long as it is read.
const frameBufSize = 8 << 10

// frameReader reads whole backend messages from r. A read that fails
// (a deadline) loses nothing: the next call resumes where it stopped.
type frameReader struct {
	r       io.Reader
	buf     []byte
	rp, wp  int // buf[rp:wp] is read and not yet handed out
	maxBody int // 0: no limit
}

func (f *frameReader) buffered() int { return f.wp - f.rp }

// next returns the next message, header included. It calls fill only for
// bytes not buffered yet: most of an answer's messages are, after its
// first read.
func (f *frameReader) next() ([]byte, error) {
	if f.wp-f.rp < 5 {
		if err := f.fill(5); err != nil {
			return nil, err
		}
	}
	n := int(int32(binary.BigEndian.Uint32(f.buf[f.rp+1:])))
	if n < 4 {
		return nil, fmt.Errorf("invalid message length: %d", n)
	}
	if f.maxBody > 0 && n-4 > f.maxBody {
		return nil, &pgproto3.ExceededMaxBodyLenErr{MaxExpectedBodyLen: f.maxBody, ActualBodyLen: n - 4}
	}
	if f.wp-f.rp < 1+n {
		if err := f.fill(1 + n); err != nil {
			return nil, err
		}
	}
	frame := f.buf[f.rp : f.rp+1+n : f.rp+1+n]
	f.rp += 1 + n
	return frame, nil
}

// fill makes buf[rp:] hold at least n bytes.
func (f *frameReader) fill(n int) error {
	if f.rp == f.wp {
		f.rp, f.wp = 0, 0
		if len(f.buf) > frameBufSize && n <= frameBufSize {
			f.buf = nil // a large message's buffer goes once it is read
		}
	}
	if f.buf == nil {
		f.buf = make([]byte, max(frameBufSize, n))
	}
	for f.wp-f.rp < n {
		if f.rp+n > len(f.buf) {
			f.makeRoom(n)
		}
		m, err := f.r.Read(f.buf[f.wp:])
		f.wp += m
		if err != nil {
			if f.wp-f.rp >= n {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// makeRoom moves the unread bytes to the front of buf, growing it when n
// bytes would not fit.
func (f *frameReader) makeRoom(n int) {
	buf := f.buf
	if n > len(buf) {
		buf = make([]byte, max(n, 2*len(buf)))
	}
	f.wp = copy(buf, f.buf[f.rp:f.wp])
	f.rp, f.buf = 0, buf
}

// backendMessages decodes frames into messages it reuses, as pgproto3's
// Frontend does.
type backendMessages struct {
	parseComplete        pgproto3.ParseComplete
	bindComplete         pgproto3.BindComplete
	closeComplete        pgproto3.CloseComplete
	notificationResponse pgproto3.NotificationResponse
	copyDone             pgproto3.CopyDone
	commandComplete      pgproto3.CommandComplete
	copyData             pgproto3.CopyData
	dataRow              pgproto3.DataRow
	errorResponse        pgproto3.ErrorResponse
	copyInResponse       pgproto3.CopyInResponse
	copyOutResponse      pgproto3.CopyOutResponse
	emptyQueryResponse   pgproto3.EmptyQueryResponse
	backendKeyData       pgproto3.BackendKeyData
	noData               pgproto3.NoData
	noticeResponse       pgproto3.NoticeResponse
	portalSuspended      pgproto3.PortalSuspended
	parameterStatus      pgproto3.ParameterStatus
	parameterDescription pgproto3.ParameterDescription
	rowDescription       pgproto3.RowDescription
	functionCallResponse pgproto3.FunctionCallResponse
	copyBothResponse     pgproto3.CopyBothResponse
	readyForQuery        pgproto3.ReadyForQuery
	negotiateProtocol    pgproto3.NegotiateProtocolVersion
	// rowFrame is a copy of the RowDescription frame rowDescription was
	// decoded from (its names point into it): a statement run again
	// describes its rows with the same bytes, which are not decoded again.
	rowFrame []byte
}

func (d *backendMessages) decode(frame []byte) (pgproto3.BackendMessage, error) {
	var msg pgproto3.BackendMessage
	switch frame[0] {
	case '1':
		msg = &d.parseComplete
	case '2':
		msg = &d.bindComplete
	case '3':
		msg = &d.closeComplete
	case 'A':
		msg = &d.notificationResponse
	case 'c':
		msg = &d.copyDone
	case 'C':
		msg = &d.commandComplete
	case 'd':
		msg = &d.copyData
	case 'D':
		msg = &d.dataRow
	case 'E':
		msg = &d.errorResponse
	case 'G':
		msg = &d.copyInResponse
	case 'H':
		msg = &d.copyOutResponse
	case 'I':
		msg = &d.emptyQueryResponse
	case 'K':
		msg = &d.backendKeyData
	case 'n':
		msg = &d.noData
	case 'N':
		msg = &d.noticeResponse
	case 's':
		msg = &d.portalSuspended
	case 'S':
		msg = &d.parameterStatus
	case 't':
		msg = &d.parameterDescription
	case 'T':
		return d.rowDescriptionOf(frame)
	case 'V':
		msg = &d.functionCallResponse
	case 'W':
		msg = &d.copyBothResponse
	case 'Z':
		msg = &d.readyForQuery
	case 'v':
		msg = &d.negotiateProtocol
	default:
		// Authentication ('R') ends at startup, which pgconn handles.
		return nil, fmt.Errorf("unknown message type: %c", frame[0])
	}
	if err := msg.Decode(frame[5:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// rowDescriptionOf decodes a RowDescription frame, or returns the one
// decoded last when frame has the same bytes. Nobody changes a received
// message's fields (encodeMessage converts a copy), so the decoded one holds.
func (d *backendMessages) rowDescriptionOf(frame []byte) (pgproto3.BackendMessage, error) {
	if d.rowFrame != nil && bytes.Equal(frame, d.rowFrame) {
		return &d.rowDescription, nil
	}
	d.rowFrame = append(d.rowFrame[:0], frame...)
	if err := d.rowDescription.Decode(d.rowFrame[5:]); err != nil {
		d.rowFrame = nil
		return nil, err
	}
	return &d.rowDescription, nil
}
