package proxy

import (
	"errors"

	"golang.org/x/sys/unix"
)

// canWatchGone: Linux's POLLRDHUP tells a FIN that arrived behind unread
// bytes (a Terminate, a TLS close_notify) from bytes alone.
const canWatchGone = true

// peerGone is a RawConn.Read callback that consumes nothing: it reports
// whether the peer has closed or reset the connection; false waits for the
// socket's next event.
func peerGone(fd uintptr) bool {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
	for {
		_, err := unix.Poll(fds[:], 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
	}
}
