package rewrite

import (
	"container/list"
	"sort"
	"strconv"
	"sync"

	"github.com/pgwarden/pgwarden/policy"
)

// cache is an LRU of rewrite results bounded by bytes (keys plus values).
// Keys hold the identity's fields in full, not a hash of them, so a result is
// never served to a session that would rewrite differently.
type cache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[string]*list.Element
}

// An entry's value is a *Result (keyed by the exact text) or a *template
// (keyed by the text with its constants replaced, see template.go).
type cacheEntry struct {
	key  string
	val  any
	size int64
}

func newCache(max int64) *cache {
	return &cache{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

// maxEntryShare: a statement longer than the cache's bytes over this is not
// cached, so that one client's huge statements neither flush everyone's
// entries nor pay for a key and a second (template) rewrite of their text.
const maxEntryShare = 16

// fits reports whether a statement of textLen bytes may be cached.
func (c *cache) fits(textLen int) bool { return int64(textLen) <= c.max/maxEntryShare }

func (c *cache) get(key string) (*Result, bool) {
	res, ok := c.lookup(key).(*Result)
	return res, ok
}

func (c *cache) put(key string, res *Result) { c.store(key, res, resultSize(res)) }

func (c *cache) getTemplate(key string) (*template, bool) {
	t, ok := c.lookup(key).(*template)
	return t, ok
}

func (c *cache) putTemplate(key string, t *template) { c.store(key, t, t.size()) }

func (c *cache) lookup(key string) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cacheEntry).val
}

// getBytes and getTemplateBytes are get and getTemplate for a key being
// built in a buffer: the lookup does not copy it.
func (c *cache) getBytes(key []byte) (*Result, bool) {
	res, ok := c.lookupBytes(key).(*Result)
	return res, ok
}

func (c *cache) getTemplateBytes(key []byte) (*template, bool) {
	t, ok := c.lookupBytes(key).(*template)
	return t, ok
}

func (c *cache) lookupBytes(key []byte) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[string(key)]
	if !ok {
		return nil
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cacheEntry).val
}

func (c *cache) store(key string, val any, valSize int64) {
	size := int64(len(key)) + valSize
	if size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, val: val, size: size})
	c.size += size
	for c.size > c.max {
		last := c.ll.Back()
		ent := last.Value.(*cacheEntry)
		c.ll.Remove(last)
		delete(c.items, ent.key)
		c.size -= ent.size
	}
}

// resultSize approximates a result's memory: its strings plus fixed overhead.
func resultSize(r *Result) int64 {
	n := int64(len(r.SQL)+len(r.Fingerprint)) + 128
	for _, l := range r.Learned {
		n += int64(len(l.Fingerprint)+len(l.Normalized)+len(l.Example)) + 48
	}
	for _, s := range r.Statements {
		n += int64(len(s.SQL)+len(s.SetName)+len(s.SetValue)) + 96
		for _, rel := range s.Relations {
			n += int64(len(rel)) + 16
		}
	}
	return n
}

// cacheKey is the policy version, every identity field that can change a
// rewrite (length-prefixed, groups and attributes sorted), and the text.
func cacheKey(version string, id *policy.Identity, sql string) string {
	return identityKey(version, id, true) + sql
}

// identityKey is cacheKey without the text: the part a statement and its
// template share. Without personal, the external id and email are left out
// (see Rewriter.personal).
func identityKey(version string, id *policy.Identity, personal bool) string {
	return string(appendIdentityKey(nil, version, id, personal))
}

// appendIdentityKey appends identityKey to b: rewriteFor builds its keys in
// a buffer of its own, so that a statement the cache answers allocates none.
func appendIdentityKey(b []byte, version string, id *policy.Identity, personal bool) []byte {
	b = appendField(b, version)
	b = appendField(b, string(id.Kind))
	b = appendField(b, string(id.Role))
	b = appendField(b, id.Tenant)
	if personal {
		b = appendField(b, id.ExternalID)
		b = appendField(b, id.Email)
	}
	groups := id.Groups
	if !sort.StringsAreSorted(groups) {
		groups = append([]string(nil), groups...)
		sort.Strings(groups)
	}
	b = appendLen(b, len(groups))
	b = append(b, 'g')
	for _, g := range groups {
		b = appendField(b, g)
	}
	if len(id.Attributes) > 0 {
		var arr [8]string
		names := arr[:0]
		for k := range id.Attributes {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			b = appendField(b, k)
			vs := id.Attributes[k]
			b = appendLen(b, len(vs))
			b = append(b, 'v')
			for _, v := range vs {
				b = appendField(b, v)
			}
		}
	}
	return append(b, '|')
}

func appendField(b []byte, s string) []byte {
	b = appendLen(b, len(s))
	b = append(b, ':')
	return append(b, s...)
}

// appendLen appends n in decimal, as strconv.AppendInt does, without its
// call for the one- and two-digit lengths of almost every field: the key
// is built at every statement.
func appendLen(b []byte, n int) []byte {
	switch {
	case n < 10:
		return append(b, byte('0'+n))
	case n < 100:
		return append(b, byte('0'+n/10), byte('0'+n%10))
	}
	return strconv.AppendInt(b, int64(n), 10)
}

// appendParamsKey appends what separates a Parse's rewrite in the cache
// from a simple Query's and from those with other declared types: nothing
// for a Query (prm nil).
func appendParamsKey(b []byte, prm *params) []byte {
	if prm == nil {
		return b
	}
	b = append(b, 0, 'P')
	for _, t := range prm.types {
		b = strconv.AppendUint(b, uint64(t), 10)
		b = append(b, ',')
	}
	return append(b, 0)
}

// appendTenantKey appends what the cache keys by for the session's tenant
// schema (tenantFor), nothing when it has none: the same text rewrites
// differently once the schema is read again.
func appendTenantKey(b []byte, ts *tenantState) []byte {
	if ts == nil {
		return b
	}
	b = appendLen(b, len(ts.key))
	b = append(b, 's')
	return append(b, ts.key...)
}
