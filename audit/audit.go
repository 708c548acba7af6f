// Package audit is pgwarden's audit trail: one JSON line per statement and
// per security event (a proxy login accepted or refused, a ticket exchanged,
// a session renewed or revoked), written to a file that stays the primary
// record, and optionally copied to the control store by a Batcher so that
// the admin API can read every process's events in one place.
package audit

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Events. A statement's record has no event.
const (
	EventLogin        = "login"         // a proxy login: ok, refused, or error (failed on the server's side)
	EventLoginRefused = "login_refused" // refused after authentication (embed context, pinned address)
	// EventExchange: a ticket or provider token exchanged for a session,
	// or refused. Sign-on's records (kind internal) have reason "sign-on"
	// when a session opened, otherwise the check that failed, including a
	// console sign-in that failed at the provider's answer, before any token.
	EventExchange = "exchange"
	EventRenew    = "renew"  // a session renewed
	EventRevoke   = "revoke" // a session revoked
	EventActAs    = "act_as" // an internal user opened a test-tenant session
)

// Outcomes.
const (
	OutcomeOK = "ok"
	// OutcomeRefused: refused for what the client sent or may do (a
	// credential, an access, a policy, a limit).
	OutcomeRefused = "refused"
	// OutcomeError: failed for a reason on the server's side or the
	// warehouse's (a statement's error, a store or warehouse unreachable,
	// not ready or shutting down), not a refusal of the user.
	OutcomeError = "error"
)

// Record is one line of the audit log.
type Record struct {
	Time       time.Time `json:"time"`
	Session    string    `json:"session"`
	Kind       string    `json:"kind"`
	Tenant     string    `json:"tenant"`
	ExternalID string    `json:"external_id,omitempty"`
	// Subject and Role are an internal user's (sign-on); for an embed
	// session opened to act as a test tenant, ActorSubject and ActorRole
	// name the internal user behind it.
	Subject string `json:"subject,omitempty"`
	// Email is set on sign-on records only: the provider's email claim,
	// from a token whose signature verified.
	Email        string   `json:"email,omitempty"`
	Role         string   `json:"role,omitempty"`
	ActorSubject string   `json:"actor_subject,omitempty"`
	ActorRole    string   `json:"actor_role,omitempty"`
	Groups       []string `json:"groups,omitempty"`
	Warehouse    string   `json:"warehouse"`
	// PolicyVersion identifies the warehouse policy in force (a hash of
	// its file; it changes when a reload changes the policy).
	PolicyVersion string  `json:"policy_version,omitempty"`
	Fingerprint   string  `json:"fingerprint,omitempty"`
	SQL           string  `json:"sql,omitempty"`
	Rewritten     string  `json:"rewritten_sql,omitempty"`
	Outcome       string  `json:"outcome"` // ok, refused or error
	SQLState      string  `json:"sqlstate,omitempty"`
	Rows          int64   `json:"rows"` // rows returned, or affected by INSERT, UPDATE or DELETE
	DurationMS    float64 `json:"duration_ms"`
	// Event names a record that is not a statement's (the Event constants).
	Event string `json:"event,omitempty"`
	// Reason says why a login was refused or failed (the message its
	// client got), or who revoked a session.
	Reason     string `json:"reason,omitempty"`
	ClientAddr string `json:"client_addr,omitempty"`
	// APIKey names the host application's API key behind a session event.
	APIKey string `json:"api_key,omitempty"`
	// Writes names the relations an INSERT, UPDATE or DELETE (or a WITH
	// query of one) wrote.
	Writes []string `json:"writes,omitempty"`
}

// Sink receives a copy of every record (a Batcher).
type Sink interface {
	Add(r *Record)
}

// Log writes records as JSON lines to w and hands each to sink (if any).
// A nil *Log records nothing, so callers need not check.
type Log struct {
	mu   sync.Mutex
	w    io.Writer
	sink Sink
	now  func() time.Time
}

// New returns a log writing to w (nil: to none) and copying to sink (nil:
// to none).
func New(w io.Writer, sink Sink) *Log {
	return &Log{w: w, sink: sink, now: time.Now}
}

// Now is the log's clock.
func (l *Log) Now() time.Time { return l.now() }

// Write records r, setting its time if unset.
func (l *Log) Write(r *Record) {
	if l == nil {
		return
	}
	if r.Time.IsZero() {
		r.Time = l.now().UTC()
	}
	if l.w != nil {
		b, err := json.Marshal(r)
		if err == nil {
			b = append(b, '\n')
			l.mu.Lock()
			l.w.Write(b)
			l.mu.Unlock()
		}
	}
	if l.sink != nil {
		l.sink.Add(r)
	}
}
