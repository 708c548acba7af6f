//go:build !linux

package proxy

// Off Linux every session runs on its goroutine: there is no event loop
// (see evloop_linux.go), and these do nothing.

type evLoops struct{}

func newEvLoops(int) (*evLoops, error) { return nil, nil }
func (g *evLoops) stop()               {}

type evLoop struct{}

func (l *evLoop) start(func(*coro)) {}

type coro struct{}

func (c *clientConn) loopFor() *evLoop     { return nil }
func (c *clientConn) runOn(*coro)          {}
func (c *clientConn) leaveLoop(string)     {}
func (c *clientConn) leaveLoopFor(string)  {}
func (c *clientConn) rejoinLoop()          {}
func (c *clientConn) awaitClient() error   { return nil }
func (c *clientConn) takeBackend(*backend) {}
func letGo(*backend)                       {}

func (c *clientConn) loopWatchGone(string, func()) (<-chan struct{}, func() bool, bool) {
	return nil, nil, false
}

func (c *clientConn) parker() parker { return nil }
