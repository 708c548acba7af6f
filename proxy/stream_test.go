package proxy

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// A million-row result (~110 MB on the wire) streams through the proxy in
// bounded memory: the heap of this process, which runs the proxy, grows by
// far less than the result size.
func TestStreamingMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 110 MB")
	}
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak.Load() {
					peak.Store(ms.HeapAlloc)
				}
			}
		}
	}()

	rr := conn.ExecParams(ctx, "SELECT g, repeat('x', 100) FROM generate_series(1, 1000000) g", nil, nil, nil, nil)
	var rows, bytes int64
	for rr.NextRow() {
		rows++
		for _, v := range rr.Values() {
			bytes += int64(len(v))
		}
	}
	if _, err := rr.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-sampled
	if rows != 1000000 {
		t.Fatalf("rows = %d", rows)
	}
	growth := int64(peak.Load()) - int64(base)
	t.Logf("streamed %d rows, %d MB of values; heap base %d KiB, peak %d KiB, growth %.2f MiB", rows, bytes>>20, base>>10, peak.Load()>>10, float64(growth)/(1<<20))
	if growth > 32<<20 {
		t.Fatalf("peak heap growth %d MiB while streaming %d MiB: results are being buffered", growth>>20, bytes>>20)
	}
}
