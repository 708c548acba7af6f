package auth

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/audit"
)

// The store's copy of the audit trail: a full queue drops records and says
// so (the gap makes the reader's answer incomplete for its time range),
// filters and the cursor page through the rest newest first, and retention
// deletes old rows.
func TestAuditStore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b, err := audit.NewBatcher(audit.BatcherConfig{Queue: 4, Batch: 2, Interval: 10 * time.Millisecond, Retention: time.Hour}, e.store, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	log := audit.New(nil, b)
	base := time.Now().UTC().Truncate(time.Second)
	for i := range 6 {
		tenant := "acme"
		if i%2 == 1 {
			tenant = "globex"
		}
		log.Write(&audit.Record{Time: base.Add(time.Duration(i) * time.Second), Session: "s" + string(rune('0'+i)), Tenant: tenant, Outcome: "ok", Warehouse: "wh"})
	}
	if b.Dropped() != 2 {
		t.Fatalf("dropped %d, want 2 (queue of 4)", b.Dropped())
	}
	// An old record, past the retention.
	if err := e.store.InsertAudit(ctx, []audit.Record{{Time: base.Add(-2 * time.Hour), Tenant: "acme", Event: audit.EventRevoke, Outcome: "ok"}}, nil); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { b.Run(rctx); close(done) }()
	var page *AuditPage
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if page, err = e.store.QueryAudit(ctx, AuditQuery{Limit: 100}); err != nil {
			t.Fatal(err)
		}
		if len(page.Records) == 4 && page.Dropped == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored: %d records, %d dropped", len(page.Records), page.Dropped)
		}
	}
	cancel()
	<-done
	if !page.Incomplete {
		t.Error("a page over the dropped records is not marked incomplete")
	}
	// The old record went with the purge at start; the rest: newest first.
	var first audit.Record
	json.Unmarshal(page.Records[0], &first)
	if first.Session != "s3" {
		t.Errorf("newest first: got %+v", first)
	}
	// Two per page, by tenant.
	var sessions []string
	q := AuditQuery{Tenant: "acme", Limit: 1}
	for range 5 {
		p, err := e.store.QueryAudit(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range p.Records {
			var r audit.Record
			json.Unmarshal(raw, &r)
			sessions = append(sessions, r.Session)
		}
		if p.Next == "" {
			break
		}
		q.After = p.Next
	}
	if len(sessions) != 2 || sessions[0] != "s2" || sessions[1] != "s0" {
		t.Errorf("acme's records page by page: %v", sessions)
	}
	// A range after the gap is complete.
	p, err := e.store.QueryAudit(ctx, AuditQuery{Since: base.Add(time.Hour), Limit: 10})
	if err != nil || p.Incomplete || len(p.Records) != 0 {
		t.Errorf("after the gap: %+v %v", p, err)
	}
	if p, err := e.store.QueryAudit(ctx, AuditQuery{Event: EventStatement, Outcome: "ok", Warehouse: "wh", Limit: 10}); err != nil || len(p.Records) != 4 {
		t.Errorf("statements: %v %v", p, err)
	}
	if _, err := e.store.QueryAudit(ctx, AuditQuery{After: "x", Limit: 10}); err != ErrBadCursor {
		t.Errorf("bad cursor: %v", err)
	}
}
