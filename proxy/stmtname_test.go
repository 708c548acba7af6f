package proxy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
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

// TestCallsSetConfig: set_config in any case, anywhere, and nothing else.
func TestCallsSetConfig(t *testing.T) {
	for _, sql := range []string{
		"", "_", "set_config", "SET_CONFIG", "Set_Config(", "SELECT set_config('a', 'b', false)",
		"SELECT pg_catalog.set_config('role', 'x', true)", "select * from a_b, c_d where set_confi = 1",
		"SELECT et_config", "_set_config", "set_confi", "et_config(", "SELECT 'ſet_config'", "set_confİg",
		"SELECT pgbench_accounts.abalance FROM pgbench_accounts WHERE tenant_id = 't1'", "x_set_config_y",
	} {
		if got, want := callsSetConfig(sql), strings.Contains(asciiLower(sql), "set_config"); got != want {
			t.Errorf("callsSetConfig(%q) = %v, want %v", sql, got, want)
		}
	}
}

func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// TestStmtNames: a remembered text has the name, types and set_config
// flag newly derived ones would have, whatever else was looked up since.
func TestStmtNames(t *testing.T) {
	var n stmtNames
	for round := 0; round < 3; round++ {
		for _, c := range []struct {
			sql  string
			oids []uint32
		}{
			{"SELECT $1", nil}, {"SELECT $1", []uint32{23}}, {"SELECT set_config('a', $1, false)", nil},
			{"SELECT $1", []uint32{20}}, {strings.Repeat("x", internMax+1), nil},
		} {
			name, oids, sets := n.lookup(c.sql, c.oids)
			if name != proxyStmtName(c.sql, c.oids) || !slices.Equal(oids, c.oids) || sets != callsSetConfig(c.sql) {
				t.Errorf("round %d: lookup(%.20q, %v) = %s, %v, %v", round, c.sql, c.oids, name, oids, sets)
			}
		}
	}
}

// BenchmarkStmtNames looks up pgbench's select as the proxy prepares it,
// parsed again before each execution.
func BenchmarkStmtNames(b *testing.B) {
	sql := "SELECT abalance FROM (SELECT pgbench_accounts.aid, pgbench_accounts.abalance FROM public.pgbench_accounts " +
		"WHERE pgbench_accounts.tenant_id = 't1' AND pgbench_accounts.aid = $1) pgbench_accounts WHERE aid = $1"
	var n stmtNames
	b.ReportAllocs()
	for b.Loop() {
		n.lookup(sql, nil)
	}
}

// BenchmarkCallsSetConfig scans pgbench's select as rewritten.
func BenchmarkCallsSetConfig(b *testing.B) {
	sql := "SELECT abalance FROM (SELECT pgbench_accounts.aid, pgbench_accounts.abalance FROM public.pgbench_accounts " +
		"WHERE pgbench_accounts.tenant_id = 't1' AND pgbench_accounts.aid = 4244) pgbench_accounts WHERE aid = 4244"
	for b.Loop() {
		callsSetConfig(sql)
	}
}
