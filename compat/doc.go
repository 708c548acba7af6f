// Package compat is pgwarden's real-client compatibility suite: it checks
// that the drivers and BI tools customers point at pgwarden work unchanged
// through it, and see only their tenant. It has no library code: main_test.go
// starts `pgwarden demo`, drives pgx, lib/pq, psql, pgjdbc, psycopg2,
// psycopg 3, SQLAlchemy and node-postgres through it as tenant acme (plus the
// connect-time chatter of psqlODBC and Npgsql, raw wire-protocol message order
// and the SQL that Metabase, Superset, Tableau, Power BI and Grafana
// generate), checks that each works and sees only acme, and prints a
// client × check matrix.
//
// Run it with `make compat` (installs the runtimes with compat/install.sh,
// then runs the suite) or `go test ./compat/`: clients whose runtime is
// missing are skipped locally and fail when CI is set.
// PGWARDEN_COMPAT_STRICT=1 (make compat-strict) turns the known gaps and bugs
// (knownCatalogGaps, knownBugs) from skips into failures;
// PGWARDEN_COMPAT_MATRIX=path also writes the matrix to a file;
// PGWARDEN_COMPAT_BINARY=path runs a prebuilt pgwarden instead of building
// one. Relative paths are resolved from compat/, where go test runs.
package compat
