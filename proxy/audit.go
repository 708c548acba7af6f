package proxy

import (
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/audit"
	"github.com/pgwarden/pgwarden/pgerr"
)

// AuditLog records one line per statement and per proxy login (see package
// audit for the record and where it goes).
type AuditLog struct {
	log        *audit.Log
	includeSQL bool
}

// NewAuditLog returns an audit log writing to w. With includeSQL the original
// and rewritten SQL are recorded too (they may contain personal data).
func NewAuditLog(w io.Writer, includeSQL bool) *AuditLog {
	return NewAuditLogTo(audit.New(w, nil), includeSQL)
}

// NewAuditLogTo returns an audit log writing to l (shared with the ticket
// service of the same process).
func NewAuditLogTo(l *audit.Log, includeSQL bool) *AuditLog {
	return &AuditLog{log: l, includeSQL: includeSQL}
}

// AuditRecord is one line of the audit log.
type AuditRecord = audit.Record

// policyVersioner is a Rewriter that names its policy's version
// (rewrite.Rewriter is one).
type policyVersioner interface{ PolicyVersion() string }

// base fills what every record of c's session carries.
func (c *clientConn) auditBase(r *AuditRecord) {
	s := c.session
	r.Session, r.Kind, r.Subject, r.Role = s.ID, string(s.Kind), s.Subject, string(s.Role)
	r.Tenant, r.ExternalID, r.Groups = s.Tenant, s.ExternalID, s.Groups
	if a := s.Actor; a != nil {
		r.ActorSubject, r.ActorRole = a.Subject, string(a.Role)
	}
	r.ClientAddr = c.clientAddr()
	if c.wh != nil {
		r.Warehouse = c.wh.Name
		if v, ok := c.wh.Rewriter().(policyVersioner); ok {
			r.PolicyVersion = v.PolicyVersion()
		}
	}
}

// clientAddr is the client's IP address (without the port).
func (c *clientConn) clientAddr() string {
	if ap, err := netip.ParseAddrPort(c.raw.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap().String()
	}
	return ""
}

// record is nil-safe so that callers need not check whether auditing is on.
func (a *AuditLog) record(c *clientConn, info *stmtInfo, outcome, code string, rows int64, start time.Time) {
	if a == nil {
		return
	}
	r := AuditRecord{
		Time:       a.log.Now().UTC(),
		Outcome:    outcome,
		SQLState:   code,
		Rows:       rows,
		DurationMS: float64(time.Since(start).Microseconds()) / 1000,
	}
	c.auditBase(&r)
	if info != nil {
		r.Fingerprint = info.fingerprint
		r.Writes = info.writes
		if a.includeSQL {
			// A copy: a simple query's rewritten SQL may be in the
			// session's hit buffer, which its next statement overwrites,
			// and a sink keeps the record longer (reusableHit).
			r.SQL, r.Rewritten = info.original, strings.Clone(info.rewritten)
		}
	}
	a.log.Write(&r)
}

// recordRefusedLogin records a login refused after authentication (an embed
// session outside its embed context): who, from where, and why.
func (a *AuditLog) recordRefusedLogin(c *clientConn, database, reason, code string, from netip.Addr) {
	if a == nil {
		return
	}
	r := AuditRecord{
		Time:       a.log.Now().UTC(),
		Session:    c.session.ID,
		Tenant:     c.session.Tenant,
		ExternalID: c.session.ExternalID,
		Warehouse:  database,
		Outcome:    audit.OutcomeRefused,
		SQLState:   code,
		Event:      audit.EventLoginRefused,
		Reason:     reason,
	}
	if from.IsValid() {
		r.ClientAddr = from.String()
	}
	a.log.Write(&r)
}

// recordLogin records a login: accepted (err nil, c's session known), or
// not, with the SQLSTATE and message the client got (the session when
// authentication passed). A login that failed on the server's side (see
// serverFailure) is outcome error, not refused: the user was not turned away.
func (a *AuditLog) recordLogin(c *clientConn, database string, err error) {
	if a == nil {
		return
	}
	r := AuditRecord{Time: a.log.Now().UTC(), Event: audit.EventLogin, Outcome: audit.OutcomeOK}
	if err != nil {
		r.SQLState, r.Reason = loginError(err)
		r.Outcome = audit.OutcomeRefused
		if serverFailure(r.SQLState) {
			r.Outcome = audit.OutcomeError
		}
	}
	if c.session != nil {
		c.auditBase(&r)
	} else {
		r.ClientAddr = c.clientAddr()
	}
	if r.Warehouse == "" {
		r.Warehouse = database
	}
	a.log.Write(&r)
}

// maxReason bounds a login record's reason: a message may quote what the
// client sent (a database name), and a flood of bad logins must not grow
// the audit log by more than a line each.
const maxReason = 256

// loginError is the SQLSTATE and message of err as errorResponse answers
// the client: ours and the warehouse's by their own, anything else XX000
// "internal error" (its cause and correlation id are in the log only).
func loginError(err error) (code, reason string) {
	er, _ := wireError(err)
	if er == nil {
		return pgerr.InternalError, "internal error"
	}
	code, reason = er.Code, er.Message
	if len(reason) > maxReason {
		reason = strings.ToValidUTF8(reason[:maxReason], "")
	}
	return code, reason
}

// serverFailure tells a login that failed on the server's side from one
// refused for what the client brought, by SQLSTATE class as PostgreSQL
// names them: 08 connection exception (a warehouse unreachable), 57 operator
// intervention (57P03 not ready or shutting down, 57P01 shut down), 58
// system error and XX internal error. 08P01 is the client's protocol
// violation and 57014 its own cancel or hang-up; 53300 is a limit on the
// user or tenant, so a refusal, as on PostgreSQL.
func serverFailure(code string) bool {
	switch code {
	case pgerr.ProtocolViolation, pgerr.QueryCanceled:
		return false
	}
	switch code[:min(2, len(code))] {
	case "08", "57", "58", "XX":
		return true
	}
	return false
}
