package admin

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/auth"
)

// revokeTenant ends every live session of a tenant on every replica
// (through the store's revocation notifications, as a single revocation).
func (h *Handler) revokeTenant(w http.ResponseWriter, r *http.Request, c *Caller) {
	h.revokeWhere(w, r, c, auth.RevokeFilter{Tenant: r.PathValue("tenant")})
}

// revokeExternalID ends every live session of an external id, within the
// tenant of ?tenant= when given.
func (h *Handler) revokeExternalID(w http.ResponseWriter, r *http.Request, c *Caller) {
	for k := range r.URL.Query() {
		if k != "tenant" {
			auth.WriteError(w, http.StatusBadRequest, "invalid_request", "unknown parameter "+k+" (want tenant)")
			return
		}
	}
	h.revokeWhere(w, r, c, auth.RevokeFilter{ExternalID: r.PathValue("external_id"), Tenant: r.URL.Query().Get("tenant")})
}

func (h *Handler) revokeWhere(w http.ResponseWriter, r *http.Request, c *Caller, f auth.RevokeFilter) {
	if f.Tenant == "" && f.ExternalID == "" {
		auth.WriteError(w, http.StatusBadRequest, "invalid_request", "name a tenant or an external id")
		return
	}
	if c.Role != auth.RoleOwner {
		f.SpareOwners, f.Owners = true, h.cfg.Owners
	}
	sids, spared, err := h.sessions.RevokeSessions(r.Context(), f, c.Subject())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("admin revoked sessions", zap.String("tenant", f.Tenant), zap.String("external_id", f.ExternalID),
		zap.Int("sessions", len(sids)), zap.Int("spared_owner_sessions", spared), zap.String("by", c.Subject()))
	if sids == nil {
		sids = []string{}
	}
	out := map[string]any{"revoked_sessions": sids, "spared_owner_sessions": spared}
	if f.Tenant != "" {
		out["tenant"] = f.Tenant
	}
	if f.ExternalID != "" {
		out["external_id"] = f.ExternalID
	}
	auth.WriteJSON(w, http.StatusOK, out)
}
