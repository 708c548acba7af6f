//go:build !linux

package proxy

import "net"

// wrapSocket is the identity off Linux: see sockconn_linux.go.
func wrapSocket(nc net.Conn) net.Conn { return nc }
