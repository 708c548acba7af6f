package fairq

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// push queues waiters named tenant+index, in the order given ("a a b").
func push(t *testing.T, s *Scheduler[string], order string) {
	t.Helper()
	n := map[string]int{}
	for _, tenant := range strings.Fields(order) {
		n[tenant]++
		if _, err := s.Push(tenant, fmt.Sprintf("%s%d", tenant, n[tenant])); err != nil {
			t.Fatalf("push %s: %v", tenant, err)
		}
	}
}

// drain serves every waiter that may be served, ending each at once (a
// pool with one connection), and returns their values in order.
func drain(s *Scheduler[string]) string {
	var out []string
	for {
		k, ok := s.Next()
		if !ok {
			return strings.Join(out, " ")
		}
		out = append(out, k.Value)
		s.Done(k.Tenant())
	}
}

func TestOrder(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		order string
		want  string
	}{
		{"fifo serves in arrival order", Config{Policy: FIFO}, "a a a a b c", "a1 a2 a3 a4 b1 c1"},
		{"fair serves tenants in turn", Config{Policy: Fair}, "a a a a b c", "a1 b1 c1 a2 a3 a4"},
		{"fair keeps each tenant's order", Config{}, "a b a b a", "a1 b1 a2 b2 a3"},
		{"weights give turns per round", Config{Tenants: map[string]Limits{"a": {Weight: 3}}}, "a a a a a a b b b", "a1 a2 a3 b1 a4 a5 a6 b2 b3"},
		{"default weight applies to all", Config{Defaults: Limits{Weight: 2}}, "a a a b b b", "a1 a2 b1 b2 a3 b3"},
		{"one tenant alone", Config{}, "a a a", "a1 a2 a3"},
		{"internal tenant is one more tenant", Config{}, "a a  a", "a1 a2 a3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New[string](tt.cfg, nil)
			push(t, s, tt.order)
			if got := drain(s); got != tt.want {
				t.Errorf("served %q, want %q", got, tt.want)
			}
			if s.Queued() != 0 || len(s.Stats()) != 0 {
				t.Errorf("left queued %d, stats %v", s.Queued(), s.Stats())
			}
		})
	}
}

func TestShareCapsConnections(t *testing.T) {
	for _, p := range []Policy{Fair, FIFO} {
		t.Run(string(p), func(t *testing.T) {
			s := New[string](Config{Policy: p, Tenants: map[string]Limits{"heavy": {MaxConns: 2}}}, nil)
			for range 2 {
				if !s.Start("heavy") {
					t.Fatal("heavy refused under its share")
				}
			}
			if s.Start("heavy") {
				t.Fatal("heavy started past its share of 2")
			}
			if !s.Blocked("heavy") || s.Blocked("light") {
				t.Fatalf("blocked: heavy %v light %v", s.Blocked("heavy"), s.Blocked("light"))
			}
			push(t, s, "heavy heavy light")
			// heavy is at its share: only light may go.
			k, ok := s.Next()
			if !ok || k.Value != "light1" {
				t.Fatalf("next = %v %v, want light1", k, ok)
			}
			if _, ok := s.Next(); ok {
				t.Fatal("served heavy past its share")
			}
			s.Done("heavy")
			if k, ok = s.Next(); !ok || k.Value != "heavy1" {
				t.Fatalf("after a heavy Done: %v %v, want heavy1", k, ok)
			}
			// heavy's own waiter is queued: a new heavy arrival queues behind it.
			s.Done("heavy")
			if s.Start("heavy") {
				t.Fatal("a new heavy arrival went ahead of heavy's queued waiter")
			}
		})
	}
}

func TestQueueLimit(t *testing.T) {
	s := New[string](Config{Defaults: Limits{MaxQueued: 2}, Tenants: map[string]Limits{"big": {MaxQueued: 5}}}, nil)
	push(t, s, "acme acme big big big")
	_, err := s.Push("acme", "acme3")
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != "max_queued" || le.N != 2 {
		t.Fatalf("third acme waiter: %v, want a max_queued refusal", err)
	}
	if want := "too many queued statements for tenant acme (limit 2)"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := s.Push("", "internal"); err != nil {
		t.Errorf("internal waiter refused: %v", err)
	}
	if s.Queued() != 6 {
		t.Errorf("queued %d, want 6", s.Queued())
	}
}

func TestRemove(t *testing.T) {
	s := New[string](Config{}, nil)
	a1, _ := s.Push("a", "a1")
	b1, _ := s.Push("b", "b1")
	s.Push("a", "a2")
	if !s.Remove(b1) {
		t.Fatal("remove of a queued waiter failed")
	}
	if s.Remove(b1) {
		t.Fatal("second remove succeeded")
	}
	k, _ := s.Next()
	if k != a1 {
		t.Fatalf("next = %v, want a1", k.Value)
	}
	if s.Remove(a1) {
		t.Fatal("remove of a waiter already served succeeded")
	}
	s.Done("a")
	if got := drain(s); got != "a2" {
		t.Fatalf("rest %q, want a2", got)
	}
	if len(s.tenants) != 0 {
		t.Errorf("tenant state kept after everything ended: %v", s.tenants)
	}
}

func TestRate(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	s := New[string](Config{Tenants: map[string]Limits{"a": {RatePerSecond: 10, Burst: 2}}}, clock)
	if w := s.Reserve("b", time.Second); w != 0 {
		t.Fatalf("unlimited tenant waits %s", w)
	}
	for i := range 2 {
		if w := s.Reserve("a", time.Second); w != 0 {
			t.Fatalf("burst token %d waits %s", i, w)
		}
	}
	if w := s.Reserve("a", time.Second); w != 100*time.Millisecond {
		t.Fatalf("third statement waits %s, want 100ms", w)
	}
	if w := s.Reserve("a", time.Second); w != 200*time.Millisecond {
		t.Fatalf("fourth statement waits %s, want 200ms (the third reserved a token)", w)
	}
	if w := s.Reserve("a", 100*time.Millisecond); w != 300*time.Millisecond {
		t.Fatalf("a wait over the maximum: %s, want 300ms returned", w)
	}
	// The refused reservation took nothing.
	now = now.Add(300 * time.Millisecond)
	if w := s.Reserve("a", 0); w != 0 {
		t.Fatalf("after 300ms: waits %s, want 0", w)
	}
}

func TestForDefaults(t *testing.T) {
	c := Config{Defaults: Limits{MaxConns: 5, MaxQueued: 10, RatePerSecond: 2.5}, Tenants: map[string]Limits{"acme": {MaxConns: 8, Weight: 4}}}
	if got, want := c.For("acme"), (Limits{Weight: 4, MaxConns: 8, MaxQueued: 10, RatePerSecond: 2.5, Burst: 3}); got != want {
		t.Errorf("acme: %+v, want %+v", got, want)
	}
	if got, want := c.For("other"), (Limits{Weight: 1, MaxConns: 5, MaxQueued: 10, RatePerSecond: 2.5, Burst: 3}); got != want {
		t.Errorf("other: %+v, want %+v", got, want)
	}
	if got, want := c.For(""), (Limits{Weight: 1}); got != want {
		t.Errorf("internal: %+v, want %+v", got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Policy: "lifo"}, `pool.scheduling: "lifo" is not fair or fifo`},
		{Config{Defaults: Limits{Weight: -1}}, "pool.tenant_defaults.weight"},
		{Config{Tenants: map[string]Limits{"acme": {MaxConns: -1}}}, "pool.tenants.acme.max_connections"},
		{Config{Tenants: map[string]Limits{"acme": {MaxQueued: -2}}}, "pool.tenants.acme.max_queued"},
		{Config{Tenants: map[string]Limits{"acme": {RatePerSecond: -1}}}, "pool.tenants.acme.statements_per_second"},
		{Config{Tenants: map[string]Limits{"": {}}}, "a tenant name is empty"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate("pool")
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

// TestProperties drives a scheduler with random arrivals, give-ups and
// completions against a pool of a few connections, and checks after every
// step that: no tenant is over its share, the in-use count balances (no
// slot leaked by a waiter that gave up), a waiter that can be served is
// served whenever a connection is free, and, under the fair policy, that
// the tenant served holds the fewest connections for its weight among those
// waiting and that no such tenant is passed over for more than two rounds of
// the others' weights (no starvation).
func TestProperties(t *testing.T) {
	for seed := range uint64(200) {
		for _, p := range []Policy{Fair, FIFO} {
			checkRun(t, seed, p)
		}
	}
}

func checkRun(t *testing.T, seed uint64, policy Policy) {
	rng := rand.New(rand.NewPCG(seed, 7))
	tenants := []string{"a", "b", "c", "d"}
	cfg := Config{Policy: policy, Tenants: map[string]Limits{}}
	weights := map[string]int{}
	for _, name := range tenants {
		l := Limits{Weight: 1 + rng.IntN(4)}
		if rng.IntN(3) == 0 {
			l.MaxConns = 1 + rng.IntN(2)
		}
		cfg.Tenants[name] = l
		weights[name] = l.Weight
	}
	size := 1 + rng.IntN(4)
	s := New[int](cfg, nil)
	var running []string
	var queued []*Ticket[int]
	passed := map[string]int{} // others served while tenant waited and could be served
	sumW := 0
	for _, w := range weights {
		sumW += w
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d %s: "+format, append([]any{seed, policy}, args...)...)
	}
	dispatch := func() {
		for len(running) < size {
			eligibleBefore := map[string]bool{}
			for _, k := range queued {
				if k.queued && (cfg.Tenants[k.Tenant()].MaxConns == 0 || s.InUse(k.Tenant()) < cfg.Tenants[k.Tenant()].MaxConns) {
					eligibleBefore[k.Tenant()] = true
				}
			}
			// Under the fair policy only the eligible tenants with the
			// fewest connections in use for their weight may go.
			least := map[string]bool{}
			for name := range eligibleBefore {
				least[name] = true
				for other := range eligibleBefore {
					if policy == Fair && s.InUse(other)*weights[name] < s.InUse(name)*weights[other] {
						delete(least, name)
					}
				}
			}
			k, ok := s.Next()
			if !ok {
				if len(eligibleBefore) > 0 {
					fail("a connection is free and %v could be served, but Next served none", eligibleBefore)
				}
				return
			}
			if !least[k.Tenant()] {
				fail("served %s, which holds more connections for its weight than %v", k.Tenant(), least)
			}
			running = append(running, k.Tenant())
			for _, name := range tenants {
				if !least[name] {
					passed[name] = 0 // at its share, holding more than others, or not waiting: not starved
				}
			}
			for name := range least {
				if name == k.Tenant() {
					passed[name] = 0
				} else {
					passed[name]++
					if policy == Fair && passed[name] > 2*sumW {
						fail("tenant %s passed over %d times while it could be served", name, passed[name])
					}
				}
			}
		}
	}
	for step := range 400 {
		switch r := rng.IntN(10); {
		case r < 5: // an arrival
			name := tenants[rng.IntN(len(tenants))]
			if len(running) < size && s.Start(name) {
				running = append(running, name)
				break
			}
			k, err := s.Push(name, step)
			if err != nil {
				fail("push: %v", err)
			}
			queued = append(queued, k)
		case r < 7 && len(queued) > 0: // a waiter gives up
			i := rng.IntN(len(queued))
			s.Remove(queued[i])
			queued = append(queued[:i], queued[i+1:]...)
		case len(running) > 0: // a statement ends
			i := rng.IntN(len(running))
			s.Done(running[i])
			running = append(running[:i], running[i+1:]...)
		}
		dispatch()
		kept := queued[:0]
		for _, k := range queued {
			if k.queued {
				kept = append(kept, k)
			}
		}
		queued = kept
		count := map[string]int{}
		for _, name := range running {
			count[name]++
		}
		for _, name := range tenants {
			if got := s.InUse(name); got != count[name] {
				fail("step %d: tenant %s in use %d, want %d", step, name, got, count[name])
			}
			if m := cfg.Tenants[name].MaxConns; m > 0 && count[name] > m {
				fail("step %d: tenant %s has %d connections, share %d", step, name, count[name], m)
			}
		}
		if s.Queued() != len(queued) {
			fail("step %d: queued %d, want %d", step, s.Queued(), len(queued))
		}
	}
	for _, name := range running {
		s.Done(name)
	}
	for _, k := range queued {
		s.Remove(k)
	}
	if len(s.tenants) != 0 || len(s.ring) != 0 {
		fail("state left after everything ended: %d tenants, ring %d", len(s.tenants), len(s.ring))
	}
}

// TestWeightsHonoured: with every tenant always waiting, each tenant's share
// of the connections handed out is its share of the weights.
func TestWeightsHonoured(t *testing.T) {
	weights := map[string]int{"a": 1, "b": 2, "c": 5}
	cfg := Config{Tenants: map[string]Limits{}}
	for n, w := range weights {
		cfg.Tenants[n] = Limits{Weight: w}
	}
	s := New[int](cfg, nil)
	for n := range weights {
		for i := range 600 {
			s.Push(n, i)
		}
	}
	served := map[string]int{}
	for range 800 { // 100 rounds of 8
		k, ok := s.Next()
		if !ok {
			t.Fatal("ran dry")
		}
		served[k.Tenant()]++
		s.Done(k.Tenant())
	}
	for n, w := range weights {
		if served[n] != 100*w {
			t.Errorf("tenant %s (weight %d) served %d of 800, want %d", n, w, served[n], 100*w)
		}
	}
}

// Under the fair policy a tenant holding connections waits while a tenant
// holding fewer for its weight waits too, whatever the arrival order.
func TestFewestHeldFirst(t *testing.T) {
	s := New[string](Config{Tenants: map[string]Limits{"big": {Weight: 4}}}, nil)
	for range 3 {
		s.Start("heavy")
	}
	for range 4 {
		s.Start("big")
	}
	push(t, s, "heavy heavy big light light")
	var got []string
	for range 3 {
		k, _ := s.Next()
		got = append(got, k.Value) // not ended: its connection stays held
	}
	// light holds 0, big 4/4 = 1 per weight, heavy 3: light first; then
	// light's 1 ties big's 1 per weight and they take turns: big, then
	// light (1 beats big's 5/4); heavy waits behind both.
	if want := "light1 big1 light2"; strings.Join(got, " ") != want {
		t.Errorf("served %q, want %q", strings.Join(got, " "), want)
	}
	// FIFO ignores what is held.
	f := New[string](Config{Policy: FIFO}, nil)
	f.Start("heavy")
	push(t, f, "heavy light")
	if k, _ := f.Next(); k.Value != "heavy1" {
		t.Errorf("fifo served %s first, want heavy1", k.Value)
	}
}

// BenchmarkLoneTenantCheckout is a pool's calls around one checkout and
// return of a tenant with no other connection in use (its state is
// forgotten at every return).
func BenchmarkLoneTenantCheckout(b *testing.B) {
	checkoutLoop(b, New[int](Config{Policy: Fair}, nil))
}

// checkoutLoop makes the scheduler calls of a checkout and a return of t1.
func checkoutLoop(b *testing.B, s *Scheduler[int]) {
	for b.Loop() {
		s.Start("t1")
		s.Queued()
		s.Done("t1")
		s.Queued()
		s.Queued()
	}
}

// BenchmarkBusyTenantCheckout is the same with other connections of the
// tenant in use.
func BenchmarkBusyTenantCheckout(b *testing.B) {
	s := New[int](Config{Policy: Fair}, nil)
	for range 4 {
		s.Start("t1")
	}
	checkoutLoop(b, s)
}
