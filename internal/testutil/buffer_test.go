package testutil

import (
	"strings"
	"sync"
	"testing"
)

// Writers on several goroutines and a reader meanwhile: every write is
// kept whole (run with -race to check the locking).
func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	const writers, lines = 4, 100
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range lines {
				b.Write([]byte("line\n"))
			}
		}()
	}
	for range lines {
		if s := b.String(); !strings.HasSuffix(s, "\n") && s != "" {
			t.Fatalf("a read saw part of a write: %q", s[max(0, len(s)-10):])
		}
	}
	wg.Wait()
	if got := strings.Count(b.String(), "line\n"); got != writers*lines {
		t.Errorf("%d lines, want %d", got, writers*lines)
	}
}
