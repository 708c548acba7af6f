package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, headroom int64
		want           int
	}{
		{0, 64 * mib, 1600},               // the runtime's minimum heap, 4 MiB, grows by 64
		{1 * mib, 64 * mib, 1600},         // likewise
		{1 * mib, 1024 * mib, maxPercent}, // capped
		{16 * mib, 64 * mib, 400},         // grows by the headroom
		{24 * mib, 64 * mib, 260},         // 266% rounded down to a tenth
		{64 * mib, 64 * mib, 100},         // the default from here on
		{1024 * mib, 64 * mib, 100},       // a large heap as before
		{63 * mib, 64 * mib, 100},         // 101% rounds to 100
		{10 * mib, 5 * mib, 100},          // headroom below the live heap
	} {
		if got := Percent(tc.live, tc.headroom); got != tc.want {
			t.Errorf("Percent(%d MiB, %d MiB) = %d, want %d", tc.live/mib, tc.headroom/mib, got, tc.want)
		}
	}
}

// TestStartPacesCollections checks that Start sets GOGC from the live heap
// at once and that stop restores the default.
func TestStartPacesCollections(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	stop := Start(1 << 40) // far above any live heap here: the maximum
	if got := debug.SetGCPercent(maxPercent); got != maxPercent {
		t.Errorf("GOGC after Start = %d, want %d", got, maxPercent)
	}
	stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC after stop = %d, want 100", got)
	}
}

// TestTunesAfterEachCollection checks that the pace is set again after a
// collection (by the sentinel's finalizer, which runs some time after it).
func TestTunesAfterEachCollection(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tu := &tuner{headroom: 1 << 40, samples: []metrics.Sample{{Name: liveMetric}}}
	tu.arm()
	defer func() {
		tu.mu.Lock()
		tu.stopped = true
		tu.mu.Unlock()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		runtime.GC()
		tu.mu.Lock()
		p := tu.percent
		tu.mu.Unlock()
		if p == maxPercent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no collection set the pace within 30s")
		}
		runtime.Gosched()
	}
	if got := debug.SetGCPercent(100); got != maxPercent {
		t.Errorf("GOGC after a collection = %d, want %d", got, maxPercent)
	}
}

func TestStartLeavesTheEnvironmentsSetting(t *testing.T) {
	t.Setenv("GOGC", "50")
	defer debug.SetGCPercent(debug.SetGCPercent(77))
	stop := Start(1 << 40)
	defer stop()
	if got := debug.SetGCPercent(77); got != 77 {
		t.Errorf("GOGC = %d after Start with GOGC set, want it untouched (77)", got)
	}
}
