package rewrite

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

var budgetID = &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}

// gatedRewriter is the pgbench rewriter behind a gate of its own.
func gatedRewriter(t *testing.T, l Limits, opts Options) (*Rewriter, *Gate) {
	t.Helper()
	g, err := NewGate(l)
	if err != nil {
		t.Fatal(err)
	}
	opts.Gate = g
	return pgbenchRewriter(t, opts), g
}

func wantCode(t *testing.T, err error, code string) *pgerr.Error {
	t.Helper()
	var pe *pgerr.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("error %v, want SQLSTATE %s", err, code)
	}
	return pe
}

// checksCtx is a context that reads as cancelled from its nth Err on, so
// that a test can stop a rewrite at a known point of its work.
type checksCtx struct {
	context.Context
	n, calls atomic.Int64
}

func (c *checksCtx) Err() error {
	if c.calls.Add(1) >= c.n.Load() {
		return context.Canceled
	}
	return nil
}

// A cancelled context stops a rewrite within a check of the meter: the work
// done is a few checks' worth, not the statement's.
func TestRewriteStopsWhenCanceled(t *testing.T) {
	const n = 10000
	sql := manyConsts("in", n, 0)
	// No time budget: the race detector on a busy machine is slow, and only
	// the work counts here.
	lim := Limits{Timeout: time.Hour}
	for _, cache := range []int64{0, -1} {
		t.Run(strconv.FormatInt(cache, 10), func(t *testing.T) {
			r, g := gatedRewriter(t, lim, Options{CacheBytes: cache})
			if _, err := r.Rewrite(context.Background(), sql, budgetID); err != nil {
				t.Fatal(err)
			}
			full := g.Stats().Work
			if full < n {
				t.Fatalf("a rewrite of %d constants counted %d work units", n, full)
			}

			r, g = gatedRewriter(t, lim, Options{CacheBytes: cache})
			ctx := &checksCtx{Context: context.Background()}
			ctx.n.Store(3)
			_, err := r.Rewrite(ctx, sql, budgetID)
			wantCode(t, err, pgerr.QueryCanceled)
			// Three checks, after finding the constants when cached (one
			// step of n units).
			limit := int64(3 * checkEvery)
			if cache == 0 {
				limit += n
			}
			if got := g.Stats(); got.Work > limit || got.Running != 0 || got.MemoryBytes != 0 {
				t.Errorf("after the cancel: %+v, want at most %d work units of the %d a rewrite takes and nothing held", got, limit, full)
			}
		})
	}
}

// The proxy cancels with a *pgerr.Error cause, which is the answer.
func TestRewriteCancelCause(t *testing.T) {
	r, _ := gatedRewriter(t, Limits{}, Options{})
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := pgerr.New(pgerr.QueryCanceled, "canceling statement due to user request")
	cancel(cause)
	_, err := r.Rewrite(ctx, "SELECT abalance FROM pgbench_accounts WHERE aid = 1", budgetID)
	if pe := wantCode(t, err, pgerr.QueryCanceled); pe.Message != cause.Message {
		t.Errorf("message %q, want the cause's %q", pe.Message, cause.Message)
	}
}

func TestRewriteBudgets(t *testing.T) {
	small := "SELECT abalance FROM pgbench_accounts WHERE aid IN (1, 2, 3)"
	big := manyConsts("in", 5000, 0)
	for _, tt := range []struct {
		name string
		lim  Limits
		sql  string
		code string // "" for success
	}{
		{"work budget, small statement", Limits{MaxWork: 2000}, small, ""},
		{"work budget, big statement", Limits{MaxWork: 2000}, big, pgerr.ProgramLimitExceeded},
		{"time budget spent", Limits{Timeout: time.Nanosecond}, small, pgerr.ProgramLimitExceeded},
		{"statement over the memory budget", Limits{MemoryBytes: int64(len(big)) - 1}, big, pgerr.OutOfMemory},
		{"statement at the memory budget", Limits{MemoryBytes: int64(len(big))}, big, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, cache := range []int64{0, -1} {
				r, g := gatedRewriter(t, tt.lim, Options{CacheBytes: cache})
				_, err := r.Rewrite(context.Background(), tt.sql, budgetID)
				if tt.code == "" {
					if err != nil {
						t.Fatalf("cache %d: %v", cache, err)
					}
				} else {
					pe := wantCode(t, err, tt.code)
					if pe.Hint == "" {
						t.Errorf("cache %d: %v has no hint", cache, pe)
					}
				}
				if tt.lim.MaxWork > 0 && cache < 0 && g.Stats().Work > tt.lim.MaxWork+1 {
					t.Errorf("cache %d: %d work units spent, budget %d", cache, g.Stats().Work, tt.lim.MaxWork)
				}
			}
		})
	}
}

// Statements wait for memory others hold, for at most MemoryWait and as
// long as their context lasts; and for a slot while all are taken. Small
// statements take no memory.
func TestGateWaits(t *testing.T) {
	small := "SELECT abalance FROM pgbench_accounts WHERE aid = 1"
	big := small + " -- " + strings.Repeat("x", smallStatement)
	const budget = 1 << 20
	r, g := gatedRewriter(t, Limits{Concurrency: 2, MemoryBytes: budget, MemoryWait: time.Millisecond}, Options{CacheBytes: -1})
	held, perr := g.enter(context.Background(), budget-len(big)+1)
	if perr != nil {
		t.Fatal(perr)
	}
	_, err := r.Rewrite(context.Background(), big, budgetID)
	wantCode(t, err, pgerr.OutOfMemory)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.Rewrite(ctx, big, budgetID)
	wantCode(t, err, pgerr.QueryCanceled)
	g.leave(held)
	if _, err := r.Rewrite(context.Background(), big, budgetID); err != nil {
		t.Fatalf("with the memory free: %v", err)
	}

	// The memory all taken: a small statement does not wait for it.
	held, perr = g.enter(context.Background(), budget)
	if perr != nil {
		t.Fatal(perr)
	}
	_, err = r.Rewrite(context.Background(), small, budgetID)
	g.leave(held)
	if err != nil {
		t.Fatalf("small statement with the memory taken: %v", err)
	}

	// Both slots taken: the statement waits for one.
	held, perr = g.enter(context.Background(), 1)
	if perr != nil {
		t.Fatal(perr)
	}
	held2, perr := g.enter(context.Background(), 1)
	if perr != nil {
		t.Fatal(perr)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := r.Rewrite(context.Background(), small, budgetID)
		errc <- err
	}()
	for g.Stats().Waiting != 1 {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-errc:
		t.Fatalf("rewrite ran while every slot was taken: %v", err)
	default:
	}
	g.leave(held)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	g.leave(held2)
	if s := g.Stats(); s.Running != 0 || s.Waiting != 0 || s.MemoryBytes != 0 {
		t.Errorf("gate after all rewrites: %+v", s)
	}
}

// A statement whose shape has a template is answered without a slot of the
// gate when it is at most hitBytes long; a longer one goes through the gate
// as any rewrite does, and one longer than the memory budget, or whose
// context has ended, is refused as before.
func TestTemplateHitGate(t *testing.T) {
	const budget = 4 * hitBytes
	r, g := gatedRewriter(t, Limits{Concurrency: 1, MemoryBytes: budget}, Options{})
	shape := func(s string) string {
		return "SELECT abalance FROM pgbench_accounts WHERE aid = 1 AND filler <> '" + s + "'"
	}
	ctx := context.Background()
	if _, err := r.Rewrite(ctx, shape("a"), budgetID); err != nil {
		t.Fatal(err)
	}
	n, _ := normalize(nil, shape("a"))
	if tm, ok := r.cache.getTemplate(n.key(identityKey(r.pol.Version(), budgetID, r.personal))); !ok || !tm.ok {
		t.Fatal("the shape has no template")
	}
	held, perr := g.enter(ctx, 1) // the only slot
	if perr != nil {
		t.Fatal(perr)
	}
	short := shape("b")
	res, err := r.Rewrite(ctx, short, budgetID)
	if err != nil {
		t.Fatalf("short statement with its template, every slot taken: %v", err)
	}
	if want, _ := r.rewrite(nil, short, budgetID, nil, nil); res.SQL != want.SQL || res.Prepared == nil {
		t.Errorf("template hit\n%s (prepared %v), want\n%s", res.SQL, res.Prepared != nil, want.SQL)
	}

	long := shape(strings.Repeat("x", hitBytes))
	lctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := r.Rewrite(lctx, long, budgetID)
		errc <- err
	}()
	for g.Stats().Waiting != 1 {
		select {
		case err := <-errc:
			t.Fatalf("a statement over %d bytes ran while every slot was taken: %v", hitBytes, err)
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	wantCode(t, <-errc, pgerr.QueryCanceled)

	_, err = r.Rewrite(ctx, shape(strings.Repeat("y", budget)), budgetID)
	wantCode(t, err, pgerr.OutOfMemory)
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	_, err = r.Rewrite(cctx, shape("c"), budgetID)
	wantCode(t, err, pgerr.QueryCanceled)

	g.leave(held)
	res, err = r.Rewrite(ctx, long, budgetID)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := r.rewrite(nil, long, budgetID, nil, nil); res.SQL != want.SQL {
		t.Errorf("long statement with its template\n%s, want\n%s", res.SQL, want.SQL)
	}
	if s := g.Stats(); s.Running != 0 || s.Waiting != 0 || s.MemoryBytes != 0 {
		t.Errorf("gate after all rewrites: %+v", s)
	}

	// A memory budget under hitBytes still refuses what exceeds it.
	r, _ = gatedRewriter(t, Limits{MemoryBytes: 100}, Options{})
	if _, err := r.Rewrite(ctx, shape("a"), budgetID); err != nil {
		t.Fatal(err)
	}
	_, err = r.Rewrite(ctx, shape(strings.Repeat("z", 100)), budgetID)
	wantCode(t, err, pgerr.OutOfMemory)
}

// A prepared form has at most 65,535 parameters, the protocol's limit (a
// statement needing more keeps its literals); equal numbers share one
// parameter, at any count.
func TestPreparedParamLimit(t *testing.T) {
	for _, tt := range []struct {
		n, distinct int
		params      int // 0: no prepared form
	}{
		{maxParams, maxParams, maxParams},
		{maxParams + 1, maxParams + 1, 0},
		{200000, 1000, 1000},
	} {
		// The template of "SELECT $1, …, $n", built directly: a rewrite
		// of so many constants takes seconds under the race detector.
		consts := make([]string, tt.n)
		parts := []string{"SELECT "}
		slots := make([]int, tt.n)
		for k := range consts {
			consts[k] = strconv.Itoa(k%tt.distinct + 1)
			slots[k] = k
			parts = append(parts, ", ")
		}
		parts[len(parts)-1] = ""
		tmpl := &template{ok: true, res: &Result{}, parts: [][]string{parts}, slots: [][]int{slots},
			prep: &prepForm{literal: make([]bool, tt.n), probe: &Probe{}}}
		pr := tmpl.prepared(nil, consts, []byte(strings.Repeat(string(rune(constInt)), tt.n)))
		got := 0
		if pr != nil {
			got = len(pr.Params)
			if !strings.HasPrefix(pr.SQL, "SELECT $1, $2, ") || strings.Count(pr.SQL, "$") != tt.n {
				t.Errorf("%d constants: prepared text %.40q…", tt.n, pr.SQL)
			}
		}
		if got != tt.params {
			t.Errorf("%d constants, %d distinct: prepared form with %d parameters, want %d", tt.n, tt.distinct, got, tt.params)
		}
	}
}
