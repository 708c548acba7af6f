// The flow, the HTTP API and the token format of package auth.
//
// Flow: a host application's backend calls POST /v1/tickets with its API key
// and gets a single-use web-ticket (60s by default). The browser exchanges it
// at POST /v1/sessions for a session token (1h) and the proxy's address. A
// BI tool connects to the proxy with the session token (or a fresh ticket)
// as its PostgreSQL password; the proxy calls Verifier.Authenticate.
//
// README.md ("Ticket service HTTP API") documents the same for users; keep
// the two in step. Every error answer is {"error": code, "message": text}
// (400s also carry "field"):
//
//	POST /v1/tickets              Authorization: Bearer <api key>
//	  body: external_id*, tenant*, email, groups, attributes {name: [values]},
//	        connection_roles {warehouse: no_access|viewer|restricted_querier|querier}
//	        (required, opening at least one warehouse, while Config.BaseRole is no_access),
//	        ttl (seconds, e.g. 30, or a Go duration string, e.g. "30s"; may
//	        only shorten Config.TicketTTL)
//	  201 {"ticket", "expires_at"}; 400 invalid_request; 401 unauthorized;
//	  429 rate_limited (Retry-After)
//	POST /v1/sessions             {"ticket"}; CORS for Config.CORSOrigins
//	  201 {"session_token", "session_id", "expires_at", "host", "port", "database"}
//	  401 invalid_ticket | ticket_expired; 409 ticket_already_used;
//	  403 origin_not_allowed
//	POST /v1/sessions/renew       Authorization: Bearer <session token> or {"session_token"}
//	  200 as above with a later expires_at (never past the absolute lifetime);
//	  401 invalid_session | session_expired | session_revoked
//	POST /v1/sessions/{id}/revoke Authorization: Bearer <api key>
//	  200 {"session_id", "revoked": true}; 404 session_not_found (also for a
//	  session minted through another API key)
//	GET|POST /v1/sessions/oidc    sign-on: a provider's ID token for an internal
//	                              session (package auth/oidc, mounted with Handler.Mount)
//	/v1/admin/...                 the admin API (package admin, mounted with Handler.Mount)
//	GET  /.well-known/jwks.json   the verification keys (OKP Ed25519, kid = RFC 7638 thumbprint)
//	GET  /healthz (200 while the process runs, through the shutdown drain),
//	     /readyz (store reachable; 503 from shutdown on), /metrics (Prometheus)
//
// /v1/sessions, /renew and /revoke need the store: when it cannot be reached
// or does not answer within Config.StoreQueryTimeout they answer
// 503 store_unavailable with Retry-After (Config.RetryAfter), and nothing
// half-happens. Every request has a deadline (Config.HTTPRequestTimeout);
// anything else unexpected is 500 internal_error with a correlation id.
//
// Tokens are EdDSA JWTs with kid, iss, aud (pgwarden-ticket or
// pgwarden-session, never both), jti, iat, nbf, exp, and the claims tenant,
// external_id, email, groups, attrs, roles, base_role, kind, akn (API key
// name); sessions add sid and max (absolute expiry). Internal sessions
// (kind internal, from sign-on) carry sub (= external_id) and urole and no
// tenant; an embed session opened by an internal user acting as a test
// tenant carries act {sub, email, role}. Claims are fixed at
// minting: renewal changes jti, iat, nbf and exp only.

package auth
