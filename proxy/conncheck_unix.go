//go:build unix

package proxy

import (
	"crypto/tls"
	"errors"
	"syscall"

	"github.com/pgwarden/pgwarden/proxy/pool"
)

// socketIdle reports whether nothing has arrived on an idle pooled
// connection: a warehouse that restarted sends FATAL and closes, which a
// non-blocking peek sees without a round trip.
func socketIdle(sc pool.Conn) bool {
	s, ok := sc.(*serverConn)
	if !ok {
		return true
	}
	if s.Buffered() > 0 {
		return false
	}
	nc := s.conn
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sysc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sysc.SyscallConn()
	if err != nil {
		return false
	}
	idle := false
	var buf [1]byte
	// Control, not Read: pgconn's background reader may hold the read lock.
	err = raw.Control(func(fd uintptr) {
		rerr := peekSocket(fd, buf[:])
		idle = errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK)
	})
	return err == nil && idle
}
