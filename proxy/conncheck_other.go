//go:build !unix

package proxy

import "github.com/pgwarden/pgwarden/proxy/pool"

// socketIdle cannot peek here; the round-trip health check still applies.
func socketIdle(pool.Conn) bool { return true }
