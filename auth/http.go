package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/policy"
)

// HashAPIKey returns the hex SHA-256 of an API key, as configured in
// APIKey.SHA256.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// GenerateAPIKey returns a new random API key and its hash.
func GenerateAPIKey() (key, sha256Hex string, err error) {
	id, err := randomID(32)
	if err != nil {
		return "", "", err
	}
	key = "pgw_" + id
	return key, HashAPIKey(key), nil
}

// Handler serves the ticket service's HTTP API.
type Handler struct {
	svc      *Service
	cfg      Config
	log      *zap.Logger
	mux      *http.ServeMux
	origins  map[string]bool
	keys     []apiKey
	gatherer prometheus.Gatherer
	m        handlerMetrics
	draining atomic.Bool
}

type apiKey struct {
	name   string
	hash   []byte
	bucket *bucket // nil: unlimited
}

type handlerMetrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	minted      *prometheus.CounterVec
	exchanges   *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
}

// NewHandler returns the HTTP API of svc. Metrics are registered on reg;
// GET /metrics serves them when reg is also a prometheus.Gatherer (as a
// *prometheus.Registry is).
func NewHandler(svc *Service, reg prometheus.Registerer, log *zap.Logger) (*Handler, error) {
	if svc == nil || reg == nil || log == nil {
		return nil, errors.New("auth: NewHandler: nil dependency")
	}
	cfg := svc.cfg
	h := &Handler{svc: svc, cfg: cfg, log: log, mux: http.NewServeMux(), origins: map[string]bool{}}
	for _, o := range cfg.CORSOrigins {
		n, err := normalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		h.origins[n] = true
	}
	now := cfg.Now()
	for _, k := range cfg.APIKeys {
		hash, err := hex.DecodeString(k.SHA256)
		if err != nil {
			return nil, fmt.Errorf("auth config: api key %q: bad sha256", k.Name)
		}
		ak := apiKey{name: k.Name, hash: hash}
		if k.RatePerSecond > 0 {
			ak.bucket = newBucket(k.RatePerSecond, k.Burst, now)
		}
		h.keys = append(h.keys, ak)
	}
	h.gatherer, _ = reg.(prometheus.Gatherer)
	h.m = handlerMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_auth_http_requests_total", Help: "HTTP requests to the ticket service by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pgwarden_auth_http_request_duration_seconds", Help: "HTTP request latency of the ticket service by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
		minted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_auth_tickets_minted_total", Help: "Tickets minted by API key.",
		}, []string{"api_key"}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_auth_ticket_exchanges_total", Help: "Ticket exchanges by result.",
		}, []string{"result"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_auth_rate_limited_total", Help: "Ticket requests refused by the per-key rate limit.",
		}, []string{"api_key"}),
	}
	for _, c := range []prometheus.Collector{h.m.requests, h.m.duration, h.m.minted, h.m.exchanges, h.m.rateLimited} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("auth: register metrics: %w", err)
		}
	}
	h.route("/v1/tickets", "tickets", false, h.mintTicket)
	h.route("/v1/sessions", "sessions", true, h.exchange)
	h.route("/v1/sessions/renew", "renew", true, h.renew)
	h.route("/v1/sessions/{id}/revoke", "revoke", false, h.revoke)
	h.handle("/v1/content", "content", http.MethodGet, h.content)
	h.handle("/.well-known/jwks.json", "jwks", http.MethodGet, h.jwks)
	h.handle("/healthz", "healthz", http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	h.handle("/readyz", "readyz", http.MethodGet, h.ready)
	h.handle("/metrics", "metrics", http.MethodGet, h.metrics)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.instrument("not_found", w, r, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
		})
	})
	return h, nil
}

// HTTPServer returns a server for h on addr with the configured timeouts: a
// client that sends slowly, reads slowly or idles cannot hold a connection,
// and each request's work is bounded by HTTPRequestTimeout (see instrument).
func (h *Handler) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: min(h.cfg.HTTPReadTimeout, 5*time.Second),
		ReadTimeout:       h.cfg.HTTPReadTimeout,
		WriteTimeout:      h.cfg.HTTPWriteTimeout,
		IdleTimeout:       h.cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          zap.NewStdLog(h.log),
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// route registers a POST endpoint; browser endpoints get CORS.
func (h *Handler) route(pattern, name string, browser bool, f http.HandlerFunc) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		h.instrument(name, w, r, func(w http.ResponseWriter, r *http.Request) {
			if browser && !h.cors(w, r) {
				return
			}
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", "POST")
				writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
				return
			}
			f(w, r)
		})
	})
}

func (h *Handler) handle(pattern, name, method string, f http.HandlerFunc) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		h.instrument(name, w, r, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
				w.Header().Set("Allow", method)
				writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use "+method)
				return
			}
			f(w, r)
		})
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (h *Handler) instrument(route string, w http.ResponseWriter, r *http.Request, f http.HandlerFunc) {
	start := time.Now()
	// Every store call below gets this deadline too, so a request answers
	// within it however the store behaves.
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.HTTPRequestTimeout)
	defer cancel()
	r = r.WithContext(ctx)
	sw := &statusWriter{ResponseWriter: w}
	f(sw, r)
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	h.m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	h.m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// cors applies the origin allow-list. It answers preflights itself and
// returns false when the request is done.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions
	if origin == "" {
		if preflight {
			w.Header().Set("Allow", "POST, OPTIONS")
			w.WriteHeader(http.StatusNoContent)
			return false
		}
		// Not a browser (or same-origin GET): nothing to allow.
		return true
	}
	n, err := normalizeOrigin(origin)
	if err != nil || !h.origins[n] {
		h.log.Info("origin refused", zap.String("origin", truncate(origin, 100)))
		writeError(w, http.StatusForbidden, "origin_not_allowed", "origin is not in the ticket service's allow-list")
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	if preflight {
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	return true
}

// authenticate finds the API key of r, in constant time per configured key.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (*apiKey, bool) {
	raw, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pgwarden"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "missing API key: send Authorization: Bearer <api key>")
		return nil, false
	}
	sum := sha256.Sum256([]byte(raw))
	var found *apiKey
	for i := range h.keys {
		if subtle.ConstantTimeCompare(sum[:], h.keys[i].hash) == 1 {
			found = &h.keys[i]
		}
	}
	if found == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pgwarden", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "invalid API key")
		return nil, false
	}
	return found, true
}

func bearer(r *http.Request) (string, bool) {
	a := r.Header.Get("Authorization")
	if len(a) < 7 || !strings.EqualFold(a[:7], "bearer ") {
		return "", false
	}
	tok := strings.TrimSpace(a[7:])
	return tok, tok != ""
}

func (h *Handler) mintTicket(w http.ResponseWriter, r *http.Request) {
	key, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	if key.bucket != nil {
		if ok, retry := key.bucket.take(h.cfg.Now()); !ok {
			h.m.rateLimited.WithLabelValues(key.name).Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
			writeError(w, http.StatusTooManyRequests, "rate_limited", "too many ticket requests for this API key")
			return
		}
	}
	var req TicketRequest
	if !h.decode(w, r, &req, false) {
		return
	}
	req.APIKeyName = key.name
	tok, exp, err := h.svc.MintTicket(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.m.minted.WithLabelValues(key.name).Inc()
	writeJSON(w, http.StatusCreated, map[string]any{"ticket": tok, "expires_at": exp.UTC().Format(time.RFC3339)})
}

type exchangeRequest struct {
	Ticket string `json:"ticket"`
}

type sessionResponse struct {
	SessionToken string `json:"session_token"`
	SessionID    string `json:"session_id"`
	ExpiresAt    string `json:"expires_at"`
	Host         string `json:"host"`
	Port         int    `json:"port"`
	Database     string `json:"database"`
	// Internal sessions (sign-on) also say who and which role.
	Subject string   `json:"subject,omitempty"`
	Email   string   `json:"email,omitempty"`
	Role    UserRole `json:"role,omitempty"`
}

func (h *Handler) sessionResponse(s *Session, tok string) sessionResponse {
	return sessionResponse{
		SessionToken: tok, SessionID: s.ID, ExpiresAt: s.ExpiresAt.UTC().Format(time.RFC3339),
		Host: h.cfg.ConnectHost, Port: h.cfg.ConnectPort, Database: h.connectDatabase(s),
		Subject: s.Subject, Role: s.Role,
	}
}

// connectDatabase is the database name a session's client should connect
// with: auth.connect.database, or else the first warehouse (by name) that
// the session's connection roles open.
func (h *Handler) connectDatabase(s *Session) string {
	if h.cfg.ConnectDatabase != "" {
		return h.cfg.ConnectDatabase
	}
	names := slices.Clone(h.cfg.Warehouses)
	slices.Sort(names)
	for _, name := range names {
		if r := s.Identity(name).Role; r.Valid() && r != policy.RoleNoAccess {
			return name
		}
	}
	return ""
}

func (h *Handler) exchange(w http.ResponseWriter, r *http.Request) {
	var req exchangeRequest
	if !h.decode(w, r, &req, false) {
		return
	}
	if req.Ticket == "" {
		writeFieldError(w, &FieldError{Field: "ticket", Message: "required"})
		return
	}
	s, tok, err := h.svc.ExchangeTicketFrom(r.Context(), req.Ticket, remoteAddr(r))
	h.m.exchanges.WithLabelValues(exchangeResult(err)).Inc()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, h.sessionResponse(s, tok))
}

func exchangeResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrTicketUsed):
		return "already_used"
	case errors.Is(err, ErrTicketExpired):
		return "expired"
	case errors.Is(err, ErrInvalidTicket):
		return "invalid"
	}
	return "error"
}

type renewRequest struct {
	SessionToken string `json:"session_token"`
}

func (h *Handler) renew(w http.ResponseWriter, r *http.Request) {
	var req renewRequest
	if !h.decode(w, r, &req, true) {
		return
	}
	tok, ok := bearer(r)
	switch {
	case ok && req.SessionToken != "" && req.SessionToken != tok:
		writeFieldError(w, &FieldError{Field: "session_token", Message: "differs from the Authorization header"})
		return
	case !ok:
		tok = req.SessionToken
	}
	if tok == "" {
		writeFieldError(w, &FieldError{Field: "session_token", Message: "required (or send Authorization: Bearer <session token>)"})
		return
	}
	s, nt, err := h.svc.RenewSession(r.Context(), tok)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h.sessionResponse(s, nt))
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	key, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	sid := r.PathValue("id")
	if err := h.svc.RevokeSession(r.Context(), sid, key.name); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"session_id": sid, "revoked": true})
}

// content lists the statements learned on a warehouse (?warehouse=NAME,
// or every warehouse) from sessions minted through the caller's API key,
// for review before `pgwarden content write` puts them into the policy.
func (h *Handler) content(w http.ResponseWriter, r *http.Request) {
	key, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	wh := r.URL.Query().Get("warehouse")
	if len(wh) > maxStringLen {
		writeFieldError(w, &FieldError{Field: "warehouse", Message: "too long"})
		return
	}
	list, err := h.svc.LearnedStatements(r.Context(), wh, key.name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if list == nil {
		list = []LearnedStatement{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"statements": list})
}

func (h *Handler) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, h.svc.keys.JWKS())
}

func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	if h.draining.Load() {
		h.unavailable(w, "draining", "shutting down")
		return
	}
	if err := h.svc.store.Ping(r.Context()); err != nil {
		h.log.Warn("store not reachable", zap.Error(err))
		h.unavailable(w, "unavailable", "session store not reachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) metrics(w http.ResponseWriter, r *http.Request) {
	if h.gatherer == nil {
		writeError(w, http.StatusNotFound, "not_found", "metrics are served elsewhere")
		return
	}
	promhttp.HandlerFor(h.gatherer, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// decode reads one JSON object of at most MaxBodyBytes into dst, refusing
// unknown fields and trailing data. optional allows an empty body.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, dst any, optional bool) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeFieldError(w, &FieldError{Field: "body", Message: fmt.Sprintf("larger than %d bytes", h.cfg.MaxBodyBytes)})
			return false
		}
		writeFieldError(w, &FieldError{Field: "body", Message: "cannot read request body"})
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return true
		}
		writeFieldError(w, &FieldError{Field: "body", Message: "empty: send a JSON object"})
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		writeFieldError(w, jsonFieldError(err))
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeFieldError(w, &FieldError{Field: "body", Message: "trailing data after the JSON object"})
		return false
	}
	return true
}

func jsonFieldError(err error) *FieldError {
	var (
		te *json.UnmarshalTypeError
		se *json.SyntaxError
		de *durationError
	)
	switch {
	case errors.As(err, &te) && te.Field != "":
		return &FieldError{Field: te.Field, Message: "must be " + jsonType(te.Type.Kind().String())}
	case errors.As(err, &te):
		return &FieldError{Field: "body", Message: "must be a JSON object"}
	case errors.As(err, &de):
		return &FieldError{Field: "ttl", Message: de.msg}
	case errors.As(err, &se):
		return &FieldError{Field: "body", Message: fmt.Sprintf("malformed JSON at offset %d", se.Offset)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return &FieldError{Field: truncate(name, 64), Message: "unknown field"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FieldError{Field: "body", Message: "truncated JSON"}
	}
	return &FieldError{Field: "body", Message: "malformed JSON"}
}

func jsonType(kind string) string {
	switch kind {
	case "slice":
		return "a list"
	case "map", "struct":
		return "an object"
	case "string":
		return "a string"
	}
	return "a " + kind
}

// fail maps a service error to its HTTP status and code. Anything unexpected
// is logged with a correlation id and never shown.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		writeFieldError(w, fe)
	case errors.Is(err, ErrInvalidTicket):
		writeError(w, http.StatusUnauthorized, "invalid_ticket", "not a valid pgwarden ticket")
	case errors.Is(err, ErrTicketExpired):
		writeError(w, http.StatusUnauthorized, "ticket_expired", "ticket expired: mint a new ticket")
	case errors.Is(err, ErrPinNeedsAddress):
		writeError(w, http.StatusBadRequest, "invalid_request", "the ticket pins its session to the client address, which is not known")
	case errors.Is(err, ErrTicketUsed):
		writeError(w, http.StatusConflict, "ticket_already_used", "ticket already used: mint a new ticket")
	case errors.Is(err, ErrInvalidSession):
		writeError(w, http.StatusUnauthorized, "invalid_session", "not a valid pgwarden session token")
	case errors.Is(err, ErrSessionExpired):
		writeError(w, http.StatusUnauthorized, "session_expired", "session expired: mint a new ticket")
	case errors.Is(err, ErrSessionRevoked):
		writeError(w, http.StatusUnauthorized, "session_revoked", "session revoked")
	case errors.Is(err, ErrSessionNotFound):
		writeError(w, http.StatusNotFound, "session_not_found", "no such session")
	case errors.Is(err, ErrStoreUnavailable), errors.Is(err, context.DeadlineExceeded):
		// The request was fine and may succeed later: 503 with Retry-After
		// tells clients and load balancers to retry, where 500 says it broke.
		h.log.Warn("store unavailable", zap.String("path", r.URL.Path), zap.Error(err))
		h.unavailable(w, "store_unavailable", msgStoreUnavailable)
	default:
		id, _ := randomID(6)
		h.log.Error("request failed", zap.String("correlation_id", id), zap.String("path", r.URL.Path), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "internal_error", "internal error (correlation id "+id+")")
	}
}

// unavailable answers 503 with the configured Retry-After.
func (h *Handler) unavailable(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(h.cfg.RetryAfter.Seconds()))))
	writeError(w, http.StatusServiceUnavailable, code, msg)
}

// Drain makes /readyz fail from now on while everything else, /healthz
// included, keeps answering: load balancers stop sending traffic to a
// replica that is shutting down, and liveness probes do not kill it.
func (h *Handler) Drain() { h.draining.Store(true) }

func writeFieldError(w http.ResponseWriter, fe *FieldError) {
	writeJSON(w, http.StatusBadRequest, map[string]string{
		"error": "invalid_request", "message": fe.Error(), "field": fe.Field,
	})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// msgStoreUnavailable answers a request the store could not serve (503).
const msgStoreUnavailable = "session store unavailable: retry later"

// RemoteAddr is the HTTP peer's address (invalid when it does not parse):
// the address the ticket exchange pins and the audit log records.
func RemoteAddr(r *http.Request) netip.Addr { return remoteAddr(r) }

// remoteAddr is the HTTP peer's address (invalid when it does not parse).
// It is the direct peer: behind a reverse proxy that is the proxy, so a
// ticket that pins its session should be exchanged directly.
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Mount serves hd at pattern on the ticket service's listener, with its
// metrics and request deadline: sign-on (auth/oidc) and the admin API
// (admin) are packages of their own that share this listener.
func (h *Handler) Mount(pattern, name string, hd http.Handler) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		h.instrument(name, w, r, hd.ServeHTTP)
	})
}

// Fail answers err as the ticket service's own endpoints do: service
// errors by their code, anything else 500 with a correlation id.
func (h *Handler) Fail(w http.ResponseWriter, r *http.Request, err error) { h.fail(w, r, err) }

// WriteError writes {"error": code, "message": msg} with status.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	writeError(w, status, code, msg)
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

// Bearer returns the bearer credential of r.
func Bearer(r *http.Request) (string, bool) { return bearer(r) }

// SessionResponse is the answer of an endpoint that opens a session.
func (h *Handler) SessionResponse(s *Session, tok string) any { return h.sessionResponse(s, tok) }

// Decode reads r's JSON body into dst, answering 400 itself when it cannot.
func (h *Handler) Decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	return h.decode(w, r, dst, false)
}
