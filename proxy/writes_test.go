package proxy

import (
	"crypto/md5"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// Writes through the real proxy and rewriter on the demo's writable
// comments, in both pool modes: parameters, RETURNING masked, another
// tenant's rows out of reach, transactions that keep their meaning when
// transactions share warehouse connections, serialization failures and
// deadlocks reaching the client with their SQLSTATE, and the audit log.
func TestRealStackWrites(t *testing.T) {
	for _, mode := range []pool.Mode{pool.Session, pool.Transaction} {
		t.Run(string(mode), func(t *testing.T) {
			var audit syncBuffer
			s := startRealStack(t, mode, func(_ *Config, d *Deps) { d.Audit = NewAuditLog(&audit, false) })
			ctx := ctxT(t)
			acmeTok, _ := s.session(t, "acme", policy.RoleQuerier)
			acme := connectPgx(t, ctx, s.tp, acmeTok, pgx.QueryExecModeCacheStatement)
			acme2 := connectPgx(t, ctx, s.tp, acmeTok, pgx.QueryExecModeSimpleProtocol)
			globexTok, _ := s.session(t, "globex", policy.RoleViewer)
			globex := connectPgx(t, ctx, s.tp, globexTok, pgx.QueryExecModeSimpleProtocol)

			var id int64
			var by string
			if err := acme.QueryRow(ctx, "INSERT INTO comments (order_id, body) VALUES ($1, $2) RETURNING comment_id, created_by",
				1, "from the app").Scan(&id, &by); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%x", md5.Sum([]byte("acme-user"))); by != want {
				t.Errorf("RETURNING created_by = %q, want the masked %q", by, want)
			}
			// Comment 3 is globex's: by key, through a join, through ON CONFLICT.
			for _, sql := range []string{
				"UPDATE comments SET body = 'pwned' WHERE comment_id = 3",
				"DELETE FROM comments c USING orders o WHERE o.order_id = c.order_id AND c.comment_id = 3",
				"WITH d AS (DELETE FROM comments WHERE comment_id = 4 RETURNING 1) SELECT count(*) FROM d",
			} {
				if _, err := acme.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			if got := scalarOf[string](t, globex, "SELECT string_agg(body, '|' ORDER BY comment_id) FROM comments"); got != "globex secret: renegotiate contract|Late delivery" {
				t.Errorf("globex's comments after acme's attempts: %q", got)
			}
			_, err := acme.Exec(ctx, "UPDATE comments SET tenant_id = 'globex' WHERE comment_id = $1", id)
			wantPgErr(t, err, "42501", "tenant column")
			_, err = globex.Exec(ctx, "DELETE FROM orders")
			wantPgErr(t, err, "42501", "DELETE on relation orders")

			// A rolled back transaction leaves nothing; a committed one is seen
			// from another connection (another warehouse connection, pooled).
			count := func(conn *pgx.Conn) int64 {
				return scalarOf[int64](t, conn, "SELECT count(*) FROM comments")
			}
			n := count(acme2)
			tx, err := acme.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tag, err := tx.Exec(ctx, "DELETE FROM comments WHERE comment_id = $1", id); err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("delete in a transaction: %v %v", tag, err)
			}
			gtx, err := globex.Begin(ctx) // interleaved, on the other pooled connection
			if err != nil {
				t.Fatal(err)
			}
			if _, err := gtx.Exec(ctx, "INSERT INTO comments (order_id, body) VALUES (1, 'globex draft')"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if err := gtx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if got := count(acme2); got != n {
				t.Errorf("after a rolled back delete: %d comments, want %d", got, n)
			}
			if got := scalarOf[int64](t, globex, "SELECT count(*) FROM comments WHERE body = 'globex draft'"); got != 1 {
				t.Errorf("globex's committed insert: %d rows", got)
			}
			tx, err = acme.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "UPDATE comments SET resolved = true WHERE comment_id = $1", id); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if !scalarOf[bool](t, acme2, fmt.Sprintf("SELECT resolved FROM comments WHERE comment_id = %d", id)) {
				t.Error("a committed update is not seen from another connection")
			}

			// A serialization failure reaches the client as 40001.
			if _, err := acme2.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
				t.Fatal(err)
			}
			scalarOf[string](t, acme2, "SELECT body FROM comments WHERE comment_id = 1")
			if _, err := acme.Exec(ctx, "UPDATE comments SET body = 'first writer' WHERE comment_id = 1"); err != nil {
				t.Fatal(err)
			}
			_, err = acme2.Exec(ctx, "UPDATE comments SET body = 'second writer' WHERE comment_id = 1")
			wantPgErr(t, err, "40001", "")
			if _, err := acme2.Exec(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}

			// A deadlock between two transactions reaches one of them as 40P01.
			a, err := acme.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b, err := acme2.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Exec(ctx, "UPDATE comments SET body = 'a' WHERE comment_id = 1"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Exec(ctx, "UPDATE comments SET body = 'b' WHERE comment_id = 2"); err != nil {
				t.Fatal(err)
			}
			aDone := make(chan error, 1)
			go func() {
				_, err := a.Exec(ctx, "UPDATE comments SET body = 'a' WHERE comment_id = 2")
				aDone <- err
			}()
			_, errB := b.Exec(ctx, "UPDATE comments SET body = 'b' WHERE comment_id = 1")
			if errB != nil {
				b.Rollback(ctx) // releases a
			}
			errA := <-aDone
			var pe *pgconn.PgError
			switch {
			case errors.As(errA, &pe) && pe.Code == "40P01", errors.As(errB, &pe) && pe.Code == "40P01":
			default:
				t.Errorf("deadlock: a %v, b %v; want 40P01 for one of them", errA, errB)
			}
			a.Rollback(ctx)
			b.Rollback(ctx)
			if got := count(acme2); got != n {
				t.Errorf("after the deadlock: %d comments, want %d", got, n)
			}

			// Every write is in the audit log with its rows affected.
			var writes []string
			for _, r := range audit.records(t) {
				if len(r.Writes) == 0 {
					continue
				}
				if !slices.Equal(r.Writes, []string{"public.comments"}) {
					t.Errorf("audit record writes %q", r.Writes)
				}
				writes = append(writes, fmt.Sprintf("%s %s %d", r.Tenant, r.Outcome, r.Rows))
			}
			want := []string{
				"acme ok 1",              // the insert
				"acme ok 0",              // comment 3 by key
				"acme ok 0",              // through USING
				"acme ok 1",              // the CTE: its query's one row
				"acme ok 1",              // delete in the transaction (rolled back)
				"globex ok 1",            // globex's insert
				"acme ok 1",              // the committed update
				"acme ok 1",              // first writer
				"acme error 0",           // second writer: 40001
				"acme ok 1", "acme ok 1", // the deadlock's first updates
			}
			if len(writes) < len(want) || !slices.Equal(writes[:len(want)], want) {
				t.Errorf("audit of writes:\n got %q\nwant %q (then the deadlock's)", writes, want)
			}
		})
	}
}
