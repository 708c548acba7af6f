package admin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/pgwarden/pgwarden/auth"
)

// auditKeys are the audit reader's query parameters.
var auditKeys = []string{"since", "until", "tenant", "external_id", "subject", "session", "kind", "event", "outcome", "sqlstate", "warehouse", "limit", "next"}

const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// readAudit pages through the audit trail's copy in the control store,
// newest first. incomplete says that some process dropped records of the
// time range from the copy (its audit file has them).
func (h *Handler) readAudit(w http.ResponseWriter, r *http.Request, c *Caller) {
	v := r.URL.Query()
	for k := range v {
		if !slices.Contains(auditKeys, k) {
			auth.WriteError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("unknown parameter %q", k))
			return
		}
	}
	q := auth.AuditQuery{Tenant: v.Get("tenant"), ExternalID: v.Get("external_id"), Subject: v.Get("subject"), Session: v.Get("session"),
		Kind: v.Get("kind"), Event: v.Get("event"), Outcome: v.Get("outcome"), SQLState: v.Get("sqlstate"), Warehouse: v.Get("warehouse"),
		After: v.Get("next"), Limit: defaultAuditLimit}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(t.name); s != "" {
			x, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				auth.WriteError(w, http.StatusBadRequest, "invalid_request", t.name+": want an RFC 3339 time such as 2026-12-03T05:00:00Z")
				return
			}
			*t.dst = x
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxAuditLimit {
			auth.WriteError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("limit: 1 to %d", maxAuditLimit))
			return
		}
		q.Limit = n
	}
	page, err := h.store.QueryAudit(r.Context(), q)
	if errors.Is(err, auth.ErrBadCursor) {
		auth.WriteError(w, http.StatusBadRequest, "invalid_request", "next: not a cursor this API handed out")
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	auth.WriteJSON(w, http.StatusOK, map[string]any{"records": page.Records, "next": page.Next, "incomplete": page.Incomplete,
		"dropped": page.Dropped, "stored": h.cfg.AuditStored})
}
