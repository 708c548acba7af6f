//go:build unix && !linux

package proxy

import "syscall"

// peekSocket is a non-blocking MSG_PEEK of fd (raw on Linux: sockconn_linux.go).
func peekSocket(fd uintptr, buf []byte) error {
	_, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err
}
