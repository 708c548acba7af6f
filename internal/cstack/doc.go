// Package cstack gives the C code pgwarden calls (pg_query's parser,
// deparser and fingerprinter, all recursive over the parse tree) large
// thread stacks, and measures how much of them a call uses.
//
// Go runs C calls on the calling thread's own stack, which glibc sizes from
// RLIMIT_STACK: 8 MiB by default, but only 2 MiB when the limit is
// "unlimited". On Linux with cgo, importing this package makes every thread
// created after it loads, which is every thread the Go runtime creates, get
// Size bytes of stack (address space only: pages are touched as used). The
// bound on statement depth (rewrite/depth.go) is the first defence; this is
// the margin behind it. Elsewhere the package does nothing and reports
// ok false.
package cstack

// Size is the default stack size this package sets for new threads.
const Size = 64 << 20
