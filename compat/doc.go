// Package compat is pgwarden's real-client compatibility suite (issue 7, "BI
// frontends work unchanged"). It has no library code: compat_test.go starts
// `pgwarden demo`, drives pgx, lib/pq, psql, pgjdbc, psycopg2, psycopg 3,
// SQLAlchemy and node-postgres through it as tenant acme, checks that each
// works and sees only acme, and prints a client × check matrix.
//
// Run it with `make compat` (installs the runtimes, then runs the suite) or
// `go test ./compat/`: clients whose runtime is missing are skipped locally and
// fail when CI is set. PGWARDEN_COMPAT_STRICT=1 turns the known catalog gaps
// (knownCatalogGaps) from skips into failures; PGWARDEN_COMPAT_MATRIX=path also
// writes the matrix to a file; PGWARDEN_COMPAT_BINARY=path runs a prebuilt
// pgwarden instead of building one.
package compat
