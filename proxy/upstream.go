package proxy

// This file is the only one that touches pgconn's connection internals
// (Hijack, PID, SecretKey), whose types changed at pgx v5.9.0.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// ClientInfo describes the client a server connection is acquired for.
type ClientInfo struct {
	Warehouse string
	SessionID string
	Tenant    string
	// User is the PostgreSQL user name the client sent; for logs only.
	User string
	// Params are the allow-listed startup parameters (DateStyle, TimeZone,
	// IntervalStyle, extra_float_digits, application_name) to apply
	// upstream. client_encoding is never one: warehouse connections are
	// pinned to UTF8 (pinnedSettings).
	Params map[string]string
	// StatementTimeout, when set, is the session's statement_timeout (its
	// tenant's, lower than the proxy's): a startup parameter, so that
	// RESET returns to it.
	StatementTimeout time.Duration
}

// Upstream hands out warehouse connections: one per client in session mode;
// in transaction mode the warehouse's pool dials through it.
type Upstream interface {
	Acquire(ctx context.Context, ci *ClientInfo) (pool.Conn, error)
}

// dsnUpstream opens a fresh warehouse connection per client with pgconn (so
// password, SCRAM and TLS are whatever the DSN says).
type dsnUpstream struct {
	warehouse string
	base      *pgconn.Config
	timeout   time.Duration
	maxBody   int
	stmtTO    time.Duration
}

func newDSNUpstream(warehouse, dsn string, cfg Config) (*dsnUpstream, error) {
	base, err := pgconn.ParseConfig(dsn)
	if err != nil {
		// pgconn redacts passwords only on a best-effort basis: keep the DSN out.
		return nil, fmt.Errorf("warehouse %q: invalid dsn", warehouse)
	}
	return &dsnUpstream{warehouse: warehouse, base: base, timeout: cfg.ConnectTimeout, maxBody: cfg.MaxResultMessageBytes, stmtTO: cfg.StatementTimeout}, nil
}

func (u *dsnUpstream) Acquire(ctx context.Context, ci *ClientInfo) (pool.Conn, error) {
	cfg := u.base.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	for k, v := range ci.Params {
		cfg.RuntimeParams[k] = v
	}
	// Startup parameters outrank the role's and the database's settings.
	for k, v := range pinnedSettings {
		cfg.RuntimeParams[k] = v
	}
	if cfg.RuntimeParams["application_name"] == "" {
		// Names the proxy's connections in pg_stat_activity unless the
		// client named itself.
		cfg.RuntimeParams["application_name"] = "pgwarden"
	}
	if u.stmtTO > 0 {
		cfg.RuntimeParams["statement_timeout"] = fmt.Sprint(u.stmtTO.Milliseconds())
	}
	if ci.StatementTimeout > 0 && (u.stmtTO == 0 || ci.StatementTimeout < u.stmtTO) {
		cfg.RuntimeParams["statement_timeout"] = fmt.Sprint(ci.StatementTimeout.Milliseconds())
	}
	cfg.ConnectTimeout = u.timeout
	if dial := cfg.DialFunc; dial != nil {
		cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return wrapSocket(nc), nil
		}
	}
	// The reader pgconn's frontend reads through (its background reader):
	// the relay reads whole messages from it (frames.go). One per attempt
	// when the DSN lists several hosts; the one Hijack's frontend uses is it.
	type built struct {
		r  io.Reader
		fe *pgproto3.Frontend
	}
	var readers []built
	buildFrontend := cfg.BuildFrontend
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		fe := buildFrontend(r, w)
		readers = append(readers, built{r, fe})
		return fe
	}
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	start := time.Now()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, u.connectError(ctx, err, time.Since(start))
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(context.Background())
		return nil, fmt.Errorf("%w: %w", u.unreachable("connection failed"), err)
	}
	sc := &serverConn{
		conn:      hc.Conn,
		w:         bufio.NewWriterSize(hc.Conn, 32<<10),
		pid:       hc.PID,
		secret:    append([]byte(nil), hc.SecretKey...),
		params:    hc.ParameterStatuses,
		tlsConfig: hc.TLSConfig,
		dial:      hc.Config.DialFunc,
	}
	// Read through pgconn's background reader, which a slow write during
	// connect starts and which then sits in a Read of the socket; reading
	// the socket directly would race it for the warehouse's next bytes.
	var r io.Reader
	for _, b := range readers {
		if b.fe == hc.Frontend {
			r = b.r
		}
	}
	if r == nil {
		sc.Close()
		return nil, fmt.Errorf("%w: pgconn built no frontend for the connection", u.unreachable("connection failed"))
	}
	stopBackgroundRead(r, hc.Conn)
	sc.rd = frameReader{r: r, maxBody: u.maxBody}
	if err := sc.takeBuffered(hc.Frontend); err != nil {
		sc.Close()
		return nil, fmt.Errorf("%w: %w", u.unreachable("connection failed"), err)
	}
	return sc, nil
}

// stopBackgroundRead ends the Read of the socket that pgconn's background
// reader r may still sit in, so that the socket is read directly from now
// on (and can go on an event loop: evloop_linux.go). A timeout ends that
// Read and stops the reader for good; bytes it got come first from r.
func stopBackgroundRead(r io.Reader, nc net.Conn) {
	bg, ok := r.(interface {
		Status() int32
		Stop()
	})
	if !ok || bg.Status() == 0 { // bgreader.StatusStopped
		return
	}
	bg.Stop()
	nc.SetReadDeadline(time.Unix(1, 0))
	r.Read(nil) // returns once the background Read has ended; reads nothing
	nc.SetReadDeadline(time.Time{})
}

// takeBuffered moves what the frontend read past startup (nothing, as a
// rule: the warehouse is silent after its ReadyForQuery) into the frame
// reader, so that no message is lost or reordered.
func (s *serverConn) takeBuffered(fe *pgproto3.Frontend) error {
	var pre []byte
	for fe.ReadBufferLen() > 0 {
		m, err := fe.Receive()
		if err != nil {
			return err
		}
		if pre, err = m.Encode(pre); err != nil {
			return err
		}
	}
	s.rd.buf = append(pre, make([]byte, frameBufSize)...)
	s.rd.wp = len(pre)
	return nil
}

// pinnedUpstream checks every connection an Upstream hands out (ours, or
// one a caller supplied) for the settings pgwarden pins: a connection whose
// warehouse reports another client_encoding or standard_conforming_strings
// off would read the forwarded text otherwise than the rewriter did.
type pinnedUpstream struct {
	warehouse string
	up        Upstream
}

func (p pinnedUpstream) Acquire(ctx context.Context, ci *ClientInfo) (pool.Conn, error) {
	sc, err := p.up.Acquire(ctx, ci)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"client_encoding", "standard_conforming_strings"} {
		if v := sc.ParameterStatus(name); !strings.EqualFold(v, pinnedSettings[name]) {
			sc.Close()
			return nil, pgerr.Fatalf(pgerr.ConnectionFailure, "warehouse %s is unusable: it reports %s %q, not %s", p.warehouse, name, v, pinnedSettings[name])
		}
	}
	return sc, nil
}

// connectError turns a connect failure into a FATAL for the client that
// says what happened (refused, no answer within the time actually waited,
// credentials or database refused, TLS) and names the warehouse but
// neither its address nor its credentials: clients are tenants, and the
// warehouse's address is the operator's business. The full cause, address
// included, stays in the wrapped error for the log.
func (u *dsnUpstream) connectError(ctx context.Context, err error, waited time.Duration) error {
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == pgerr.InvalidParameterValue {
		// A startup setting of the client's the warehouse refused: the
		// client's error, in PostgreSQL's words.
		return fmt.Errorf("%w: %w", &pgerr.Error{Severity: pgerr.SeverityFatal, Code: pe.Code, Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint}, err)
	}
	return fmt.Errorf("%w: %w", u.unreachable(connectFailure(ctx, err, waited)), err)
}

// connectFailure says in a few words why a connect failed.
func connectFailure(ctx context.Context, err error, waited time.Duration) string {
	var (
		pe   *pgconn.PgError
		dns  *net.DNSError
		cert *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &pe):
		switch {
		case pe.Code == pgerr.InvalidPassword || pe.Code == pgerr.InvalidAuthorization:
			return fmt.Sprintf("the warehouse refused the proxy's credentials (SQLSTATE %s)", pe.Code)
		case pe.Code == pgerr.InvalidCatalogName:
			return fmt.Sprintf("the warehouse has no such database (SQLSTATE %s)", pe.Code)
		case pe.Code == pgerr.TooManyConnections:
			return fmt.Sprintf("the warehouse has no connection slot free (SQLSTATE %s)", pe.Code)
		case pe.Code == pgerr.CannotConnectNow || pe.Code == pgerr.AdminShutdown:
			return fmt.Sprintf("the warehouse is starting up or shutting down (SQLSTATE %s)", pe.Code)
		}
		return fmt.Sprintf("the warehouse refused the connection (SQLSTATE %s)", pe.Code)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: nothing listens at its address"
	case errors.As(err, &dns):
		return "its host name does not resolve"
	case errors.As(err, &cert):
		return "its TLS certificate was not accepted"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to its host"
	case ctx.Err() != nil || pgconn.Timeout(err):
		return fmt.Sprintf("no answer within %s", waited.Round(100*time.Millisecond))
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed during startup"
	}
	return "connection failed"
}

func (u *dsnUpstream) unreachable(why string) *pgerr.Error {
	return pgerr.Fatalf(pgerr.ConnectionFailure, "warehouse %s is unreachable: %s", u.warehouse, why)
}

type serverConn struct {
	conn      net.Conn
	rd        frameReader
	msgs      backendMessages
	w         *bufio.Writer
	scratch   []byte
	pid       uint32
	secret    []byte
	params    map[string]string
	tlsConfig *tls.Config
	dial      pgconn.DialFunc
	// onClose, if set, runs once when the connection is closed (a slot
	// of a connLimit given back).
	onClose   func()
	closeOnce sync.Once
}

func (s *serverConn) Send(msg pgproto3.FrontendMessage) error {
	b, err := msg.Encode(s.scratch[:0])
	if err != nil {
		return err
	}
	if cap(b) <= 64<<10 {
		s.scratch = b
	}
	_, err = s.w.Write(b)
	return err
}

func (s *serverConn) Flush() error                       { return s.w.Flush() }
func (s *serverConn) Available() int                     { return s.w.Available() }
func (s *serverConn) Unflushed() int                     { return s.w.Buffered() }
func (s *serverConn) Buffered() int                      { return s.rd.buffered() }
func (s *serverConn) ParameterStatus(name string) string { return s.params[name] }
func (s *serverConn) PID() uint32                        { return s.pid }

func (s *serverConn) Receive() (pgproto3.BackendMessage, error) {
	frame, err := s.rd.next()
	if err != nil {
		return nil, err
	}
	return s.msgs.decode(frame)
}

func (s *serverConn) ReceiveFrame() ([]byte, error) { return s.rd.next() }

func (s *serverConn) Decode(frame []byte) (pgproto3.BackendMessage, error) {
	return s.msgs.decode(frame)
}

// SetReadDeadline bounds or interrupts Receive (which stays resumable: a
// timeout loses no bytes).
func (s *serverConn) SetReadDeadline(t time.Time) error { return s.conn.SetReadDeadline(t) }

func (s *serverConn) Close() error {
	// Best effort Terminate so the warehouse logs a clean disconnect; a short
	// deadline keeps a wedged socket from holding us up.
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	s.conn.Write([]byte{'X', 0, 0, 0, 4})
	err := s.conn.Close()
	if s.onClose != nil {
		s.closeOnce.Do(s.onClose)
	}
	return err
}

// Cancel sends a CancelRequest for this backend on a new connection to the
// same address, encrypted like the main connection.
func (s *serverConn) Cancel(ctx context.Context) error {
	addr := s.conn.RemoteAddr()
	dial := s.dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	c, err := dial(ctx, addr.Network(), addr.String())
	if err != nil {
		return fmt.Errorf("dial for cancel: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if s.tlsConfig != nil {
		if _, err := c.Write([]byte{0, 0, 0, 8, 4, 210, 22, 47}); err != nil {
			return fmt.Errorf("ssl request for cancel: %w", err)
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'S' {
			return errors.New("warehouse refused tls for cancel")
		}
		tc := tls.Client(c, s.tlsConfig.Clone())
		defer tc.Close()
		c = tc
	}
	buf := make([]byte, 12+len(s.secret))
	binary.BigEndian.PutUint32(buf[0:4], uint32(len(buf)))
	binary.BigEndian.PutUint32(buf[4:8], 80877102)
	binary.BigEndian.PutUint32(buf[8:12], s.pid)
	copy(buf[12:], s.secret)
	if _, err := c.Write(buf); err != nil {
		return fmt.Errorf("write cancel request: %w", err)
	}
	// The server closes the connection once it has handled the request.
	c.Read(buf)
	return nil
}
