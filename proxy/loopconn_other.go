//go:build !linux

package proxy

import (
	"time"

	"github.com/pgwarden/pgwarden/proxy/pool"
)

// Off Linux every session runs on its goroutine: there is no event loop
// (see evloop_linux.go), and these do nothing.

type evLoops struct{}

func newEvLoops(int, bool) (*evLoops, error) { return nil, nil }
func (g *evLoops) stop()                     {}

type evLoop struct{}

func (l *evLoop) start(func(*coro)) {}

type coro struct{}

func (c *clientConn) loopFor() *evLoop          { return nil }
func (c *clientConn) runOn(*coro)               {}
func (c *clientConn) leaveLoop(string)          {}
func (c *clientConn) leaveLoopFor(string)       {}
func (c *clientConn) rejoinLoop()               {}
func (c *clientConn) awaitClient() error        { return nil }
func (c *clientConn) now() time.Time            { return time.Now() }
func (c *clientConn) takeBackend(*pool.Backend) {}
func letGo(*pool.Backend)                       {}

func (c *clientConn) loopWatchGone(string, func()) (<-chan struct{}, func() bool, bool) {
	return nil, nil, false
}

func (c *clientConn) parker() pool.Parker { return nil }

func (s *Server) countLoops(*evLoops) {}
