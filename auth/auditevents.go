package auth

import (
	"errors"
	"net/netip"

	"github.com/pgwarden/pgwarden/audit"
)

// auditSession records a session event of the ticket service (nil-safe:
// without an audit log it records nothing). sess may be nil for a refusal
// before any session exists; err, when set, makes the outcome refused (a
// client's error) or error (anything else).
func (s *Service) auditSession(event string, sess *Session, client netip.Addr, reason string, err error) {
	if s.cfg.Audit == nil {
		return
	}
	r := audit.Record{Event: event, Outcome: audit.OutcomeOK, Reason: reason}
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
	if err != nil {
		r.Outcome = audit.OutcomeError
		if clientError(err) {
			r.Outcome = audit.OutcomeRefused
		}
		if r.Reason == "" {
			r.Reason = err.Error()
		}
	}
	s.cfg.Audit.Write(&r)
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
