package console

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/auth/oidc"
)

// ssoCookie keeps the sign-on flow's state (oidc.WebState) from the
// redirect to the provider until it sends the browser back. SameSite=Lax,
// not Strict: the provider's redirect is a navigation from another site,
// on which a browser withholds Strict cookies.
const ssoCookie = "pgwarden_console_sso"

// providers lists the identity providers sign-on trusts (none without
// sign-on).
func (h *Handler) providers(r *http.Request) []oidc.ProviderInfo {
	if h.cfg.SignOn == nil {
		return nil
	}
	var out struct {
		Providers []oidc.ProviderInfo `json:"providers"`
	}
	if res := h.callSignOn(r, http.MethodGet, nil, &out); !res.ok() {
		return nil
	}
	return out.Providers
}

func (h *Handler) callSignOn(r *http.Request, method string, body, out any) result {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, "/v1/sessions/oidc", rd)
	if err != nil {
		return result{err: err}
	}
	req.RemoteAddr = r.RemoteAddr
	req.Header.Set("Content-Type", "application/json")
	rec := &recorder{header: http.Header{}}
	h.cfg.SignOn.ServeHTTP(rec, req)
	return decodeResult(rec, method, "/v1/sessions/oidc", out)
}

// redirectURL is where the provider sends the browser back: the console's
// public URL when configured, else this request's scheme and host.
func (h *Handler) redirectURL(r *http.Request) string {
	base := strings.TrimSuffix(h.cfg.PublicURL, "/")
	if base == "" {
		scheme := "http"
		if secure(r) {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + Prefix + "callback"
}

// startSignOn sends the browser to the chosen provider.
func (h *Handler) startSignOn(w http.ResponseWriter, r *http.Request) {
	issuer := r.URL.Query().Get("issuer")
	var p *oidc.ProviderInfo
	for _, x := range h.providers(r) {
		if x.Issuer == issuer {
			p = &x
			break
		}
	}
	if p == nil {
		h.render(w, r, http.StatusBadRequest, "login", &page{Title: "Sign in", Message: "No such identity provider.", CSRF: h.loginCSRF(w, r), Data: h.providers(r)})
		return
	}
	u, st, err := oidc.StartWeb(r.Context(), h.cfg.Client, *p, h.redirectURL(r))
	if err != nil {
		h.log.Warn("console sign-on: provider unavailable", zap.Error(err))
		h.render(w, r, http.StatusServiceUnavailable, "login", &page{Title: "Sign in", Message: "The identity provider is unavailable: try again, or paste a token.", CSRF: h.loginCSRF(w, r), Data: h.providers(r)})
		return
	}
	b, _ := json.Marshal(st)
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: Prefix, MaxAge: 600,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secure(r)})
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// finishSignOn takes the provider's answer, exchanges the ID token for an
// internal session at the ticket service (in-process, as `pgwarden login`
// does over HTTP) and signs the browser in with it.
func (h *Handler) finishSignOn(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		h.render(w, r, status, "login", &page{Title: "Sign in", Message: msg, CSRF: h.loginCSRF(w, r), Data: h.providers(r)})
	}
	if h.cfg.SignOn == nil {
		fail(http.StatusNotFound, "Sign-on is not configured.")
		return
	}
	var st *oidc.WebState
	if ck, err := r.Cookie(ssoCookie); err == nil {
		if b, err := base64.RawURLEncoding.DecodeString(ck.Value); err == nil {
			json.Unmarshal(b, &st)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secure(r)})
	raw, err := oidc.FinishWeb(r.Context(), h.cfg.Client, st, h.redirectURL(r), r.URL.Query())
	if err != nil {
		h.log.Info("console sign-on refused", zap.String("reason", err.Error()))
		h.cfg.SignOn.AuditWebFailure(r, err)
		fail(http.StatusUnauthorized, "Sign-in failed: "+err.Error())
		return
	}
	var out struct {
		SessionToken string `json:"session_token"`
	}
	res := h.callSignOn(r, http.MethodPost, map[string]string{"id_token": raw}, &out)
	if !res.ok() || out.SessionToken == "" {
		if res.err != nil {
			h.fail(w, r, res.err)
			return
		}
		fail(http.StatusUnauthorized, "pgwarden refused the sign-in: "+res.message)
		return
	}
	u := &user{cred: out.SessionToken}
	if res := h.call(r.Context(), u, http.MethodGet, "/v1/admin/whoami", nil, u); !res.ok() {
		fail(http.StatusUnauthorized, "Signed in, but "+res.message)
		return
	}
	setCookie(w, r, cookieName, out.SessionToken)
	h.log.Info("console sign-in", zap.String("subject", u.Subject), zap.String("role", u.Role), zap.String("via", "sign-on"))
	// A page of ours, not a redirect: the browser came here from the
	// provider's site, and would withhold the new SameSite=Strict cookie
	// on a redirect that continues that navigation.
	h.render(w, r, http.StatusOK, "signedin", &page{Title: "Signed in", User: u})
}
