package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"go.uber.org/zap"
)

// Cancel keys across replicas. Behind a load balancer a client's
// CancelRequest, a new TCP connection, may reach another replica than the
// one serving its session (as with PgBouncer, whose peers section answers
// the same problem). Each replica has a peer id that it writes into the
// cancel keys it issues; a replica that gets a key of another peer's id
// forwards the request to that peer, once, signed with the replicas' shared
// secret so that the owner can tell a forwarded request from a client's.
//
// The key's process id (31 bits, positive like a real pid) is the peer id
// in bits 23-30 and random bits below; a forwarded request sets bit 31 and
// carries, after the client's 4-byte secret, an HMAC-SHA256 of the first 8
// bytes under the peer secret (truncated to 16 bytes).
const (
	peerShift     = 23
	peerMask      = 0xff
	peerForwarded = 1 << 31
	peerMACLen    = 16
	// MaxPeerID is the largest peer id a cancel key can carry.
	MaxPeerID = peerMask
	// MinPeerSecretBytes is the shortest peer secret accepted.
	MinPeerSecretBytes = 32
)

// peerOf returns the peer id written in a cancel key's process id.
func peerOf(pid uint32) int { return int(pid>>peerShift) & peerMask }

// validatePeers checks the peer settings of c.
func (c Config) validatePeers() []error {
	var errs []error
	if c.PeerID == 0 {
		if len(c.Peers) > 0 {
			errs = append(errs, errors.New("proxy.peers: set proxy.peer_id too"))
		}
		return errs
	}
	if c.PeerID < 0 || c.PeerID > MaxPeerID {
		errs = append(errs, fmt.Errorf("proxy.peer_id: %d is outside 1 to %d", c.PeerID, MaxPeerID))
	}
	for id, addr := range c.Peers {
		if id < 1 || id > MaxPeerID {
			errs = append(errs, fmt.Errorf("proxy.peers: peer id %d is outside 1 to %d", id, MaxPeerID))
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("proxy.peers: peer %d: %w", id, err))
		}
	}
	if len(c.Peers) > 0 && len(c.PeerSecret) < MinPeerSecretBytes {
		errs = append(errs, fmt.Errorf("proxy.peer_secret_file: the peer secret must hold at least %d bytes", MinPeerSecretBytes))
	}
	return errs
}

// peerMAC signs the first 8 bytes of a forwarded CancelRequest body.
func peerMAC(secret, head []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(head)
	return m.Sum(nil)[:peerMACLen]
}

// cancelKey resolves a CancelRequest body to a local key (pid, secret). It
// returns ok false for a request this replica should not act on: a
// forwarded one with a bad signature, or one it forwarded to its owner.
func (s *Server) cancelKey(ctx context.Context, body []byte, log *zap.Logger) (pid uint32, secret []byte, ok bool) {
	pid, secret = binary.BigEndian.Uint32(body[:4]), body[4:]
	if pid&peerForwarded != 0 {
		if len(s.cfg.PeerSecret) == 0 || len(secret) != 4+peerMACLen ||
			!hmac.Equal(secret[4:], peerMAC(s.cfg.PeerSecret, body[:8])) {
			s.metrics.cancels.WithLabelValues("bad_peer_signature").Inc()
			log.Warn("forwarded cancel request with a bad signature")
			return 0, nil, false
		}
		return pid &^ peerForwarded, secret[:4], true
	}
	owner := peerOf(pid)
	if s.cfg.PeerID == 0 || owner == s.cfg.PeerID {
		return pid, secret, true
	}
	addr, known := s.cfg.Peers[owner]
	if !known || len(secret) != 4 {
		s.metrics.cancels.WithLabelValues("unknown_key").Inc()
		log.Info("cancel request for an unknown peer", zap.Int("peer", owner))
		return 0, nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	if err := s.forwardCancel(ctx, addr, pid, secret); err != nil {
		s.metrics.cancels.WithLabelValues("peer_failed").Inc()
		log.Warn("forwarding a cancel request to its replica failed", zap.Int("peer", owner), zap.Error(err))
		return 0, nil, false
	}
	s.metrics.cancels.WithLabelValues("peer_forwarded").Inc()
	return 0, nil, false
}

// forwardCancel sends a signed CancelRequest for (pid, secret) to the
// replica at addr and waits for it to close the connection, as a client of
// PostgreSQL does, so that the cancel has been handled when it returns.
func (s *Server) forwardCancel(ctx context.Context, addr string, pid uint32, secret []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	body := binary.BigEndian.AppendUint32(nil, pid|peerForwarded)
	body = append(body, secret...)
	body = append(body, peerMAC(s.cfg.PeerSecret, body[:8])...)
	msg := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	msg = binary.BigEndian.AppendUint32(msg, codeCancel)
	if _, err := conn.Write(append(msg, body...)); err != nil {
		return err
	}
	var b [1]byte
	conn.Read(b[:]) // EOF once the peer has handled it
	return nil
}
