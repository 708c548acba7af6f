package rewrite

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

func TestCacheServesOnlyIdenticalSessions(t *testing.T) {
	r := demoRewriter(t, Options{})
	base := policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier,
		Groups: []string{"pii", "analysts"}, Attributes: map[string][]string{"regions": {"EU", "NA"}}}
	const sql = "SELECT * FROM customers JOIN orders USING (customer_id)"
	first, err := r.Rewrite(context.Background(), sql, &base)
	if err != nil {
		t.Fatal(err)
	}
	same := base
	same.Groups = []string{"analysts", "pii"} // order does not matter
	same.SessionID = "other session"
	hit, err := r.Rewrite(context.Background(), sql, &same)
	if err != nil {
		t.Fatal(err)
	}
	if hit != first || !hit.Cacheable {
		t.Error("identical session did not hit the cache")
	}
	variants := map[string]func(id *policy.Identity){
		"tenant":      func(id *policy.Identity) { id.Tenant = "globex" },
		"groups":      func(id *policy.Identity) { id.Groups = []string{"pii"} },
		"no groups":   func(id *policy.Identity) { id.Groups = nil },
		"attr values": func(id *policy.Identity) { id.Attributes = map[string][]string{"regions": {"EU"}} },
		"attr empty":  func(id *policy.Identity) { id.Attributes = map[string][]string{"regions": {}} },
		"attr absent": func(id *policy.Identity) { id.Attributes = nil },
		"attr split": func(id *policy.Identity) {
			id.Attributes = map[string][]string{"regions": {"EU,NA"}}
		},
		"role":        func(id *policy.Identity) { id.Role = policy.RoleViewer },
		"kind":        func(id *policy.Identity) { id.Kind = policy.KindInternal },
		"external id": func(id *policy.Identity) { id.ExternalID = "u1" },
		"email":       func(id *policy.Identity) { id.Email = "a@b" },
	}
	for name, mutate := range variants {
		id := base
		id.Attributes = map[string][]string{"regions": {"EU", "NA"}}
		mutate(&id)
		if cacheKey(r.pol.Version(), &id, sql) == cacheKey(r.pol.Version(), &base, sql) {
			t.Errorf("%s: same cache key as the base session", name)
		}
		// And the result is the same as an uncached rewrite.
		got, err1 := r.Rewrite(context.Background(), sql, &id)
		want, err2 := r.rewrite(nil, sql, &id, nil, nil)
		if (err1 == nil) != (err2 == nil) || (err1 == nil && got.SQL != want.SQL) {
			t.Errorf("%s: cached %v / %v, uncached %v / %v", name, got, err1, want, err2)
		}
	}
	// A tenant name cannot be crafted to collide with another field.
	a := policy.Identity{Tenant: "a", ExternalID: "b", Role: policy.RoleQuerier}
	b := policy.Identity{Tenant: "a1:b", Role: policy.RoleQuerier}
	if cacheKey("v", &a, "x") == cacheKey("v", &b, "x") {
		t.Error("length prefixes do not separate fields")
	}
}

func TestCacheBoundedByBytes(t *testing.T) {
	c := newCache(4096)
	for i := 0; i < 200; i++ {
		c.put(fmt.Sprintf("key-%d", i), &Result{SQL: fmt.Sprintf("SELECT %d", i)})
		if c.size > c.max {
			t.Fatalf("size %d exceeds %d", c.size, c.max)
		}
	}
	if _, ok := c.get("key-0"); ok {
		t.Error("oldest entry not evicted")
	}
	if _, ok := c.get("key-199"); !ok {
		t.Error("newest entry evicted")
	}
	c.put("huge", &Result{SQL: string(make([]byte, 5000))})
	if _, ok := c.get("huge"); ok {
		t.Error("an entry larger than the cache was stored")
	}
}

func TestCacheDisabledAndConcurrent(t *testing.T) {
	off := demoRewriter(t, Options{CacheBytes: -1})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	res, err := off.Rewrite(context.Background(), "SELECT 1", id)
	if err != nil || res.Cacheable {
		t.Fatalf("disabled cache: %v %v", res, err)
	}
	r := demoRewriter(t, Options{CacheBytes: 64 << 10})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			tenant := []string{"acme", "globex"}[g%2]
			id := &policy.Identity{Kind: policy.KindEmbed, Tenant: tenant, Role: policy.RoleQuerier}
			for i := 0; i < 200; i++ {
				sql := fmt.Sprintf("SELECT count(*) FROM orders WHERE order_id > %d", i%50)
				res, err := r.Rewrite(context.Background(), sql, id)
				if err != nil {
					t.Error(err)
					return
				}
				want, _ := r.rewrite(nil, sql, id, nil, nil)
				if res.SQL != want.SQL {
					t.Errorf("tenant %s got %s", tenant, res.SQL)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

// A tenant's users share rewrites unless a filter names their external id or
// email; users who miss the cache at once share one rewrite.
func TestUsersShareRewrites(t *testing.T) {
	const sql = "SELECT count(*) FROM orders WHERE status = 'placed'"
	user := func(ext string) *policy.Identity {
		return &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier, ExternalID: ext, Email: ext + "@acme.example"}
	}
	r := demoRewriter(t, Options{})
	if r.personal {
		t.Fatal("the demo policy names no external_id or email, but the rewriter is personal")
	}
	const n = 64
	results := make([]*Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.Rewrite(context.Background(), sql, user(fmt.Sprint("u", i)))
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res
		}()
	}
	wg.Wait()
	// The same rewrite: the cached one, or (for a user that came while it
	// was being stored) the same text from its template, never one with
	// the user in it.
	for i, res := range results {
		if res.SQL != results[0].SQL {
			t.Fatalf("user %d got a rewrite of its own: %q, not %q", i, res.SQL, results[0].SQL)
		}
	}
	// And one cache entry for all of them: two more users get the very same.
	late1, err1 := r.Rewrite(context.Background(), sql, user("late1"))
	late2, err2 := r.Rewrite(context.Background(), sql, user("late2"))
	if err1 != nil || err2 != nil || late1 != late2 {
		t.Fatalf("two users got two cache entries (%p, %p) or an error: %v %v", late1, late2, err1, err2)
	}
	if work := r.gate.Stats().Work; work == 0 {
		t.Error("no rewrite work counted")
	}

	// A filter on {{external_id}}: each user's own rewrite, with its own id.
	cat := catalogFromDDL(t, maskSchema)
	p, err := policy.Parse([]byte(maskPolicy), "masks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pr, err := New(p, cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !pr.personal {
		t.Fatal("a policy with an {{external_id}} filter gives an impersonal rewriter")
	}
	id := &policy.Identity{Tenant: "t1", Role: policy.RoleQuerier, Groups: []string{"admins"}}
	a, b := *id, *id
	a.ExternalID, b.ExternalID = "u1", "u2"
	ra, err1 := pr.Rewrite(context.Background(), "SELECT id FROM people", &a)
	rb, err2 := pr.Rewrite(context.Background(), "SELECT id FROM people", &b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if ra == rb || !strings.Contains(ra.SQL, "'u1'") || !strings.Contains(rb.SQL, "'u2'") {
		t.Errorf("external_id filter shared between users:\n%s\n%s", ra.SQL, rb.SQL)
	}
}

// A waiter does not take an answer that says more about the caller that got
// it (canceled, out of budget) than about the statement.
func TestFlightsRetryCallerBoundErrors(t *testing.T) {
	var fs flights
	started, release := make(chan struct{}), make(chan struct{})
	leader := make(chan error, 1)
	go func() {
		_, err := fs.do(context.Background(), "k", func() (*Result, error) {
			close(started)
			<-release
			return nil, pgerr.New(pgerr.QueryCanceled, "canceling statement due to user request")
		})
		leader <- err
	}()
	<-started
	waiter := make(chan *Result, 1)
	go func() {
		res, err := fs.do(context.Background(), "k", func() (*Result, error) { return &Result{SQL: "mine"}, nil })
		if err != nil {
			t.Error(err)
		}
		waiter <- res
	}()
	waitFor(t, &fs, "k", 1)
	close(release)
	if err := <-leader; err == nil {
		t.Fatal("leader: no error")
	}
	if res := <-waiter; res == nil || res.SQL != "mine" {
		t.Errorf("waiter got %v, want its own rewrite", res)
	}
	// A waiter whose own context ends stops waiting.
	hold := make(chan struct{})
	go fs.do(context.Background(), "k2", func() (*Result, error) { <-hold; return &Result{}, nil })
	waitFor(t, &fs, "k2", 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fs.do(ctx, "k2", func() (*Result, error) { t.Error("called"); return nil, nil }); err == nil {
		t.Error("a canceled waiter got no error")
	}
	close(hold)
}

// waitFor returns once key's flight has at least waiters waiters.
func waitFor(t *testing.T, fs *flights, key string, waiters int) {
	t.Helper()
	for {
		fs.mu.Lock()
		f, ok := fs.m[key]
		ready := ok && f.waiters >= waiters
		fs.mu.Unlock()
		if ready {
			return
		}
		runtime.Gosched()
	}
}

// appendLen writes the same bytes as strconv, so that keys are what they
// were: every length a field can have up to far beyond two digits.
func TestAppendLen(t *testing.T) {
	for n := 0; n <= 100000; n++ {
		if got, want := string(appendLen([]byte("x"), n)), "x"+strconv.Itoa(n); got != want {
			t.Fatalf("appendLen(%d) = %q, want %q", n, got, want)
		}
	}
}
