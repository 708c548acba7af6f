package proxy

import "slices"

// stmtNames is a session's memo of the last name proxyStmtName gave for a
// simple-protocol statement that runs prepared. A session tends to repeat
// one shape (pgbench, a dashboard's refresh), and a shape's prepared text
// is the same string every time (its template's, rewrite/prepared.go), so
// the memo answers with a comparison, most often of two pointers, instead
// of a SHA-256 of the text and an allocation. The loop's alone (c.mu).
type stmtNames struct {
	sql  string
	oids []uint32
	name string
}

// get is proxyStmtName(sql, oids).
func (n *stmtNames) get(sql string, oids []uint32) string {
	if n.name != "" && sql == n.sql && slices.Equal(oids, n.oids) {
		return n.name
	}
	n.name = proxyStmtName(sql, oids)
	n.sql, n.oids = sql, append(n.oids[:0], oids...)
	return n.name
}
