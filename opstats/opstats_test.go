package opstats

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTest(t testing.TB, cfg Config) (*Recorder, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 12, 3, 5, 0, 0, 0, time.UTC)}
	cfg.Now = c.now
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

func tenantNamed(s Snapshot, name string) *Tenant {
	for i := range s.Tenants {
		if s.Tenants[i].Tenant == name {
			return &s.Tenants[i]
		}
	}
	return nil
}

func TestBucketing(t *testing.T) {
	r, c := newTest(t, Config{Bucket: 10 * time.Second, Window: time.Minute})
	r.Statement("acme", OK, "", time.Millisecond)
	r.Statement("acme", Refused, "42501", time.Millisecond)
	c.t = c.t.Add(9 * time.Second) // same bucket
	r.Statement("acme", Failed, "57014", time.Millisecond)
	c.t = c.t.Add(time.Second) // next bucket
	r.Statement("acme", Refused, "0A000", time.Millisecond)
	r.Statement("", OK, "", time.Millisecond)

	s := r.Snapshot(0)
	a := tenantNamed(s, "acme")
	if a == nil || len(a.Points) != 2 {
		t.Fatalf("acme: %+v", a)
	}
	p0, p1 := a.Points[0], a.Points[1]
	if p0.Statements != 3 || p0.Refusals != 1 || p0.Errors != 1 || p1.Statements != 1 || p1.Refusals != 1 {
		t.Fatalf("points %+v %+v", p0, p1)
	}
	if p1.T-p0.T != 10 {
		t.Fatalf("points %d s apart, want 10", p1.T-p0.T)
	}
	if a.Statements != 4 || a.RefusalClasses["42"] != 1 || a.RefusalClasses["0A"] != 1 || a.RefusalClasses["57"] != 0 {
		t.Fatalf("totals %+v", a)
	}
	if tenantNamed(s, Internal) == nil {
		t.Fatal("an internal session's statement has no series")
	}

	// A minute later the first bucket has left the window; its ring slot
	// is reused and starts from zero.
	c.t = c.t.Add(55 * time.Second)
	r.Statement("acme", OK, "", time.Millisecond)
	a = tenantNamed(r.Snapshot(0), "acme")
	if len(a.Points) != 2 || a.Points[0].Statements != 1 || a.Points[1].Statements != 1 {
		t.Fatalf("after the window: %+v", a.Points)
	}
	// A shorter window sees only the last bucket.
	if a := tenantNamed(r.Snapshot(10*time.Second), "acme"); len(a.Points) != 1 {
		t.Fatalf("10s window: %+v", a.Points)
	}
}

func TestBoundedTenants(t *testing.T) {
	r, c := newTest(t, Config{Bucket: 10 * time.Second, Window: time.Hour, MaxTenants: 3, IdleEvict: time.Minute})
	for i := range 100 {
		r.Statement(fmt.Sprintf("t%02d", i), OK, "", time.Millisecond)
		r.Connected(fmt.Sprintf("t%02d", i))
	}
	s := r.Snapshot(0)
	if len(s.Tenants) != 4 || len(r.tenants) != 3 {
		t.Fatalf("%d tenants in the snapshot, %d series; want 3 of their own and other", len(s.Tenants), len(r.tenants))
	}
	o := s.Tenants[3]
	if o.Tenant != Other || o.Statements != 97 || o.Connections != 97 {
		t.Fatalf("other: %+v", o)
	}
	// Idle tenants give up their series to a newcomer after IdleEvict,
	// and the busiest tenants come first.
	c.t = c.t.Add(2 * time.Minute)
	r.Statement("t00", OK, "", time.Millisecond)
	r.Statement("t00", OK, "", time.Millisecond)
	r.Statement("new", OK, "", time.Millisecond)
	s = r.Snapshot(0)
	if tenantNamed(s, "new") == nil || s.Tenants[0].Tenant != "t00" {
		t.Fatalf("newcomer not tracked or order wrong: %+v", s.Tenants)
	}
	if len(r.tenants) != 3 {
		t.Fatalf("%d series", len(r.tenants))
	}
	for i := range 100 {
		r.Disconnected(fmt.Sprintf("t%02d", i))
	}
	if len(r.conns) != 0 {
		t.Fatalf("connection counts left: %v", r.conns)
	}
}

func TestPercentiles(t *testing.T) {
	r, _ := newTest(t, Config{})
	// 1..1000 ms: p50 ≈ 500, p95 ≈ 950, p99 ≈ 990, each within a bin (25%).
	for i := 1; i <= 1000; i++ {
		r.Statement("acme", OK, "", time.Duration(i)*time.Millisecond)
	}
	l := tenantNamed(r.Snapshot(0), "acme").Latency
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p50", l.P50, 500}, {"p95", l.P95, 950}, {"p99", l.P99, 990}} {
		if math.Abs(c.got-c.want)/c.want > 0.25 {
			t.Errorf("%s = %.1f ms, want %.0f ± 25%%", c.name, c.got, c.want)
		}
	}
	// Bins cover every duration without gaps or overlaps.
	for i := 2; i < histBins-1; i++ {
		_, hi := binBounds(i)
		lo, _ := binBounds(i + 1)
		if hi != lo {
			t.Fatalf("bin %d ends at %v, bin %d starts at %v", i, hi, i+1, lo)
		}
		if got := histBin(time.Duration(lo) * time.Microsecond); got != i+1 {
			t.Fatalf("%vµs in bin %d, want %d", lo, got, i+1)
		}
	}
	if histBin(-time.Second) != 0 || histBin(1000*time.Hour) != histBins-1 {
		t.Fatal("out-of-range durations not clamped")
	}
}

func TestPoolAndMerge(t *testing.T) {
	a, ca := newTest(t, Config{})
	b, cb := newTest(t, Config{})
	cb.t = ca.t
	a.Pool("demo", 20, 20, 0, 5)
	a.PoolWait("demo", 300*time.Millisecond)
	a.Pool("demo", 20, 3, 17, 0)
	b.Pool("demo", 20, 1, 0, 0)
	b.PoolWait("demo", 100*time.Millisecond)
	for range 99 {
		a.Statement("acme", OK, "", time.Millisecond)
	}
	b.Statement("acme", OK, "", time.Second)
	b.Statement("acme", Refused, "42501", 0)

	sa := a.Snapshot(0)
	p := sa.Pools[0]
	if p.Size != 20 || p.InUse != 3 || p.Idle != 17 || len(p.Points) != 1 || p.Points[0].InUseMax != 20 || p.Points[0].WaitingMax != 5 || p.Points[0].Waits != 1 {
		t.Fatalf("pool: %+v", p)
	}
	m := Merge(sa, b.Snapshot(0))
	mp := m.Pools[0]
	if mp.Size != 40 || mp.InUse != 4 || mp.Points[0].Waits != 2 || mp.Points[0].WaitMeanMs() != 200 || mp.Points[0].WaitMaxMs != 300 {
		t.Fatalf("merged pool: %+v", mp)
	}
	acme := tenantNamed(m, "acme")
	if acme.Statements != 101 || acme.Refusals != 1 || acme.RefusalClasses["42"] != 1 || len(acme.Points) != 1 {
		t.Fatalf("merged acme: %+v", acme)
	}
	// The merged p99 comes from the summed histograms: the one slow
	// statement of 101 is beyond it, p50 is a fast one.
	if acme.Latency.P50 > 2 || acme.Latency.P99 > 2 {
		t.Fatalf("merged latency %+v", acme.Latency)
	}
	if l := Merge(sa, b.Snapshot(0), b.Snapshot(0)); tenantNamed(l, "acme").Latency.P99 < 500 {
		t.Fatalf("3 slow of 102: p99 %+v", tenantNamed(l, "acme").Latency)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Bucket: time.Millisecond}, {Bucket: time.Second, Window: 3 * time.Hour}, {MaxTenants: 5000}} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// The hot path: one statement of a tracked tenant. No allocations.
func BenchmarkStatement(b *testing.B) {
	r, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	tenants := make([]string, 50)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenant-%02d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r.Statement(tenants[i%len(tenants)], OK, "", time.Duration(i)*time.Microsecond)
	}
}

func BenchmarkStatementParallel(b *testing.B) {
	r, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Statement("acme", OK, "", time.Duration(i)*time.Microsecond)
			i++
		}
	})
}

// A transaction's calls as the proxy makes them: a pool's checkout and
// return, and the statement, from several clients at once.
func BenchmarkTransactionParallel(b *testing.B) {
	r, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	var pool sync.Mutex // the pool's lock, which Pool is called under
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			pool.Lock()
			r.Pool("demo", 20, 3, 17, 0)
			pool.Unlock()
			r.Statement("acme", OK, "", time.Duration(i)*time.Microsecond)
			pool.Lock()
			r.Pool("demo", 20, 2, 18, 0)
			pool.Unlock()
			i++
		}
	})
}
