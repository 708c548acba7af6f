package proxy

import (
	"encoding/json"
	"io"
	"net/netip"
	"sync"
	"time"
)

// AuditLog writes one JSON line per statement to an io.Writer.
type AuditLog struct {
	mu         sync.Mutex
	w          io.Writer
	includeSQL bool
	now        func() time.Time
}

// NewAuditLog returns an audit log writing to w. With includeSQL the original
// and rewritten SQL are recorded too (they may contain personal data).
func NewAuditLog(w io.Writer, includeSQL bool) *AuditLog {
	return &AuditLog{w: w, includeSQL: includeSQL, now: time.Now}
}

// AuditRecord is one line of the audit log.
type AuditRecord struct {
	Time       time.Time `json:"time"`
	Session    string    `json:"session"`
	Kind       string    `json:"kind"`
	Tenant     string    `json:"tenant"`
	ExternalID string    `json:"external_id,omitempty"`
	// Subject and Role are an internal user's (sign-on); for an embed
	// session opened to act as a test tenant, ActorSubject and ActorRole
	// name the internal user behind it.
	Subject      string  `json:"subject,omitempty"`
	Role         string  `json:"role,omitempty"`
	ActorSubject string  `json:"actor_subject,omitempty"`
	ActorRole    string  `json:"actor_role,omitempty"`
	Warehouse    string  `json:"warehouse"`
	Fingerprint  string  `json:"fingerprint,omitempty"`
	SQL          string  `json:"sql,omitempty"`
	Rewritten    string  `json:"rewritten_sql,omitempty"`
	Outcome      string  `json:"outcome"` // ok, refused or error
	SQLState     string  `json:"sqlstate,omitempty"`
	Rows         int64   `json:"rows"` // rows returned, or affected by INSERT, UPDATE or DELETE
	DurationMS   float64 `json:"duration_ms"`
	// Event names a record that is not a statement's: "login_refused".
	Event string `json:"event,omitempty"`
	// Reason says why a login was refused (outside_embed_context, pinned_address).
	Reason     string `json:"reason,omitempty"`
	ClientAddr string `json:"client_addr,omitempty"`
	// Writes names the relations an INSERT, UPDATE or DELETE (or a WITH
	// query of one) wrote.
	Writes []string `json:"writes,omitempty"`
}

// record is nil-safe so that callers need not check whether auditing is on.
func (a *AuditLog) record(c *clientConn, info *stmtInfo, outcome, code string, rows int64, start time.Time) {
	if a == nil {
		return
	}
	r := AuditRecord{
		Time:       a.now().UTC(),
		Session:    c.session.ID,
		Kind:       string(c.session.Kind),
		Subject:    c.session.Subject,
		Role:       string(c.session.Role),
		Tenant:     c.session.Tenant,
		ExternalID: c.session.ExternalID,
		Warehouse:  c.wh.Name,
		Outcome:    outcome,
		SQLState:   code,
		Rows:       rows,
		DurationMS: float64(time.Since(start).Microseconds()) / 1000,
	}
	if a := c.session.Actor; a != nil {
		r.ActorSubject, r.ActorRole = a.Subject, string(a.Role)
	}
	if info != nil {
		r.Fingerprint = info.fingerprint
		r.Writes = info.writes
		if a.includeSQL {
			r.SQL, r.Rewritten = info.original, info.rewritten
		}
	}
	a.write(&r)
}

// recordRefusedLogin records a login refused after authentication (an embed
// session outside its embed context): who, from where, and why.
func (a *AuditLog) recordRefusedLogin(c *clientConn, database, reason, code string, from netip.Addr) {
	if a == nil {
		return
	}
	r := AuditRecord{
		Time:       a.now().UTC(),
		Session:    c.session.ID,
		Tenant:     c.session.Tenant,
		ExternalID: c.session.ExternalID,
		Warehouse:  database,
		Outcome:    "refused",
		SQLState:   code,
		Event:      "login_refused",
		Reason:     reason,
	}
	if from.IsValid() {
		r.ClientAddr = from.String()
	}
	a.write(&r)
}

func (a *AuditLog) write(r *AuditRecord) {
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	b = append(b, '\n')
	a.mu.Lock()
	a.w.Write(b)
	a.mu.Unlock()
}
