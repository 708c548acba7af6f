package proxy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// proxyStmtName is the SHA-256 of the text's length, the text and the
// types, whether they fit its stack buffer or not: equal inputs one name,
// any difference another, a text followed by types too.
func TestProxyStmtName(t *testing.T) {
	want := func(sql string, oids []uint32) string {
		h := sha256.New()
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(sql))))
		h.Write([]byte(sql))
		for _, o := range oids {
			h.Write(binary.BigEndian.AppendUint32(nil, o))
		}
		return "pgw_" + hex.EncodeToString(h.Sum(nil)[:12])
	}
	type stmt struct {
		sql  string
		oids string
	}
	seen := map[string]stmt{}
	for _, n := range []int{0, 1, 100, 1000, 1008, 1012, 1016, 1017, 1024, 1025, 5000} {
		for _, oids := range [][]uint32{nil, {23}, {23, 20}, {20, 23}, {0, 0}, {0x41414141}} {
			sql := strings.Repeat("x", n)
			got := proxyStmtName(sql, oids)
			if w := want(sql, oids); got != w {
				t.Errorf("len %d, oids %v: %s, want %s", n, oids, got, w)
			}
			s := stmt{sql, fmt.Sprint(oids)}
			if other, ok := seen[got]; ok && other != s {
				t.Errorf("len %d, oids %v: the name of %v", n, oids, other)
			}
			seen[got] = s
		}
	}
	// A type's bytes after the text are not more text.
	if proxyStmtName("SELECT $1", []uint32{0x41414141}) == proxyStmtName("SELECT $1AAAA", nil) {
		t.Error("a text with a type named as the text with the type's bytes")
	}
}

// BenchmarkProxyStmtName names pgbench's select as the proxy prepares it.
func BenchmarkProxyStmtName(b *testing.B) {
	sql := "SELECT abalance FROM (SELECT pgbench_accounts.aid, pgbench_accounts.abalance FROM public.pgbench_accounts " +
		"WHERE pgbench_accounts.tenant_id = 't1' AND pgbench_accounts.aid = $1) pgbench_accounts WHERE aid = $1"
	oids := []uint32{23}
	b.ReportAllocs()
	for b.Loop() {
		proxyStmtName(sql, oids)
	}
}

// stmtNames answers what proxyStmtName does, whatever the order of the
// statements and whatever the caller does to its types after.
func TestStmtNames(t *testing.T) {
	var n stmtNames
	a, b := "SELECT $1", "SELECT $1 + 1"
	oids := []uint32{23}
	for i, c := range []struct {
		sql  string
		oids []uint32
	}{
		{a, oids}, {a, oids}, {a, []uint32{20}}, {a, nil}, {b, []uint32{23}}, {b, []uint32{23}}, {a, []uint32{23}}, {"", nil},
	} {
		if got, want := n.get(c.sql, c.oids), proxyStmtName(c.sql, c.oids); got != want {
			t.Errorf("%d: %q %v: %s, want %s", i, c.sql, c.oids, got, want)
		}
	}
	n.get(a, oids)
	oids[0] = 20
	if got, want := n.get(a, oids), proxyStmtName(a, []uint32{20}); got != want {
		t.Errorf("after the caller changed its types: %s, want %s", got, want)
	}
}

// BenchmarkStmtNames is BenchmarkProxyStmtName for a session repeating
// one shape, whose prepared text is one string.
func BenchmarkStmtNames(b *testing.B) {
	sql := "SELECT abalance FROM (SELECT pgbench_accounts.aid, pgbench_accounts.abalance FROM public.pgbench_accounts " +
		"WHERE pgbench_accounts.tenant_id = 't1' AND pgbench_accounts.aid = $1) pgbench_accounts WHERE aid = $1"
	oids := []uint32{23}
	var n stmtNames
	b.ReportAllocs()
	for b.Loop() {
		n.get(sql, oids)
	}
}
