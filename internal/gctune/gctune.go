// Package gctune paces the garbage collector for a proxy's heap.
//
// With the default GOGC=100 a collection starts when the heap has grown by
// as much as was live after the last one. A proxy's live heap is small
// (tens of MiB) while it allocates a few KiB per transaction, so at
// thousands of transactions a second it collects several times a second:
// a few per cent of its CPU, marking the same small heap again and again.
// Start lets the heap grow by at least a fixed headroom before the next
// collection, and by as much as is live (GOGC=100, the default) once the
// live heap is larger than that headroom: a small heap is collected less
// often, at a bounded cost in memory, and a large one exactly as before.
//
// An operator's own GOGC or GOMEMLIMIT in the environment wins: Start
// then changes nothing.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultHeadroom is the heap growth allowed between collections while the
// live heap is smaller.
const DefaultHeadroom = 32 << 20

// maxPercent bounds GOGC for a large headroom.
const maxPercent = 2000

// Start paces collections with headroom (bytes) from the next one on and
// returns a function that stops doing so (GOGC goes back to 100). It
// changes nothing, and stop does nothing, when GOGC or GOMEMLIMIT is set in
// the environment or headroom is not positive.
func Start(headroom int64) (stop func()) {
	if headroom <= 0 || os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	t := &tuner{headroom: headroom, samples: []metrics.Sample{{Name: liveMetric}}}
	t.tune()
	t.arm()
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.stopped {
			t.stopped = true
			debug.SetGCPercent(100)
		}
	}
}

// liveMetric is the heap marked live by the last collection.
const liveMetric = "/gc/heap/live:bytes"

type tuner struct {
	headroom int64
	mu       sync.Mutex
	samples  []metrics.Sample
	percent  int
	stopped  bool
}

// sentinel is garbage from its allocation on: its finalizer runs after
// each collection, and arms the next one.
type sentinel struct{ t *tuner }

func (t *tuner) arm() {
	runtime.SetFinalizer(&sentinel{t: t}, func(s *sentinel) {
		if s.t.tune() {
			s.t.arm()
		}
	})
}

// tune sets GOGC for the live heap the last collection left; false once
// stopped.
func (t *tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.samples)
	var live int64
	if v := t.samples[0].Value; v.Kind() == metrics.KindUint64 {
		live = int64(v.Uint64())
	}
	if p := Percent(live, t.headroom); p != t.percent {
		t.percent = p
		debug.SetGCPercent(p)
	}
	return true
}

// minHeap is the runtime's smallest heap goal at GOGC=100; it scales
// with GOGC as the goal does.
const minHeap = 4 << 20

// Percent is the GOGC that lets a heap of live bytes grow by headroom,
// or by live (100) when that is more; at most maxPercent.
func Percent(live, headroom int64) int {
	// Below minHeap the runtime's goal is minHeap scaled by GOGC.
	live = max(live, minHeap)
	if live >= headroom {
		return 100
	}
	p := headroom * 100 / live
	// Round to a tenth so that small changes of the live heap do not
	// reset the pace after every collection.
	p -= p % 10
	return int(min(max(p, 100), maxPercent))
}
