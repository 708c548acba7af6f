// Package console is pgwarden's operator console: server-rendered pages
// under /console/ on the ticket service's listener, over the admin API.
// Every page and every button calls the admin API's handler in-process
// with the signed-in user's credential, so the console may do exactly what
// the API allows that role, and nothing else.
//
// Sign-in is an internal session token (`pgwarden login`, or the sign-on
// exchange) or an admin API key, pasted once and kept in an HttpOnly,
// SameSite=Strict cookie (Secure when the request came over TLS). Every
// POST carries a CSRF token derived from the credential and is refused
// without it or from another origin. Templates, styles and charts (inline
// SVG drawn here) are embedded: the console loads nothing from elsewhere.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

//go:embed assets
var assets embed.FS

const (
	// Prefix is where the console is mounted.
	Prefix = "/console/"
	// cookieName holds the credential; loginCookie the sign-in form's
	// CSRF value before there is a credential.
	cookieName  = "pgwarden_console"
	loginCookie = "pgwarden_console_login"
	// maxForm bounds a form body (the explain playground's SQL included).
	maxForm = 1 << 20
)

// Config configures the console.
type Config struct {
	// SignOn is the ticket service's sign-on exchange (/v1/sessions/oidc),
	// nil without sign-on: with it, the sign-in page offers each provider.
	SignOn SignOn
	// PublicURL is the console's origin as browsers reach it (for the
	// provider's redirect), e.g. https://pgwarden.example.com; "" takes
	// each request's.
	PublicURL string
	// Client makes the requests to identity providers.
	Client *http.Client
	Now    func() time.Time
}

// SignOn is the sign-on exchange as the console uses it; *oidc.Handler is
// one. The exchange audits every sign-on it sees; AuditWebFailure records
// one that failed at the provider's answer, before the exchange.
type SignOn interface {
	http.Handler
	AuditWebFailure(r *http.Request, err error)
}

// Handler serves the console.
type Handler struct {
	admin http.Handler
	cfg   Config
	log   *zap.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New returns the console over admin, the admin API's handler (mounted at
// /v1/admin/).
func New(cfg Config, admin http.Handler, log *zap.Logger) (*Handler, error) {
	if admin == nil || log == nil {
		return nil, errors.New("console: New: nil dependency")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	h := &Handler{admin: admin, cfg: cfg, log: log, pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	funcs := template.FuncMap{
		"ago":   func(t time.Time) string { return ago(cfg.Now(), t) },
		"since": func(t *time.Time) string { return since(cfg.Now(), t) },
		"ms":    func(v float64) string { return fmtMs(v) },
		"clock": func(t time.Time) string { return t.UTC().Format("15:04:05") },
	}
	for _, p := range []string{"login", "overview", "connections", "confirm", "done", "explain", "audit", "forbidden", "signedin", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", p, err)
		}
		h.pages[p] = t
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, err
	}
	h.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /console/login", h.loginForm)
	h.mux.HandleFunc("POST /console/login", h.login)
	h.mux.HandleFunc("GET /console/login/sso", h.startSignOn)
	h.mux.HandleFunc("GET /console/callback", h.finishSignOn)
	h.mux.HandleFunc("POST /console/logout", h.signedIn(h.logout))
	h.mux.HandleFunc("GET /console/{$}", h.signedIn(h.overview))
	h.mux.HandleFunc("GET /console/connections", h.signedIn(h.connections))
	h.mux.HandleFunc("GET /console/confirm", h.signedIn(h.confirm))
	h.mux.HandleFunc("POST /console/do", h.signedIn(h.do))
	h.mux.HandleFunc("GET /console/explain", h.signedIn(h.explainForm))
	h.mux.HandleFunc("POST /console/explain", h.signedIn(h.explain))
	h.mux.HandleFunc("GET /console/audit", h.signedIn(h.audit))
	h.mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		h.render(w, r, http.StatusNotFound, "error", &page{Title: "Not found", Message: "There is no such console page."})
	})
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Nothing but the console's own styles; no scripts at all; not framed.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer a browser sends
	// "Origin: null" with the console's own POSTs.
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// user is the signed-in caller of a request.
type user struct {
	cred    string
	Subject string `json:"subject"`
	Role    string `json:"role"`
	Email   string `json:"email"`
}

// CSRF is the token every form of this user's posts: a hash of the
// credential, so that it is the same on every replica and unknown to
// anyone who does not hold the credential.
func (u *user) CSRF() string { return csrfFor(u.cred) }

func csrfFor(cred string) string {
	sum := sha256.Sum256([]byte("pgwarden-console-csrf\x00" + cred))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// signedIn resolves the cookie's credential through the admin API's
// whoami, sends a missing or refused one to the sign-in page, and checks
// a POST's origin and CSRF token.
func (h *Handler) signedIn(f func(http.ResponseWriter, *http.Request, *user)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(cookieName)
		if err != nil || ck.Value == "" {
			http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if !sameOrigin(r) || r.ParseForm() != nil ||
				subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(csrfFor(ck.Value))) != 1 {
				h.log.Info("console post refused: bad CSRF token or origin", zap.String("path", r.URL.Path))
				h.render(w, r, http.StatusForbidden, "error", &page{Title: "Refused", Message: "This form was not sent from the console (missing or wrong CSRF token, or another origin). Reload the page and try again."})
				return
			}
		}
		u := &user{cred: ck.Value}
		res := h.call(r.Context(), u, http.MethodGet, "/v1/admin/whoami", nil, u)
		if res.status == http.StatusUnauthorized || res.status == http.StatusForbidden {
			clearCookie(w, r, cookieName)
			h.render(w, r, http.StatusUnauthorized, "login", &page{Title: "Sign in", Message: "Your sign-in is no longer valid: " + res.message, CSRF: h.loginCSRF(w, r), Data: h.providers(r)})
			return
		}
		if res.err != nil {
			h.fail(w, r, res.err)
			return
		}
		f(w, r, u)
	}
}

// sameOrigin: a browser's POST names its origin; one from another site is
// refused even with a valid token (SameSite=Strict already keeps the
// cookie from such a request).
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true // not a browser, or one that names no origin: the token decides
	}
	if o == "null" {
		// A privacy setting hides the origin; the browser still says the
		// request came from this origin.
		return r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)})
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)})
}

// loginCSRF sets the sign-in form's double-submit cookie and returns its value.
func (h *Handler) loginCSRF(w http.ResponseWriter, r *http.Request) string {
	b := make([]byte, 24)
	rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	setCookie(w, r, loginCookie, v)
	return v
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "login", &page{Title: "Sign in", CSRF: h.loginCSRF(w, r), Data: h.providers(r)})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	ck, err := r.Cookie(loginCookie)
	if err != nil || !sameOrigin(r) || r.ParseForm() != nil ||
		subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(ck.Value)) != 1 {
		h.log.Info("console sign-in refused: bad CSRF token or origin", zap.Bool("cookie", err == nil), zap.Bool("same_origin", sameOrigin(r)),
			zap.String("origin", r.Header.Get("Origin")), zap.String("sec_fetch_site", r.Header.Get("Sec-Fetch-Site")))
		h.render(w, r, http.StatusForbidden, "login", &page{Title: "Sign in", Message: "This form was not sent from the console: try again.", CSRF: h.loginCSRF(w, r), Data: h.providers(r)})
		return
	}
	cred := strings.TrimSpace(r.PostForm.Get("credential"))
	u := &user{cred: cred}
	res := h.call(r.Context(), u, http.MethodGet, "/v1/admin/whoami", nil, u)
	if cred == "" || res.status == http.StatusUnauthorized || res.status == http.StatusForbidden {
		msg := "Paste an internal session token or an admin API key."
		if res.message != "" && cred != "" {
			msg = "Not signed in: " + res.message
		}
		h.render(w, r, http.StatusUnauthorized, "login", &page{Title: "Sign in", Message: msg, CSRF: h.loginCSRF(w, r), Data: h.providers(r)})
		return
	}
	if res.err != nil {
		h.fail(w, r, res.err)
		return
	}
	clearCookie(w, r, loginCookie)
	setCookie(w, r, cookieName, cred)
	h.log.Info("console sign-in", zap.String("subject", u.Subject), zap.String("role", u.Role))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, u *user) {
	clearCookie(w, r, cookieName)
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// result is the admin API's answer to one call.
type result struct {
	status  int
	code    string // the API's error code
	message string // its message
	err     error  // the call could not be made or read
}

func (r result) ok() bool { return r.err == nil && r.status/100 == 2 }

// call serves one admin API request in-process as u and decodes its JSON
// answer into out (when 2xx).
func (h *Handler) call(ctx context.Context, u *user, method, path string, body, out any) result {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return result{err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return result{err: err}
	}
	req.RequestURI = path
	req.Header.Set("Authorization", "Bearer "+u.cred)
	req.Header.Set("Content-Type", "application/json")
	rec := &recorder{header: http.Header{}}
	h.admin.ServeHTTP(rec, req)
	return decodeResult(rec, method, path, out)
}

// decodeResult reads an in-process answer: out from a 2xx, the API's
// error code and message otherwise.
func decodeResult(rec *recorder, method, path string, out any) result {
	res := result{status: rec.status}
	if res.status == 0 {
		res.status = http.StatusOK
	}
	if res.status/100 == 2 {
		if out != nil {
			if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
				res.err = fmt.Errorf("%s %s: %w", method, path, err)
			}
		}
		return res
	}
	var e struct{ Error, Message string }
	json.Unmarshal(rec.body.Bytes(), &e)
	res.code, res.message = e.Error, e.Message
	if res.status >= 500 {
		res.err = fmt.Errorf("%s %s: %d %s %s", method, path, res.status, e.Error, e.Message)
	}
	return res
}

// recorder is the in-process response of an admin API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string
	User    *user
	CSRF    string
	Message string
	Data    any
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	if p.User != nil && p.CSRF == "" {
		p.CSRF = p.User.CSRF()
	}
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, p); err != nil {
		h.log.Error("console template", zap.String("page", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// refused renders the admin API's refusal of one of u's calls: a clear
// "your role may not …" page for 403, the API's message otherwise.
func (h *Handler) refused(w http.ResponseWriter, r *http.Request, u *user, what string, res result) {
	if res.err != nil {
		h.fail(w, r, res.err)
		return
	}
	if res.status == http.StatusForbidden {
		h.render(w, r, http.StatusForbidden, "forbidden", &page{Title: "Not allowed", User: u, Message: res.message, Data: what})
		return
	}
	h.render(w, r, res.status, "error", &page{Title: "Refused", User: u, Message: fmt.Sprintf("%s: %s (%s)", what, res.message, res.code)})
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	id := make([]byte, 6)
	rand.Read(id)
	cid := fmt.Sprintf("%x", id)
	h.log.Error("console request failed", zap.String("path", r.URL.Path), zap.String("correlation_id", cid), zap.Error(err))
	h.render(w, r, http.StatusInternalServerError, "error", &page{Title: "Error", Message: "Internal error (correlation id " + cid + ")."})
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return now.Sub(t).Truncate(time.Second).String()
}

func since(now time.Time, t *time.Time) string {
	if t == nil {
		return ""
	}
	return ago(now, *t)
}

func fmtMs(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}
