package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
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
// after collections and that stop restores the default.
func TestStartPacesCollections(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	stop := Start(1 << 40) // far above any live heap here: the maximum
	runtime.GC()
	runtime.GC() // the finalizer of the first sentinel has run by the second
	if got := debug.SetGCPercent(-1); got != maxPercent {
		t.Errorf("GOGC after Start = %d, want %d", got, maxPercent)
	}
	debug.SetGCPercent(maxPercent)
	stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC after stop = %d, want 100", got)
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
