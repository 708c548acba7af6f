package auth

import (
	"errors"
	"net/netip"

	"github.com/pgwarden/pgwarden/audit"
	"github.com/pgwarden/pgwarden/policy"
)

// auditSession records a session event of the ticket service (nil-safe:
// without an audit log it records nothing). sess may be nil for a refusal
// before any session exists; err, when set, makes the outcome refused (a
// client's error) or error (anything else).
func (s *Service) auditSession(event string, sess *Session, client netip.Addr, reason string, err error) {
	if s.cfg.Audit == nil {
		return
	}
	r := sessionRecord(event, sess, client, reason)
	if err != nil {
		r.Outcome = audit.OutcomeError
		if clientError(err) {
			r.Outcome = audit.OutcomeRefused
		}
		if r.Reason == "" {
			r.Reason = err.Error()
		}
	}
	s.cfg.Audit.Write(r)
}

// auditSignOnOpened records an internal session opened by sign-on, with
// the user's email.
func (s *Service) auditSignOnOpened(sess *Session, client netip.Addr) {
	if s.cfg.Audit == nil {
		return
	}
	r := sessionRecord(audit.EventExchange, sess, client, "sign-on")
	r.Email = sess.Email
	s.cfg.Audit.Write(r)
}

// sessionRecord is the record of a session event with outcome ok.
func sessionRecord(event string, sess *Session, client netip.Addr, reason string) *audit.Record {
	r := &audit.Record{Event: event, Outcome: audit.OutcomeOK, Reason: reason}
	if sess != nil {
		r.Session, r.Kind, r.Tenant, r.ExternalID = sess.ID, string(sess.Kind), sess.Tenant, sess.ExternalID
		r.Subject, r.Role, r.Groups, r.APIKey = sess.Subject, string(sess.Role), sess.Groups, sess.APIKeyName
		if r.Kind == "" {
			r.Kind = "embed"
		}
		if a := sess.Actor; a != nil {
			r.ActorSubject, r.ActorRole = a.Subject, string(a.Role)
		}
	}
	if client.IsValid() {
		r.ClientAddr = client.Unmap().String()
	}
	return r
}

// clientError: the request was refused for what it carried, not because
// the service failed.
func clientError(err error) bool {
	for _, e := range []error{ErrTicketExpired, ErrInvalidTicket, ErrTicketUsed, ErrPinNeedsAddress, ErrInvalidSession,
		ErrSessionExpired, ErrSessionRevoked, ErrSessionNotFound} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// SignOnAttempt is a sign-on that opened no session, as the audit log
// records it (an exchange record of kind internal).
type SignOnAttempt struct {
	// Client is the HTTP peer's address (invalid: unknown).
	Client netip.Addr
	// Subject and Email identify the user only when they come from a token
	// whose signature and issuer verified; never from an unverified one.
	Subject, Email string
	// Reason is which check failed, in the words the client was answered.
	Reason string
	// Failed: the provider or pgwarden failed (outcome error), not the
	// client's token or answer (outcome refused).
	Failed bool
}

// maxAuditField bounds the identity and reason a sign-on record carries:
// they come from a provider's claims or a refusal's words, and a flood of
// bad tokens must not grow the audit log by more than a line each.
const maxAuditField = 256

// AuditSignOn records a refused or failed sign-on: the exchange endpoint
// (auth/oidc) and the console's callback call it; MintInternalFrom records
// its own.
func (s *Service) AuditSignOn(a SignOnAttempt) {
	if s.cfg.Audit == nil {
		return
	}
	r := audit.Record{Event: audit.EventExchange, Kind: string(policy.KindInternal), Outcome: audit.OutcomeRefused,
		Reason: truncate(a.Reason, maxAuditField), Subject: truncate(a.Subject, maxAuditField), Email: truncate(a.Email, maxAuditField)}
	if a.Failed {
		r.Outcome = audit.OutcomeError
	}
	if a.Client.IsValid() {
		r.ClientAddr = a.Client.Unmap().String()
	}
	s.cfg.Audit.Write(&r)
}
