//go:build !unix

package proxy

// socketIdle cannot peek here; the round-trip health check still applies.
func socketIdle(ServerConn) bool { return true }
