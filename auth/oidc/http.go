package oidc

import (
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/auth"
)

// Handler serves POST /v1/sessions/oidc on the ticket service: a BI server
// (or `pgwarden login`) sends a provider's ID token for a signed-in author
// and gets an internal pgwarden session, which renews at
// POST /v1/sessions/renew like any other.
//
//	GET  /v1/sessions/oidc  {"providers": [{"issuer", "client_id", "scopes"}]}
//	  (what `pgwarden login` needs to run the authorization-code flow)
//	POST /v1/sessions/oidc  {"id_token"} or Authorization: Bearer <id token>
//	  201 {"session_token", "session_id", "expires_at", "host", "port",
//	       "database", "subject", "role"}
//	  401 invalid_token (message says which check failed);
//	  403 not_permitted (no role, email domain); 503 provider_unavailable
type Handler struct {
	v   *Verifier
	svc *auth.Service
	h   *auth.Handler
	log *zap.Logger
}

// NewHandler returns the exchange endpoint; mount it with
// h.Mount("/v1/sessions/oidc", "sessions_oidc", handler).
func NewHandler(v *Verifier, svc *auth.Service, h *auth.Handler, log *zap.Logger) (*Handler, error) {
	if v == nil || svc == nil || h == nil || log == nil {
		return nil, errors.New("oidc: NewHandler: nil dependency")
	}
	return &Handler{v: v, svc: svc, h: h, log: log}, nil
}

type exchangeRequest struct {
	IDToken string `json:"id_token"`
}

// ServeHTTP implements http.Handler.
func (x *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		auth.WriteJSON(w, http.StatusOK, map[string]any{"providers": x.v.Providers()})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		auth.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	// Every sign-on that opens no session is audited (MintInternalFrom
	// records its own, and the opened ones): who, from where, and why.
	client := auth.RemoteAddr(r)
	tok, ok := auth.Bearer(r)
	if !ok {
		var req exchangeRequest
		if !x.h.Decode(w, r, &req) {
			x.svc.AuditSignOn(auth.SignOnAttempt{Client: client, Reason: "request body is not the exchange's JSON"})
			return
		}
		tok = req.IDToken
	}
	if tok == "" {
		x.svc.AuditSignOn(auth.SignOnAttempt{Client: client, Reason: msgNoToken})
		auth.WriteError(w, http.StatusBadRequest, "invalid_request", msgNoToken)
		return
	}
	u, id, err := x.v.verify(r.Context(), tok)
	if err != nil {
		status, code := refusalCode(err)
		msg := err.Error()
		if status == 503 {
			x.log.Warn("identity provider unavailable", zap.Error(err))
			msg = ErrProviderUnavailable.Error()
		} else {
			x.log.Info("sign-on token refused", zap.String("reason", msg), zap.Stringer("client", client))
		}
		x.svc.AuditSignOn(auth.SignOnAttempt{Client: client, Subject: id.subject, Email: id.email, Reason: msg, Failed: status == 503})
		auth.WriteError(w, status, code, msg)
		return
	}
	s, st, err := x.svc.MintInternalFrom(r.Context(), u, client)
	if errors.Is(err, auth.ErrSubjectRevoked) {
		auth.WriteError(w, http.StatusUnauthorized, "subject_revoked", err.Error())
		return
	}
	if err != nil {
		x.h.Fail(w, r, err)
		return
	}
	auth.WriteJSON(w, http.StatusCreated, x.h.SessionResponse(s, st))
}

const msgNoToken = "send the provider's ID token as id_token or as a bearer token"

// AuditWebFailure records a console sign-in that failed at the provider's
// answer (FinishWeb's error), before any ID token reached the exchange:
// refused for a bad answer (wrong state, the provider's refusal), error
// when the provider failed. r is the browser's request to the callback.
func (x *Handler) AuditWebFailure(r *http.Request, err error) {
	a := auth.SignOnAttempt{Client: auth.RemoteAddr(r), Reason: "sign-in failed"}
	var we *WebError
	if errors.As(err, &we) {
		a.Reason, a.Failed = "console sign-in: "+we.Reason, we.Failed
	}
	x.svc.AuditSignOn(a)
}
