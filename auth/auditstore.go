package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/audit"
)

var _ audit.Store = (*Store)(nil)

// EventStatement is how the store names a statement's record (whose
// event field is empty) for filters.
const EventStatement = "statement"

// InsertAudit copies audit records (and a gap, if any) to the store in one
// transaction.
func (s *Store) InsertAudit(ctx context.Context, recs []audit.Record, gap *audit.Gap) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.fail("audit insert", err)
	}
	defer tx.Rollback(ctx)
	if len(recs) > 0 {
		rows := make([][]any, len(recs))
		for i := range recs {
			r := &recs[i]
			b, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("auth store: audit insert: %w", err)
			}
			event := r.Event
			if event == "" {
				event = EventStatement
			}
			subject := r.Subject
			if subject == "" {
				subject = r.ActorSubject
			}
			rows[i] = []any{r.Time, event, r.Session, r.Kind, r.Tenant, r.ExternalID, subject, r.Outcome, r.SQLState, r.Warehouse, string(b)}
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{strings.Trim(s.schema, `"`), "audit_events"},
			[]string{"time", "event", "session", "kind", "tenant", "external_id", "subject", "outcome", "sqlstate", "warehouse", "record"},
			pgx.CopyFromRows(rows))
		if err != nil {
			return s.fail("audit insert", err)
		}
	}
	if gap != nil {
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.schema+`.audit_gaps (first_at, last_at, dropped) VALUES ($1, $2, $3)`,
			gap.First, gap.Last, gap.Dropped); err != nil {
			return s.fail("audit insert", err)
		}
	}
	return s.fail("audit insert", tx.Commit(ctx))
}

// PurgeAudit deletes audit rows (and gaps) older than before.
func (s *Store) PurgeAudit(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+s.schema+`.audit_events WHERE time < $1`, before)
	if err != nil {
		return 0, s.fail("audit purge", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.schema+`.audit_gaps WHERE last_at < $1`, before); err != nil {
		return 0, s.fail("audit purge", err)
	}
	return tag.RowsAffected(), nil
}

// AuditQuery selects audit records; empty fields match anything.
type AuditQuery struct {
	Since, Until                               time.Time
	Tenant, ExternalID, Subject, Session, Kind string
	Event, Outcome, SQLState, Warehouse        string
	// After is a cursor: records older than it (Next of a previous page).
	After string
	Limit int
}

// AuditPage is one page of records, newest first.
type AuditPage struct {
	Records []json.RawMessage
	// Next is the cursor of the following page; "" when this is the last.
	Next string
	// Incomplete: some process dropped records of this time range from
	// the store's copy (its audit file has them).
	Incomplete bool
	Dropped    int64
}

// ErrBadCursor: a cursor this store did not hand out.
var ErrBadCursor = errors.New("invalid cursor")

// QueryAudit reads a page of audit records, newest first.
func (s *Store) QueryAudit(ctx context.Context, q AuditQuery) (*AuditPage, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if !q.Since.IsZero() {
		add("time >= ?", q.Since)
	}
	if !q.Until.IsZero() {
		add("time < ?", q.Until)
	}
	for _, f := range []struct{ col, v string }{{"tenant", q.Tenant}, {"external_id", q.ExternalID}, {"subject", q.Subject},
		{"session", q.Session}, {"kind", q.Kind}, {"event", q.Event}, {"outcome", q.Outcome}, {"sqlstate", q.SQLState}, {"warehouse", q.Warehouse}} {
		if f.v != "" {
			add(f.col+" = ?", f.v)
		}
	}
	if q.After != "" {
		id, err := strconv.ParseInt(q.After, 10, 64)
		if err != nil || id <= 0 {
			return nil, ErrBadCursor
		}
		add("id < ?", id)
	}
	sql := `SELECT id, record FROM ` + s.schema + `.audit_events`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, q.Limit+1)
	sql += ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, s.fail("audit query", err)
	}
	page := &AuditPage{Records: []json.RawMessage{}}
	var last int64
	for rows.Next() {
		var (
			id  int64
			rec string
		)
		if err := rows.Scan(&id, &rec); err != nil {
			rows.Close()
			return nil, s.fail("audit query", err)
		}
		if len(page.Records) == q.Limit {
			page.Next = strconv.FormatInt(last, 10)
			break
		}
		page.Records = append(page.Records, json.RawMessage(rec))
		last = id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.fail("audit query", err)
	}
	// Gaps overlapping the time range asked for.
	since, until := q.Since, q.Until
	if until.IsZero() {
		until = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(dropped), 0) FROM `+s.schema+`.audit_gaps WHERE last_at >= $1 AND first_at < $2`,
		since, until).Scan(&page.Dropped); err != nil {
		return nil, s.fail("audit query", err)
	}
	page.Incomplete = page.Dropped > 0
	return page, nil
}
