package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/pgenc"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/fairq"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// Special startup packet codes (PostgreSQL src/include/libpq/pqcomm.h).
const (
	codeCancel   = 1234<<16 | 5678
	codeSSL      = 1234<<16 | 5679
	codeGSSENC   = 1234<<16 | 5680
	maxStartup   = 10000 // MAX_STARTUP_PACKET_LENGTH
	minStartup   = 8
	authBodySize = 64 << 10 // cap on messages before authentication completes
)

// errQuiet ends a connection without an ErrorResponse (garbage before the
// protocol is established, a handled CancelRequest), as PostgreSQL does.
type errQuiet struct{ why string }

func (e errQuiet) Error() string { return e.why }

// startupPacket is one length-prefixed packet of the startup phase.
type startupPacket struct {
	code uint32
	body []byte // after the code
}

// readStartupPacket reads exactly one packet without buffering past it, so
// that nothing sent before a TLS handshake is read as if it came after it.
func readStartupPacket(r io.Reader) (startupPacket, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return startupPacket{}, errQuiet{"no startup packet"}
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[:4])))
	if n < minStartup || n > maxStartup {
		return startupPacket{}, errQuiet{fmt.Sprintf("invalid length of startup packet: %d", n)}
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return startupPacket{}, errQuiet{"incomplete startup packet"}
	}
	return startupPacket{code: binary.BigEndian.Uint32(buf[:4]), body: buf[4:]}, nil
}

// parseStartupParams decodes the name/value pairs of a StartupMessage.
func parseStartupParams(b []byte) (map[string]string, error) {
	params := map[string]string{}
	for {
		if len(b) == 0 {
			return nil, errors.New("missing terminator")
		}
		if b[0] == 0 {
			if len(b) != 1 {
				return nil, errors.New("trailing bytes after terminator")
			}
			return params, nil
		}
		i := strings.IndexByte(string(b), 0)
		if i < 0 {
			return nil, errors.New("unterminated parameter name")
		}
		name := string(b[:i])
		b = b[i+1:]
		j := strings.IndexByte(string(b), 0)
		if j < 0 {
			return nil, errors.New("unterminated parameter value")
		}
		params[name] = string(b[:j])
		b = b[j+1:]
	}
}

// forwardedParams are the startup parameters passed to the warehouse, by
// lowercase name. Everything else (options, search_path, role, ...) is dropped:
// a client must not be able to change how the warehouse resolves names.
// client_encoding is the proxy's (encoding.go): the warehouse speaks UTF8.
var forwardedParams = map[string]string{
	"datestyle":          "DateStyle",
	"timezone":           "TimeZone",
	"intervalstyle":      "IntervalStyle",
	"extra_float_digits": "extra_float_digits",
	"application_name":   "application_name",
}

// safeParamValue keeps odd bytes out of forwarded settings.
func safeParamValue(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(" _-+,./:", r):
		default:
			return false
		}
	}
	return true
}

// reportedParams are relayed from the warehouse in the startup ParameterStatus.
var reportedParams = []string{
	"server_version", "server_encoding", "client_encoding", "DateStyle", "TimeZone",
	"integer_datetimes", "standard_conforming_strings", "IntervalStyle",
}

// passwordAllowed decides whether a cleartext password may be requested on
// this connection: over TLS, from loopback, or when explicitly allowed.
func passwordAllowed(tlsOn bool, remote net.Addr, allowInsecure bool) bool {
	if tlsOn || allowInsecure {
		return true
	}
	switch a := remote.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

func errInsecurePassword() *pgerr.Error {
	return pgerr.Fatalf(pgerr.InvalidAuthorization, "password authentication over an unencrypted connection is not allowed: use sslmode=require").
		WithHint("connect with sslmode=require")
}

// startup runs the startup phase up to the first ReadyForQuery.
func (c *clientConn) startup() error {
	c.raw.SetDeadline(time.Now().Add(c.srv.cfg.AuthTimeout))
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.AuthTimeout)
	defer cancel()
	if err := c.directTLS(); err != nil {
		return err
	}
	var pkt startupPacket
	for {
		var err error
		pkt, err = readStartupPacket(c.nc)
		if err != nil {
			return err
		}
		switch pkt.code {
		case codeSSL:
			if c.tlsOn {
				return errQuiet{"SSLRequest after TLS handshake"}
			}
			if c.srv.tlsConfig == nil {
				if _, err := c.nc.Write([]byte{'N'}); err != nil {
					return errQuiet{"write: " + err.Error()}
				}
				continue
			}
			if _, err := c.nc.Write([]byte{'S'}); err != nil {
				return errQuiet{"write: " + err.Error()}
			}
			tc := tls.Server(c.raw, c.srv.tlsConfig)
			if err := tc.Handshake(); err != nil {
				return errQuiet{"tls handshake: " + err.Error()}
			}
			c.nc, c.tlsOn = tc, true
			continue
		case codeGSSENC:
			if _, err := c.nc.Write([]byte{'N'}); err != nil {
				return errQuiet{"write: " + err.Error()}
			}
			continue
		case codeCancel:
			c.srv.handleCancel(c.ctx, pkt.body, c.log)
			return errQuiet{"cancel request handled"}
		}
		break
	}
	// The byte directTLS looked at has been read again by now: a plain
	// client's connection is its socket once more, which an event loop
	// can take (loopFor).
	if pc, ok := c.nc.(*prefixConn); ok && len(pc.prefix) == 0 {
		c.nc = c.raw
	}
	c.initIO()

	major, minor := pkt.code>>16, pkt.code&0xffff
	if major != 3 {
		return pgerr.Fatalf(pgerr.FeatureNotSupported, "unsupported frontend protocol %d.%d: server supports 3.0 to 3.0", major, minor)
	}
	params, err := parseStartupParams(pkt.body)
	if err != nil {
		return pgerr.Fatalf(pgerr.ProtocolViolation, "invalid startup packet layout: %v", err)
	}
	var unknownPQ []string
	for k := range params {
		if strings.HasPrefix(k, "_pq_.") {
			unknownPQ = append(unknownPQ, k)
		}
	}
	if minor > 0 || len(unknownPQ) > 0 {
		c.out.send(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknownPQ})
	}
	c.user = params["user"]
	if c.user == "" {
		return pgerr.Fatalf(pgerr.InvalidAuthorization, "no PostgreSQL user name specified in startup packet")
	}
	database := params["database"]
	if database == "" {
		database = c.user
	}
	if r, ok := params["replication"]; ok && !isFalse(r) {
		return pgerr.Fatalf(pgerr.InsufficientPrivilege, "replication connections are not supported")
	}
	c.appName = params["application_name"]
	if !safeParamValue(c.appName) {
		c.appName = ""
	}
	c.upParams = map[string]string{}
	for k, v := range params {
		lk := strings.ToLower(k)
		if lk == "client_encoding" {
			e, perr := pgenc.Lookup(v)
			if perr != nil {
				return perr.AsFatal()
			}
			c.codec = newCodec(e)
			c.out.enc = &c.codec.out
			continue
		}
		canon, ok := forwardedParams[lk]
		switch {
		case !ok:
		case safeParamValue(v):
			c.upParams[canon] = v
		case lk != "application_name":
			// A value outside what pgwarden forwards (letters, digits and
			// " _-+,./:"): refused as PostgreSQL refuses a value it does
			// not take, rather than accepted and then not applied.
			return pgerr.Fatalf(pgerr.InvalidParameterValue, "invalid value for parameter \"%s\": \"%s\"", canon, v)
		}
	}
	if _, ok := params["options"]; ok {
		c.log.Debug("startup options ignored")
	}
	c.logWith(zap.String("user", c.user), zap.String("database", database))
	c.database = database

	if c.srv.isDraining() {
		return pgerr.Fatalf(pgerr.CannotConnectNow, "the database system is shutting down")
	}
	if n := c.srv.sessions.Add(1); n > int64(c.srv.cfg.MaxClientConns) {
		c.srv.sessions.Add(-1)
		c.srv.metrics.authFailure("too_many_clients")
		return pgerr.Fatalf(pgerr.TooManyConnections, "sorry, too many clients already")
	}
	c.counted = true

	if !passwordAllowed(c.tlsOn, c.raw.RemoteAddr(), c.srv.cfg.AllowInsecurePassword) {
		c.srv.metrics.authFailure("insecure_transport")
		c.log.Info("auth refused: cleartext password on unencrypted non-loopback connection")
		return errInsecurePassword()
	}
	c.out.send(&pgproto3.AuthenticationCleartextPassword{})
	if err := c.out.flush(); err != nil {
		return errQuiet{"write: " + err.Error()}
	}
	msg, err := c.in.receive()
	if err != nil {
		return errQuiet{"no password: " + err.Error()}
	}
	pw, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		return pgerr.Fatalf(pgerr.ProtocolViolation, "expected password response, got message type %q", msgType(msg))
	}
	c.authTried = true
	session, err := c.srv.auth.Authenticate(ctx, pw.Password)
	if err != nil {
		c.srv.metrics.authFailure("bad_credentials")
		var pe *pgerr.Error
		if errors.As(err, &pe) {
			c.log.Info("authentication failed", zap.String("sqlstate", pe.Code), zap.String("reason", pe.Message))
		} else {
			c.log.Warn("authentication failed", zap.Error(err))
		}
		return asFatal(err)
	}
	if session == nil {
		return errors.New("authenticator returned no session")
	}
	c.session = session
	c.expires = session.ExpiresAt
	c.srv.stats.Connected(session.Tenant) // Disconnected at close, as c.session is set
	c.srv.metrics.sessions.WithLabelValues(string(session.Kind), string(session.Role)).Inc()
	c.logWith(zap.String("session", session.ID), zap.String("tenant", session.Tenant))
	if err := c.checkEmbedContext(database); err != nil {
		return err
	}
	if session.Subject != "" {
		c.logWith(zap.String("subject", session.Subject), zap.String("role", string(session.Role)))
	}
	c.out.send(&pgproto3.AuthenticationOk{})

	wh := c.srv.warehouses[database]
	if wh == nil {
		c.srv.metrics.authFailure("unknown_database")
		return pgerr.Fatalf(pgerr.InvalidCatalogName, "database %q does not exist", database)
	}
	c.wh = wh
	c.identity = session.Identity(wh.Name)
	if c.identity.Role == policy.RoleNoAccess || !c.identity.Role.Valid() {
		c.srv.metrics.authFailure("no_access")
		return pgerr.Fatalf(pgerr.InvalidAuthorization, "session has no access to warehouse %s", wh.Name)
	}
	if err := c.checkSession(); err != nil {
		c.srv.metrics.authFailure("expired")
		return err
	}
	if r := c.srv.tenants[wh.Name]; r != nil {
		db, err := r.acquire(ctx, session.Tenant)
		if err != nil {
			c.srv.metrics.upstreamErrors.WithLabelValues(wh.Name).Inc()
			return err
		}
		c.tdb, c.wh = db, db.wh
	}
	c.limits = c.srv.tenantLimits[c.wh.Name].statements.For(session.Tenant, c.identity.Role)
	c.guard = resultGuard{maxRows: c.limits.maxRows, maxBytes: c.limits.maxBytes}
	c.watch()
	if _, err := c.rowSecurityFor(); err != nil {
		c.srv.metrics.authFailure("no_access")
		return err
	}

	params, err = c.bindAtStartup(ctx)
	if err != nil {
		c.srv.metrics.upstreamErrors.WithLabelValues(wh.Name).Inc()
		return err
	}
	params["client_encoding"] = c.codec.start.Name
	for _, name := range reportedParams {
		if v := params[name]; v != "" {
			c.out.send(&pgproto3.ParameterStatus{Name: name, Value: v})
		}
	}
	c.out.send(&pgproto3.ParameterStatus{Name: "application_name", Value: c.appName})
	c.out.send(&pgproto3.ParameterStatus{Name: "is_superuser", Value: "off"})
	c.out.send(&pgproto3.ParameterStatus{Name: "session_authorization", Value: c.user})
	c.srv.issueKey(c)
	c.out.send(&pgproto3.BackendKeyData{ProcessID: c.keyPID, SecretKey: c.keySecret})
	c.out.send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := c.out.flush(); err != nil {
		return errQuiet{"write: " + err.Error()}
	}
	c.raw.SetDeadline(time.Time{})
	c.in.maxBodyLen = c.srv.cfg.MaxMessageBytes
	// With the server's logger and the session's fields: the session's own
	// logger encodes its fields into a buffer of its own at its first entry,
	// which a session that logs nothing else then never needs.
	if ce := c.srv.log.Check(zap.InfoLevel, "session started"); ce != nil {
		ce.Write(append(slices.Clip(c.logFs), zap.String("connection_role", string(c.identity.Role)), zap.Bool("tls", c.tlsOn))...)
	}
	return nil
}

// directTLS accepts PostgreSQL 17's direct TLS negotiation (sslnegotiation=
// direct): the client starts with a TLS ClientHello instead of SSLRequest, and
// must ask for the "postgresql" ALPN protocol.
func (c *clientConn) directTLS() error {
	if c.srv.tlsConfig == nil {
		return nil
	}
	var b [1]byte
	if _, err := io.ReadFull(c.raw, b[:]); err != nil {
		return errQuiet{"no startup packet"}
	}
	pc := &prefixConn{Conn: c.raw, prefix: b[:]}
	if b[0] != 0x16 { // not a TLS handshake record
		c.nc = pc
		return nil
	}
	cfg := c.srv.tlsConfig.Clone()
	cfg.NextProtos = []string{"postgresql"}
	tc := tls.Server(pc, cfg)
	if err := tc.Handshake(); err != nil {
		return errQuiet{"direct tls handshake: " + err.Error()}
	}
	if tc.ConnectionState().NegotiatedProtocol != "postgresql" {
		return errQuiet{"direct tls without the postgresql alpn protocol"}
	}
	c.nc, c.tlsOn = tc, true
	return nil
}

// prefixConn replays bytes already read from Conn.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

func isFalse(v string) bool {
	switch strings.ToLower(v) {
	case "false", "off", "no", "0":
		return true
	}
	return false
}

// asFatal makes a *pgerr.Error FATAL; other errors are left to errorResponse.
func asFatal(err error) error {
	var pe *pgerr.Error
	if errors.As(err, &pe) && !pe.Fatal() {
		return pe.AsFatal()
	}
	return err
}

// handleCancel forwards a CancelRequest to the warehouse backend serving the
// client whose (proxy-issued) key it names. A forged key cancels nothing.
func (s *Server) handleCancel(ctx context.Context, body []byte, log *zap.Logger) {
	if len(body) < 8 || len(body) > 260 {
		return
	}
	pid, secret, ok := s.cancelKey(ctx, body, log)
	if !ok {
		return
	}
	c := s.lookupKey(pid, secret)
	if c == nil {
		s.metrics.cancels.WithLabelValues("unknown_key").Inc()
		log.Info("cancel request with unknown key")
		return
	}
	s.metrics.cancels.WithLabelValues("forwarded").Inc()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	if err := c.cancelWarehouse(ctx); err != nil {
		c.log.Warn("cancel request failed", zap.Error(err))
	}
}

// cancelWarehouse cancels the client's statement being rewritten, or what
// it runs on the connection it holds now, or its wait for one; otherwise it
// cancels nothing. cmu keeps the
// connection from passing to another client until the warehouse has taken
// the request.
func (c *clientConn) cancelWarehouse(ctx context.Context) error {
	// The statement being rewritten is the one the client waits for:
	// nothing of it runs upstream yet, and a cancel sent there could land
	// on the statement after it.
	if c.rewriting.stop(errRewriteCanceled()) {
		return nil
	}
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.cancelTo == nil {
		if c.acquiring {
			c.waitCancel(errCancelRequest)
		}
		return nil
	}
	return c.cancelTo.Conn().Cancel(ctx)
}

// bindAtStartup returns the ParameterStatus set to greet the client with.
// In session mode the client's own connection is opened now (with its
// startup parameters); in transaction mode the pool's cached set is used,
// with the client's startup parameters replayed per transaction instead.
func (c *clientConn) bindAtStartup(ctx context.Context) (map[string]string, error) {
	wh := c.wh
	p, up := c.srv.pools[wh.Name], c.srv.upstreams[wh.Name]
	if c.tdb != nil {
		p, up = c.tdb.pool, c.tdb.up
	}
	if p != nil {
		poolParams, err := p.StartupParams(ctx)
		if err != nil {
			return nil, asFatal(err)
		}
		c.pool = p
		if c.rls != nil {
			if err := p.checkRowSecurity(ctx, c.rls); err != nil {
				return nil, asFatal(err)
			}
		}
		// Settings are replayed per transaction: check them now, so that
		// a value the warehouse refuses fails the login as on PostgreSQL
		// instead of every transaction later.
		canon, err := p.CheckSettings(ctx, c.upParams, poolParams)
		if err != nil {
			return nil, asFatal(err)
		}
		for k, v := range canon {
			c.upParams[k] = v
		}
		c.baseSettings = baseSettingsFor(c.upParams, poolParams)
		if to := sessionTimeout(c.limits.timeout, c.srv.cfg.StatementTimeout); to > 0 {
			// First, before the client's own, and replayed per lending:
			// RESET ALL on a pooled connection returns to the proxy's.
			c.baseSettings = append([]string{fmt.Sprintf("SET statement_timeout TO '%dms'", to.Milliseconds())}, c.baseSettings...)
		}
		c.applyOps(nil)
		params := make(map[string]string, len(poolParams))
		for k, v := range poolParams {
			params[k] = v
		}
		for k, v := range c.upParams {
			if _, ok := params[k]; ok {
				params[k] = v
			}
		}
		return params, nil
	}
	if s := c.scheduler(); s != nil && c.session.Tenant != "" {
		// Each session holds a connection: the tenant's share caps them.
		if !s.Start(c.session.Tenant) {
			c.srv.metrics.tenantRefusal(wh.Name, c.session.Tenant, "max_connections")
			le := &fairq.LimitError{Tenant: c.session.Tenant, Limit: "max_connections", N: s.Limits(c.session.Tenant).MaxConns}
			return nil, pgerr.Fatalf(pgerr.TooManyConnections, "%s", le.Error())
		}
		c.sessionSlot = true
	}
	sc, err := up.Acquire(ctx, &ClientInfo{
		Warehouse: wh.Name, SessionID: c.session.ID, Tenant: c.session.Tenant, User: c.user, Params: c.upParams,
		StatementTimeout: sessionTimeout(c.limits.timeout, c.srv.cfg.StatementTimeout),
	})
	if err != nil {
		return nil, err
	}
	b := pool.NewBackend(sc, time.Now(), wh.Pool.MaxPreparedStatements)
	if c.rls != nil {
		// The connection is the session's alone: its role and settings
		// are set once, and go with it when it closes.
		if status, err := b.RoundTrip(c.rls.set, c.srv.cfg.ConnectTimeout); err != nil || status != 'I' {
			sc.Close()
			var pe *pgerr.Error
			if errors.As(err, &pe) {
				return nil, pgerr.Fatalf(pe.Code, "cannot take on this session's row security role: %s", pe.Message).
					WithHint("create the role and grant it to the warehouse's service account (GRANT role TO service_account)")
			}
			return nil, fmt.Errorf("setting row security: status %c: %w", status, err)
		}
	}
	c.cur, c.cancelTo = b, b
	c.logWith(zap.Uint32("pg_pid", sc.PID()))
	params := map[string]string{}
	for _, name := range reportedParams {
		params[name] = sc.ParameterStatus(name)
	}
	return params, nil
}
