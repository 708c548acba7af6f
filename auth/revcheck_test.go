package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// revSessions records n sessions sid-0 … sid-(n-1) and revokes those in
// revoked.
func revSessions(t *testing.T, st *Store, n int, revoked ...int) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	for i := range n {
		r := SessionRecord{ID: fmt.Sprintf("sid-%d", i), Tenant: "acme", ExternalID: "alice", Created: now,
			Expires: now.Add(time.Hour), MaxExpires: now.Add(time.Hour)}
		if err := st.CreateSession(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range revoked {
		if err := st.Revoke(ctx, fmt.Sprintf("sid-%d", i), "", now); err != nil {
			t.Fatal(err)
		}
	}
}

// holdPool takes every connection of st's pool, so that checks queue up
// behind it as they do behind a busy store; release lets them through.
func holdPool(t *testing.T, st *Store) (release func()) {
	t.Helper()
	var conns []*pgxpool.Conn
	for range st.pool.Config().MaxConns {
		c, err := st.pool.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	return func() {
		for _, c := range conns {
			c.Release()
		}
	}
}

// patientStore gives store calls a minute, so that a check held in the queue
// on purpose is not failed by its deadline on a busy machine.
func patientStore(c *Config) { c.StoreQueryTimeout = time.Minute }

// waitQueued waits until the checker holds n waiting callers.
func waitQueued(t *testing.T, r *revChecker, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		got := 0
		for _, c := range r.pending {
			got += c.waiters
		}
		r.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers queued, want %d", got, n)
		}
	}
}

type revAnswer struct {
	revoked bool
	err     error
}

// Many concurrent checks, duplicates among them, are answered correctly in
// ceil(distinct/maxBatch) queries: a revoked sid, an unknown one, live ones.
func TestRevCheckBatches(t *testing.T) {
	e := newEnv(t, patientStore)
	st := e.store
	st.rev.maxBatch = 100
	const sessions = 250
	revSessions(t, st, sessions, 7, 142)
	release := holdPool(t, st)

	// Every sid three times, plus an unknown one twice: 252 distinct.
	var sids []string
	for range 3 {
		for i := range sessions {
			sids = append(sids, fmt.Sprintf("sid-%d", i))
		}
	}
	sids = append(sids, "sid-unknown", "sid-unknown")
	answers := make([]revAnswer, len(sids))
	var wg sync.WaitGroup
	for i, sid := range sids {
		wg.Go(func() {
			answers[i].revoked, answers[i].err = st.IsRevoked(context.Background(), sid)
		})
	}
	waitQueued(t, st.rev, len(sids))
	release()
	wg.Wait()

	for i, sid := range sids {
		a := answers[i]
		switch sid {
		case "sid-unknown":
			if !errors.Is(a.err, ErrSessionNotFound) {
				t.Errorf("%s: %v, want ErrSessionNotFound", sid, a.err)
			}
		case "sid-7", "sid-142":
			if a.err != nil || !a.revoked {
				t.Errorf("%s: revoked=%v err=%v, want revoked", sid, a.revoked, a.err)
			}
		default:
			if a.err != nil || a.revoked {
				t.Errorf("%s: revoked=%v err=%v, want live", sid, a.revoked, a.err)
			}
		}
	}
	if b, s := st.rev.batches.Load(), st.rev.sent.Load(); b != 3 || s != sessions+1 {
		t.Errorf("%d queries carrying %d sids, want 3 carrying %d", b, s, sessions+1)
	}

	// Nothing is kept: a revocation is seen by the very next check.
	if revoked, err := st.IsRevoked(context.Background(), "sid-8"); err != nil || revoked {
		t.Fatalf("sid-8 before revocation: %v %v", revoked, err)
	}
	if err := st.Revoke(context.Background(), "sid-8", "", time.Now()); err != nil {
		t.Fatal(err)
	}
	if revoked, err := st.IsRevoked(context.Background(), "sid-8"); err != nil || !revoked {
		t.Fatalf("sid-8 after revocation: %v %v, want revoked", revoked, err)
	}
	if r := st.rev; r.runnersNow() != 0 {
		t.Errorf("%d batch goroutines left with nothing queued", r.runnersNow())
	}
}

func (r *revChecker) runnersNow() int {
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		n := r.runners
		r.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
	}
}

// A caller whose context ends while queued returns at once with its own
// error; a caller of the same sid, and the others, still get their answer;
// a sid nobody waits for any more is not sent.
func TestRevCheckCancelWhileQueued(t *testing.T) {
	e := newEnv(t, patientStore)
	st := e.store
	revSessions(t, st, 3, 1)
	release := holdPool(t, st)
	defer func() { release() }()

	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 2)
	go func() { _, err := st.IsRevoked(ctx, "sid-0"); gone <- err }()
	go func() { _, err := st.IsRevoked(ctx, "sid-2"); gone <- err }()
	answers := make([]revAnswer, 2)
	var wg sync.WaitGroup
	for i, sid := range []string{"sid-0", "sid-1"} {
		wg.Go(func() { answers[i].revoked, answers[i].err = st.IsRevoked(context.Background(), sid) })
	}
	waitQueued(t, st.rev, 4)
	cancel()
	for range 2 {
		select {
		case err := <-gone:
			if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrStoreUnavailable) {
				t.Errorf("cancelled caller: %v, want context.Canceled as ErrStoreUnavailable", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("cancelled caller still waiting")
		}
	}
	release()
	release = func() {}
	wg.Wait()
	if answers[0].err != nil || answers[0].revoked {
		t.Errorf("sid-0 (shared with a cancelled caller): %+v, want live", answers[0])
	}
	if answers[1].err != nil || !answers[1].revoked {
		t.Errorf("sid-1: %+v, want revoked", answers[1])
	}
	if s := st.rev.sent.Load(); s != 2 {
		t.Errorf("%d sids sent, want 2 (sid-2 was abandoned)", s)
	}
}

// With the store frozen, queued and sent checks alike fail within the
// query timeout as ErrStoreUnavailable, the 57P03 path;
// after the thaw they are answered again.
func TestRevCheckFrozenStore(t *testing.T) {
	c := storeCluster(t)
	e := newEnv(t, shortStoreTimeouts(c.DSN("postgres")))
	st := e.store
	revSessions(t, st, 50, 3)
	if err := c.Freeze(); err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			c.Thaw()
		}
	}()
	errs := make([]error, 200)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { _, errs[i] = st.IsRevoked(context.Background(), fmt.Sprintf("sid-%d", i%50)) })
	}
	waitOrFatal(t, &wg, 30*time.Second, "checks still hanging 30s into the freeze")
	for i, err := range errs {
		if !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("check %d with the store frozen: %v, want ErrStoreUnavailable", i, err)
		}
	}
	if err := c.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawed = true
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var revoked bool
		if revoked, err = st.IsRevoked(context.Background(), "sid-3"); err == nil {
			if !revoked {
				t.Fatal("sid-3 not revoked after the thaw")
			}
			break
		}
	}
	if err != nil {
		t.Errorf("check after thaw: %v", err)
	}
}
