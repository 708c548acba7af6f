// Package memrelease gives memory back to the operating system after a
// statement whose parse tree was large (rewrite/rewrite.go calls it).
//
// Both heaps of the process keep what they freed: Go's runtime returns free
// pages to the system only gradually (its scavenger), and glibc keeps what
// pg_query's C parser and deparser freed in its arenas. A statement of the
// largest size builds a parse tree of hundreds of MiB in each, one after the
// other (the Go tree, then the C deparser's), so without a release in
// between they add up in the resident set. Release costs a garbage
// collection of the whole Go heap: callers use it only after statements
// large enough that this is small beside their own cost.
package memrelease
