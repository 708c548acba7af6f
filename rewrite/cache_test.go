package rewrite

import (
	"context"
	"fmt"
	"sync"
	"testing"

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
