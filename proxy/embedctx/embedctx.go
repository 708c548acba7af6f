// Package embedctx binds embed sessions to their embed context: the BI
// backends (networks, or TLS client certificates from one CA) from which a
// host application's end users' sessions may connect. An embed session's
// token reaches the browser; binding it keeps that token from opening a
// direct SQL connection from anywhere else.
//
// It is a pure decision over what the proxy knows of a connection (its peer
// address, its verified TLS client certificate chain, the session's kind,
// groups and pinned address); the proxy turns a refusal into FATAL 28000.
package embedctx

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/pgwarden/pgwarden/policy"
)

// Config says where embed sessions may connect from. Networks and
// ClientCAFile are alternatives: a connection from a listed network, or one
// presenting a client certificate the CA signed, is in the embed context.
// Both empty turns binding off (the default, for compatibility).
type Config struct {
	// Networks are CIDRs (or single addresses) of the BI backends.
	Networks []string
	// ClientCAFile is a PEM file of CA certificates; a TLS client
	// certificate chaining to one of them (mutual TLS) puts a connection in
	// the embed context from any address.
	ClientCAFile string
	// DirectAccessGroups: embed sessions in one of these groups may connect
	// from anywhere. Groups only, never single users (as ThoughtSpot's
	// selective access grants to groups).
	DirectAccessGroups []string
}

// Enabled reports whether embed sessions are bound at all.
func (c Config) Enabled() bool { return len(c.Networks) > 0 || c.ClientCAFile != "" }

// Reasons a connection is refused, for metrics and the audit log.
const (
	ReasonOutside       = "outside_embed_context" // neither a listed network nor a client certificate of the CA
	ReasonPinnedAddress = "pinned_address"        // the ticket pinned its session to another client address
)

// Binding is a loaded Config. The nil *Binding binds nothing but pinned
// addresses.
type Binding struct {
	nets   []netip.Prefix
	roots  *x509.CertPool
	direct map[string]bool
	now    func() time.Time
}

// New loads c (the CA file is read now); field names in errors are those of
// the configuration file under prefix (e.g. "proxy.embed_context").
func New(c Config, prefix string) (*Binding, error) {
	if !c.Enabled() {
		if len(c.DirectAccessGroups) > 0 {
			return nil, fmt.Errorf("%s.direct_access_groups: set without networks or client_ca_file, it grants nothing", prefix)
		}
		return nil, nil
	}
	b := &Binding{direct: map[string]bool{}, now: time.Now}
	for i, n := range c.Networks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			a, aerr := netip.ParseAddr(n)
			if aerr != nil {
				return nil, fmt.Errorf("%s.networks[%d]: %q is not a CIDR or an address", prefix, i, n)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		b.nets = append(b.nets, p.Masked())
	}
	if c.ClientCAFile != "" {
		data, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.client_ca_file: %w", prefix, err)
		}
		pool := x509.NewCertPool()
		n := 0
		for rest := data; ; {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s.client_ca_file: %w", prefix, err)
			}
			pool.AddCert(cert)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%s.client_ca_file: no PEM certificate in %s", prefix, c.ClientCAFile)
		}
		b.roots = pool
	}
	for i, g := range c.DirectAccessGroups {
		if g == "" {
			return nil, fmt.Errorf("%s.direct_access_groups[%d]: empty group", prefix, i)
		}
		b.direct[g] = true
	}
	return b, nil
}

// WantsClientCert reports whether the TLS listener should ask clients for a
// certificate (it verifies none itself: Check does, so that a wrong
// certificate gets FATAL 28000 instead of a failed handshake, and sessions
// that are not bound are not disturbed by one).
func (b *Binding) WantsClientCert() bool { return b != nil && b.roots != nil }

// Conn is what the proxy knows of a connection and its session.
type Conn struct {
	Kind   policy.Kind
	Groups []string
	// Operator is set for an Owner's or Administrator's session: an
	// internal one, or an embed session one of them opened to act as a
	// test tenant. Operators are never bound.
	Operator bool
	// Remote is the client's address (the TCP peer).
	Remote netip.Addr
	// PeerCerts are the certificates the client presented over TLS, leaf
	// first; nil without TLS or without a certificate.
	PeerCerts []*x509.Certificate
	// PinnedAddr is the client address the session's ticket was exchanged
	// from, when the ticket asked to pin it; invalid otherwise.
	PinnedAddr netip.Addr
}

// Check returns "" when c may go on, or the reason it may not.
func (b *Binding) Check(c Conn) string {
	if exempt(c) {
		return ""
	}
	remote := c.Remote.Unmap()
	if c.PinnedAddr.IsValid() && c.PinnedAddr.Unmap() != remote {
		return ReasonPinnedAddress
	}
	if b == nil {
		return ""
	}
	for _, g := range c.Groups {
		if b.direct[g] {
			return ""
		}
	}
	for _, p := range b.nets {
		if remote.IsValid() && p.Contains(remote) {
			return ""
		}
	}
	if b.roots != nil && b.verified(c.PeerCerts) {
		return ""
	}
	return ReasonOutside
}

// verified reports whether certs (leaf first) chain to one of the CAs, for
// client authentication.
func (b *Binding) verified(certs []*x509.Certificate) bool {
	if len(certs) == 0 {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots: b.roots, Intermediates: inter, CurrentTime: b.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err == nil
}

// exempt says which sessions are never bound: Owners' and Administrators'
// (the rule; they run the deployment). Every other session is bound
// where binding is on: embed sessions, whose tokens reach a browser, and the
// internal sessions of Creators, Designers and Viewers, who then reach the
// warehouse from the networks listed or through a direct-access group like
// anyone else. A session of no known kind is treated as embed (fail closed).
func exempt(c Conn) bool { return c.Operator }

// ErrOutside is the refusal's text, as the client sees it.
var ErrOutside = errors.New("embed session used outside its embed context")
