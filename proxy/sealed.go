package proxy

import (
	"crypto/tls"
	"net"
	"net/netip"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/embedctx"
)

// checkEmbedContext refuses an embed session that connects from outside its
// embed context (see package embedctx) with FATAL 28000, as PostgreSQL
// refuses a connection its pg_hba.conf does not allow, and records the
// refusal in the metrics, the log and the audit log. database is the name
// the client asked for (the audit record's warehouse).
func (c *clientConn) checkEmbedContext(database string) error {
	s := c.session
	conn := embedctx.Conn{Kind: s.Kind, Groups: s.Groups, Remote: peerAddr(c.raw.RemoteAddr()),
		Operator: s.Kind == policy.KindInternal && operator(s.Role) || s.Actor != nil && operator(s.Actor.Role)}
	if s.PinnedAddr != "" {
		a, err := netip.ParseAddr(s.PinnedAddr)
		if err != nil {
			// A signed pin that does not parse pins to an address no
			// client has, never to none.
			a = netip.IPv6Unspecified()
		}
		conn.PinnedAddr = a
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		conn.PeerCerts = tc.ConnectionState().PeerCertificates
	}
	reason := c.srv.binding.Check(conn)
	if reason == "" {
		return nil
	}
	c.srv.metrics.embedRefusals.WithLabelValues(reason).Inc()
	c.srv.metrics.authFailure("embed_context")
	c.log.Warn("embed session refused outside its embed context", zap.String("reason", reason),
		zap.String("client_addr", conn.Remote.String()), zap.Bool("client_cert", len(conn.PeerCerts) > 0))
	c.srv.audit.recordRefusedLogin(c, database, reason, pgerr.InvalidAuthorization, conn.Remote)
	c.loginAudited = true
	return pgerr.Fatalf(pgerr.InvalidAuthorization, "%s", embedctx.ErrOutside.Error())
}

// peerAddr is the IP of a connection's peer; invalid for non-IP peers
// (Unix sockets), which no network lists.
func peerAddr(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(t.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// operator reports the roles that are never bound to the embed context.
func operator(r auth.UserRole) bool { return r == auth.RoleOwner || r == auth.RoleAdministrator }
