// Package testutil holds the small helpers that tests of several packages
// share. Being internal, only this module's tests can import it.
package testutil

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer safe for concurrent use: the code under test
// writes to it from its own goroutines (a logger, an audit log, a child
// process's stderr) while the test reads what it holds so far.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p in one piece: a reader never sees part of it.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns a copy of what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
