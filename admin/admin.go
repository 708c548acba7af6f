// Package admin is pgwarden's admin API: the operator's verbs (sessions and
// live connections on every replica, cancel, revocation, the audit trail,
// policies, admin API keys) and what internal users may do
// besides SQL (act as a test tenant, explain as any identity), each checked
// against the caller's role. Callers authenticate with an internal session
// token (sign-on) or an admin API key. It reads through small interfaces
// that auth and cmd implement, and is mounted on the ticket service's
// listener under /v1/admin/.
//
//	GET  /v1/admin/whoami                     any role
//	POST /v1/admin/act-as {tenant, groups, attributes}
//	                                          Owner, Administrator: any tenant;
//	                                          Creator, Designer: the policies' test_tenants
//	POST /v1/admin/explain {warehouse, sql, tenant, external_id, groups, attributes, role, internal}
//	                                          all but Viewer
//	GET  /v1/admin/sessions?filters           Owner, Administrator (filters as connections')
//	POST /v1/admin/sessions/{id}/revoke       Owner, Administrator (not an Owner's session)
//	POST /v1/admin/subjects/{subject}/revoke  Owner, Administrator (not an Owner); provider
//	                                          tokens issued before it open no new session
//	POST /v1/admin/tenants/{tenant}/revoke    Owner, Administrator (an Owner's sessions spared)
//	POST /v1/admin/external-ids/{id}/revoke[?tenant=T]
//	                                          Owner, Administrator (an Owner's sessions spared)
//	GET  /v1/admin/connections?filters        Owner, Administrator: every replica's
//	POST /v1/admin/connections/{id}/cancel    Owner, Administrator (not an Owner's statement)
//	GET  /v1/admin/stats[?window=15m]         Owner, Administrator: every replica's, merged
//	GET  /v1/admin/audit?filters&limit&next   Owner, Administrator
//	POST /v1/admin/policies/check             Owner, Administrator
//	POST /v1/admin/policies/reload            Owner, Administrator
//	GET  /v1/admin/keys                       Owner, Administrator: live keys, never their secrets
//	POST /v1/admin/keys {name, role}          Owner, Administrator (not role owner)
//	POST /v1/admin/keys/{name}/rotate         Owner, Administrator (not an owner key)
//	POST /v1/admin/keys/{name}/revoke         Owner, Administrator (not an owner key)
//
// Refusals: 401 unauthorized, 403 forbidden (the message names the role and
// what it may not do), 404 not_found, 400 invalid_request.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// Sessions is what the admin API needs of the ticket service;
// *auth.Service is one.
type Sessions interface {
	VerifySession(ctx context.Context, token string) (*auth.Session, error)
	RevokeSession(ctx context.Context, sid, by string) error
	RevokeSubject(ctx context.Context, subject string) ([]string, error)
	MintActing(ctx context.Context, actor *auth.Session, a auth.ActAs) (*auth.Session, string, error)
	// RevokeSessions revokes the live sessions f selects on every replica;
	// by names who asked (for the audit trail).
	RevokeSessions(ctx context.Context, f auth.RevokeFilter, by string) (revoked []string, spared int, err error)
}

// Store is what it needs of the control store; *auth.Store is one.
type Store interface {
	LiveSessions(ctx context.Context, now time.Time) ([]auth.SessionRecord, error)
	SessionOwner(ctx context.Context, sid string) (string, auth.UserRole, error)
	CreateAdminKey(ctx context.Context, k auth.AdminKey, sha256Hex string) error
	AdminKeyByName(ctx context.Context, name string) (*auth.AdminKey, error)
	AdminKeyByHash(ctx context.Context, sha256Hex string) (*auth.AdminKey, error)
	RotateAdminKey(ctx context.Context, name, sha256Hex string) error
	RevokeAdminKey(ctx context.Context, name string, now time.Time) error
	AdminKeys(ctx context.Context) ([]auth.AdminKey, error)
	// Ask sends a request to every live replica (connections, cancel).
	Ask(ctx context.Context, q auth.FleetQuestion) (*auth.FleetAnswers, error)
	// QueryAudit reads the audit trail's copy in the store.
	QueryAudit(ctx context.Context, q auth.AuditQuery) (*auth.AuditPage, error)
}

// Policies is what it needs of the loaded policies; cmd implements it.
type Policies interface {
	// Check re-reads every policy and catalog without applying them.
	Check(ctx context.Context) error
	// Reload applies them (all or nothing).
	Reload(ctx context.Context) error
	// TestTenants are the policies' test_tenants.
	TestTenants() []string
	// Explain rewrites sql for id on warehouse ("" when there is one).
	Explain(ctx context.Context, warehouse, sql string, id *policy.Identity) ([]string, error)
}

// Config configures the API.
type Config struct {
	// Owners are subjects that are Owners by configuration (sso.owners):
	// an Administrator may not revoke them.
	Owners []string
	Now    func() time.Time
	// FleetWait bounds how long a request to every replica waits for
	// their answers (default auth.DefaultFleetWait).
	FleetWait time.Duration
	// AuditStored: this deployment copies audit records to the store
	// (audit.store); the reader says so.
	AuditStored bool
}

// Handler serves the admin API.
type Handler struct {
	sessions Sessions
	store    Store
	policies Policies
	cfg      Config
	log      *zap.Logger
	mux      *http.ServeMux
	methods  map[string][]string // path → methods routed
	// decode reads JSON bodies as the ticket service does.
	decode func(w http.ResponseWriter, r *http.Request, dst any) bool
	fail   func(w http.ResponseWriter, r *http.Request, err error)
}

// New returns the admin API. decode and fail are the ticket service's
// (auth.Handler.Decode and Fail), so that both APIs answer alike.
func New(cfg Config, sessions Sessions, store Store, policies Policies, decode func(http.ResponseWriter, *http.Request, any) bool,
	fail func(http.ResponseWriter, *http.Request, error), log *zap.Logger) (*Handler, error) {
	if sessions == nil || store == nil || policies == nil || decode == nil || fail == nil || log == nil {
		return nil, errors.New("admin: New: nil dependency")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{sessions: sessions, store: store, policies: policies, cfg: cfg, log: log, mux: http.NewServeMux(), methods: map[string][]string{}, decode: decode, fail: fail}
	h.route("GET /v1/admin/whoami", nil, h.whoami)
	h.route("POST /v1/admin/act-as", auth.UserRole.ActAsTestTenants, h.actAs)
	h.route("POST /v1/admin/explain", auth.UserRole.Explain, h.explain)
	h.route("GET /v1/admin/sessions", auth.UserRole.Operate, h.listSessions)
	h.route("POST /v1/admin/sessions/{id}/revoke", auth.UserRole.Operate, h.revokeSession)
	h.route("POST /v1/admin/subjects/{subject}/revoke", auth.UserRole.Operate, h.revokeSubject)
	h.route("POST /v1/admin/tenants/{tenant}/revoke", auth.UserRole.Operate, h.revokeTenant)
	h.route("POST /v1/admin/external-ids/{external_id}/revoke", auth.UserRole.Operate, h.revokeExternalID)
	h.route("GET /v1/admin/connections", auth.UserRole.Operate, h.listConnections)
	h.route("GET /v1/admin/audit", auth.UserRole.Operate, h.readAudit)
	h.route("POST /v1/admin/connections/{id}/cancel", auth.UserRole.Operate, h.cancelConnection)
	h.route("GET /v1/admin/stats", auth.UserRole.Operate, h.stats)
	h.route("POST /v1/admin/policies/check", auth.UserRole.Operate, h.checkPolicies)
	h.route("POST /v1/admin/policies/reload", auth.UserRole.Operate, h.reloadPolicies)
	h.route("GET /v1/admin/keys", auth.UserRole.Operate, h.listKeys)
	h.route("POST /v1/admin/keys", auth.UserRole.Operate, h.createKey)
	h.route("POST /v1/admin/keys/{name}/rotate", auth.UserRole.Operate, h.rotateKey)
	h.route("POST /v1/admin/keys/{name}/revoke", auth.UserRole.Operate, h.revokeKey)
	// Another method on a known path is 405 with Allow, in JSON like the
	// rest of the API (the mux alone would fall through to the 404 below).
	for path, methods := range h.methods {
		allow := strings.Join(methods, ", ")
		h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			auth.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use "+allow)
		})
	}
	h.mux.HandleFunc("/v1/admin/", func(w http.ResponseWriter, r *http.Request) {
		auth.WriteError(w, http.StatusNotFound, "not_found", "no such admin endpoint")
	})
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Caller is who sent a request.
type Caller struct {
	// Session is the internal session of a signed-in user; nil for a key.
	Session *auth.Session
	// Key names the admin API key; "" for a session.
	Key  string
	Role auth.UserRole
}

// Subject is the caller's subject, or "key:<name>" for an API key.
func (c *Caller) Subject() string {
	if c.Session != nil {
		return c.Session.Subject
	}
	return "key:" + c.Key
}

// route registers pattern, allowed to callers whose role passes may (nil: any).
func (h *Handler) route(pattern string, may func(auth.UserRole) bool, f func(http.ResponseWriter, *http.Request, *Caller)) {
	method, action, _ := strings.Cut(pattern, " ")
	h.methods[action] = append(h.methods[action], method)
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c, ok := h.authenticate(w, r)
		if !ok {
			return
		}
		if may != nil && !may(c.Role) {
			h.log.Info("admin request refused", zap.String("path", action), zap.String("subject", c.Subject()), zap.String("role", string(c.Role)))
			forbidden(w, c.Role, "use "+action)
			return
		}
		f(w, r, c)
	})
}

func forbidden(w http.ResponseWriter, role auth.UserRole, what string) {
	auth.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("role %s may not %s", role, what))
}

// authenticate accepts an internal session token or an admin API key.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (*Caller, bool) {
	raw, ok := auth.Bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pgwarden-admin"`)
		auth.WriteError(w, http.StatusUnauthorized, "unauthorized", "send Authorization: Bearer <internal session token or admin API key>")
		return nil, false
	}
	if strings.Count(raw, ".") == 2 {
		s, err := h.sessions.VerifySession(r.Context(), raw)
		if err != nil {
			if errors.Is(err, auth.ErrInvalidSession) || errors.Is(err, auth.ErrSessionExpired) || errors.Is(err, auth.ErrSessionRevoked) {
				auth.WriteError(w, http.StatusUnauthorized, "unauthorized", err.Error())
				return nil, false
			}
			h.fail(w, r, err)
			return nil, false
		}
		if s.Kind != policy.KindInternal || !s.Role.Valid() {
			auth.WriteError(w, http.StatusForbidden, "forbidden", "an embed session has no admin role: sign in as an internal user")
			return nil, false
		}
		return &Caller{Session: s, Role: s.Role}, true
	}
	k, err := h.store.AdminKeyByHash(r.Context(), auth.HashAPIKey(raw))
	if errors.Is(err, auth.ErrAdminKeyNotFound) {
		auth.WriteError(w, http.StatusUnauthorized, "unauthorized", "invalid admin API key")
		return nil, false
	}
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return &Caller{Key: k.Name, Role: k.Role}, true
}

func (h *Handler) whoami(w http.ResponseWriter, r *http.Request, c *Caller) {
	out := map[string]any{"subject": c.Subject(), "role": c.Role}
	if c.Session != nil {
		out["email"], out["groups"], out["session_id"] = c.Session.Email, c.Session.Groups, c.Session.ID
	}
	auth.WriteJSON(w, http.StatusOK, out)
}

// actor is the internal identity that a test-tenant session records.
func (c *Caller) actor() *auth.Session {
	if c.Session != nil {
		return c.Session
	}
	return &auth.Session{Kind: policy.KindInternal, Subject: c.Subject(), ExternalID: c.Subject(), Role: c.Role}
}

func (h *Handler) actAs(w http.ResponseWriter, r *http.Request, c *Caller) {
	var req auth.ActAs
	if !h.decode(w, r, &req) {
		return
	}
	if !c.Role.ActAsAnyTenant() && !slices.Contains(h.policies.TestTenants(), req.Tenant) {
		forbidden(w, c.Role, fmt.Sprintf("act as tenant %q: only as the policy's test_tenants", req.Tenant))
		return
	}
	s, tok, err := h.sessions.MintActing(r.Context(), c.actor(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("acting as test tenant", zap.String("subject", c.Subject()), zap.String("role", string(c.Role)),
		zap.String("tenant", req.Tenant), zap.String("session", s.ID))
	auth.WriteJSON(w, http.StatusCreated, map[string]any{
		"session_token": tok, "session_id": s.ID, "expires_at": s.ExpiresAt.UTC().Format(time.RFC3339),
		"tenant": s.Tenant, "actor": s.Actor,
	})
}

type explainRequest struct {
	Warehouse  string              `json:"warehouse"`
	SQL        string              `json:"sql"`
	Tenant     string              `json:"tenant"`
	ExternalID string              `json:"external_id"`
	Email      string              `json:"email"`
	Groups     []string            `json:"groups"`
	Attributes map[string][]string `json:"attributes"`
	Role       policy.Role         `json:"role"`
	Internal   bool                `json:"internal"`
}

func (h *Handler) explain(w http.ResponseWriter, r *http.Request, c *Caller) {
	var req explainRequest
	if !h.decode(w, r, &req) {
		return
	}
	if req.SQL == "" {
		auth.WriteError(w, http.StatusBadRequest, "invalid_request", "sql: required")
		return
	}
	if req.Role == "" {
		req.Role = policy.RoleQuerier
	}
	if !req.Role.Valid() {
		auth.WriteError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("role: unknown role %q", req.Role))
		return
	}
	id := &policy.Identity{SessionID: "explain", Kind: policy.KindEmbed, Tenant: req.Tenant, ExternalID: req.ExternalID,
		Email: req.Email, Groups: req.Groups, Attributes: req.Attributes, Role: req.Role}
	if req.Internal {
		id.Kind = policy.KindInternal
	}
	stmts, err := h.policies.Explain(r.Context(), req.Warehouse, req.SQL, id)
	var pe *pgerr.Error
	switch {
	case errors.As(err, &pe):
		auth.WriteJSON(w, http.StatusOK, map[string]any{"refused": map[string]string{"sqlstate": pe.Code, "message": pe.Message}})
		return
	case err != nil:
		auth.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	auth.WriteJSON(w, http.StatusOK, map[string]any{"statements": stmts})
}

type sessionView struct {
	ID         string    `json:"session_id"`
	Kind       string    `json:"kind"`
	Tenant     string    `json:"tenant,omitempty"`
	ExternalID string    `json:"external_id"`
	Subject    string    `json:"subject,omitempty"`
	Role       string    `json:"role,omitempty"`
	Email      string    `json:"email,omitempty"`
	APIKey     string    `json:"api_key,omitempty"`
	Created    time.Time `json:"created_at"`
	Expires    time.Time `json:"expires_at"`
}

// listSessions lists live sessions, filtered as connections are; a filter
// on client_addr or warehouse keeps the sessions with such a connection on
// some replica (and says whether every replica answered).
func (h *Handler) listSessions(w http.ResponseWriter, r *http.Request, c *Caller) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		auth.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	rs, err := h.store.LiveSessions(r.Context(), h.cfg.Now())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	resp := map[string]any{}
	var connected map[string]bool
	if f.needsConnections() {
		conns, replicas, incomplete, err := h.connections(r.Context())
		if err != nil {
			h.fail(w, r, err)
			return
		}
		connected = map[string]bool{}
		for i := range conns {
			if f.connection(&conns[i]) {
				connected[conns[i].Session] = true
			}
		}
		resp["replicas"], resp["incomplete"] = replicas, incomplete
	}
	out := make([]sessionView, 0, len(rs))
	for _, s := range rs {
		if f.Tenant != "" && s.Tenant != f.Tenant || f.ExternalID != "" && s.ExternalID != f.ExternalID ||
			f.Subject != "" && s.Subject != f.Subject || f.Session != "" && s.ID != f.Session || connected != nil && !connected[s.ID] {
			continue
		}
		out = append(out, sessionView{ID: s.ID, Kind: s.Kind, Tenant: s.Tenant, ExternalID: s.ExternalID, Subject: s.Subject,
			Role: s.Role, Email: s.Email, APIKey: s.APIKey, Created: s.Created.UTC(), Expires: s.Expires.UTC()})
	}
	resp["sessions"] = out
	auth.WriteJSON(w, http.StatusOK, resp)
}

// ownerSubject reports whether subject is an Owner: by configuration, or
// because one of its live sessions has the owner role.
func (h *Handler) ownerSubject(ctx context.Context, subject string) (bool, error) {
	if slices.Contains(h.cfg.Owners, subject) {
		return true, nil
	}
	rs, err := h.store.LiveSessions(ctx, h.cfg.Now())
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(rs, func(s auth.SessionRecord) bool {
		return s.Subject == subject && auth.UserRole(s.Role) == auth.RoleOwner
	}), nil
}

func (h *Handler) revokeSession(w http.ResponseWriter, r *http.Request, c *Caller) {
	sid := r.PathValue("id")
	subject, role, err := h.store.SessionOwner(r.Context(), sid)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if c.Role != auth.RoleOwner {
		owner := role == auth.RoleOwner
		if !owner && subject != "" {
			if owner, err = h.ownerSubject(r.Context(), subject); err != nil {
				h.fail(w, r, err)
				return
			}
		}
		if owner {
			forbidden(w, c.Role, "revoke an Owner's session")
			return
		}
	}
	if err := h.sessions.RevokeSession(r.Context(), sid, ""); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("admin revoked session", zap.String("session", sid), zap.String("by", c.Subject()), zap.String("role", string(c.Role)))
	auth.WriteJSON(w, http.StatusOK, map[string]any{"session_id": sid, "revoked": true})
}

func (h *Handler) revokeSubject(w http.ResponseWriter, r *http.Request, c *Caller) {
	subject := r.PathValue("subject")
	if subject == "" {
		auth.WriteError(w, http.StatusBadRequest, "invalid_request", "subject: required")
		return
	}
	if c.Role != auth.RoleOwner {
		owner, err := h.ownerSubject(r.Context(), subject)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if owner {
			forbidden(w, c.Role, "revoke an Owner")
			return
		}
	}
	sids, err := h.sessions.RevokeSubject(r.Context(), subject)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("admin revoked subject", zap.String("subject", subject), zap.Int("sessions", len(sids)), zap.String("by", c.Subject()))
	if sids == nil {
		sids = []string{}
	}
	auth.WriteJSON(w, http.StatusOK, map[string]any{"subject": subject, "revoked_sessions": sids})
}

func (h *Handler) checkPolicies(w http.ResponseWriter, r *http.Request, c *Caller) {
	if err := h.policies.Check(r.Context()); err != nil {
		auth.WriteJSON(w, http.StatusOK, map[string]any{"ok": false, "error": err.Error()})
		return
	}
	auth.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func (h *Handler) reloadPolicies(w http.ResponseWriter, r *http.Request, c *Caller) {
	if err := h.policies.Reload(r.Context()); err != nil {
		h.log.Error("reload rejected, previous policy stays in force", zap.Error(err), zap.String("by", c.Subject()))
		auth.WriteJSON(w, http.StatusConflict, map[string]any{"error": "reload_rejected", "message": err.Error()})
		return
	}
	h.log.Info("admin reloaded policies", zap.String("by", c.Subject()), zap.String("role", string(c.Role)))
	auth.WriteJSON(w, http.StatusOK, map[string]any{"reloaded": true})
}

type keyRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

func (h *Handler) createKey(w http.ResponseWriter, r *http.Request, c *Caller) {
	var req keyRequest
	if !h.decode(w, r, &req) {
		return
	}
	role, err := auth.ParseUserRole(req.Role)
	if err != nil || !role.Operate() {
		auth.WriteError(w, http.StatusBadRequest, "invalid_request", "role: want owner or administrator")
		return
	}
	if req.Name == "" || len(req.Name) > 128 {
		auth.WriteError(w, http.StatusBadRequest, "invalid_request", "name: 1 to 128 bytes")
		return
	}
	if role == auth.RoleOwner && c.Role != auth.RoleOwner {
		forbidden(w, c.Role, "create a key with role owner")
		return
	}
	key, sum, err := auth.GenerateAPIKey()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	err = h.store.CreateAdminKey(r.Context(), auth.AdminKey{Name: req.Name, Role: role, CreatedBy: c.Subject(), CreatedAt: h.cfg.Now()}, sum)
	if errors.Is(err, auth.ErrAdminKeyExists) {
		auth.WriteError(w, http.StatusConflict, "key_exists", "an admin API key with that name exists (names are never reused)")
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("admin key created", zap.String("key", req.Name), zap.String("role", string(role)), zap.String("by", c.Subject()))
	auth.WriteJSON(w, http.StatusCreated, map[string]any{"name": req.Name, "role": role, "key": key})
}

func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request, c *Caller) {
	ks, err := h.store.AdminKeys(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if ks == nil {
		ks = []auth.AdminKey{}
	}
	for i := range ks {
		ks[i].CreatedAt = ks[i].CreatedAt.UTC()
	}
	auth.WriteJSON(w, http.StatusOK, map[string]any{"keys": ks})
}

// keyFor loads key name and checks that c may manage it.
func (h *Handler) keyFor(w http.ResponseWriter, r *http.Request, c *Caller) (*auth.AdminKey, bool) {
	k, err := h.store.AdminKeyByName(r.Context(), r.PathValue("name"))
	if errors.Is(err, auth.ErrAdminKeyNotFound) {
		auth.WriteError(w, http.StatusNotFound, "not_found", "no such admin API key")
		return nil, false
	}
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	if k.Role == auth.RoleOwner && c.Role != auth.RoleOwner {
		forbidden(w, c.Role, "manage an Owner's key")
		return nil, false
	}
	return k, true
}

func (h *Handler) rotateKey(w http.ResponseWriter, r *http.Request, c *Caller) {
	k, ok := h.keyFor(w, r, c)
	if !ok {
		return
	}
	key, sum, err := auth.GenerateAPIKey()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.store.RotateAdminKey(r.Context(), k.Name, sum); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("admin key rotated", zap.String("key", k.Name), zap.String("by", c.Subject()))
	auth.WriteJSON(w, http.StatusOK, map[string]any{"name": k.Name, "role": k.Role, "key": key})
}

func (h *Handler) revokeKey(w http.ResponseWriter, r *http.Request, c *Caller) {
	k, ok := h.keyFor(w, r, c)
	if !ok {
		return
	}
	if err := h.store.RevokeAdminKey(r.Context(), k.Name, h.cfg.Now()); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("admin key revoked", zap.String("key", k.Name), zap.String("by", c.Subject()))
	auth.WriteJSON(w, http.StatusOK, map[string]any{"name": k.Name, "revoked": true})
}
