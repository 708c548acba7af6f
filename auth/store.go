package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrStoreUnavailable marks a store call that failed because the store did
// not answer in time or could not be reached, as opposed to one it answered
// with an error. Callers tell clients to retry (HTTP 503, SQLSTATE 57P03).
var ErrStoreUnavailable = errors.New("control store unavailable")

// Store is the shared state of every service replica and proxy: redeemed
// tickets (single use) and sessions (revocation). It lives in one schema of a
// PostgreSQL database.
type Store struct {
	pool    *pgxpool.Pool
	schema  string // sanitized identifier
	channel string // LISTEN/NOTIFY channel for revocations
	// fleetChannel carries requests to every replica (fleet.go).
	fleetChannel string
	timeout      time.Duration
	q            storeQueries
	rev          *revChecker
}

type storeQueries struct {
	redeem, createSession, revoke, isRevoked, extend, expiry, revoked, purgeTickets, purgeSessions string
	revokeSubject, live, sessionRole                                                               string
}

// SessionRecord is a session's row in the store.
type SessionRecord struct {
	ID         string
	Tenant     string
	ExternalID string
	APIKey     string
	Created    time.Time
	Expires    time.Time
	MaxExpires time.Time
	// Kind is embed or internal ("" is embed). Subject and Role are the
	// internal user's (for an embed session acting as a test tenant, the
	// actor's), so that revoking a subject ends both kinds.
	Kind    string
	Subject string
	Role    string
	Email   string
}

// RevokedSession is a revoked session that can still carry a valid token.
type RevokedSession struct {
	ID         string
	MaxExpires time.Time
}

// Open connects to the store of cfg (StoreDSN, Schema and the store
// timeouts; zero fields take their defaults). It does not create anything:
// call Migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	schema := cfg.Schema
	if !schemaRE.MatchString(schema) {
		return nil, fmt.Errorf("auth store: schema %q is not a plain lowercase identifier", schema)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.StoreDSN)
	if err != nil {
		// The DSN may hold a password: do not wrap the parser's error.
		return nil, errors.New("auth store: cannot parse store_dsn")
	}
	// A DSN's own connect_timeout wins; otherwise a frozen store host must
	// not hold a connect (TCP accepts, startup never answers) forever.
	if pcfg.ConnConfig.ConnectTimeout == 0 || pcfg.ConnConfig.ConnectTimeout > cfg.StoreConnectTimeout {
		pcfg.ConnConfig.ConnectTimeout = cfg.StoreConnectTimeout
	}
	if !strings.Contains(cfg.StoreDSN, "pool_max_conns") {
		pcfg.MaxConns = int32(cfg.StoreMaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("auth store: %w", err)
	}
	s := &Store{pool: pool, schema: pgx.Identifier{schema}.Sanitize(), channel: schema + "_revocations", fleetChannel: schema + "_fleet", timeout: cfg.StoreQueryTimeout}
	t := s.schema
	s.q = storeQueries{
		redeem:        `INSERT INTO ` + t + `.redeemed_tickets (jti, expires_at, redeemed_at, session_id) VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING`,
		createSession: `INSERT INTO ` + t + `.sessions (sid, tenant, external_id, api_key, created_at, expires_at, max_expires_at, kind, subject, role, email) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		revoke:        `UPDATE ` + t + `.sessions SET revoked_at = coalesce(revoked_at, $2) WHERE sid = $1 AND ($3 = '' OR api_key = $3) RETURNING sid, tenant, external_id, kind, subject, role`,
		isRevoked:     `SELECT sid, revoked_at IS NOT NULL FROM ` + t + `.sessions WHERE sid = ANY($1)`,
		extend:        `UPDATE ` + t + `.sessions SET expires_at = greatest(expires_at, $2) WHERE sid = $1 RETURNING revoked_at IS NOT NULL`,
		expiry:        `SELECT expires_at, revoked_at IS NOT NULL FROM ` + t + `.sessions WHERE sid = $1`,
		revoked:       `SELECT sid, max_expires_at FROM ` + t + `.sessions WHERE revoked_at IS NOT NULL AND max_expires_at > $1`,
		purgeTickets:  `DELETE FROM ` + t + `.redeemed_tickets WHERE expires_at < $1`,
		purgeSessions: `DELETE FROM ` + t + `.sessions WHERE max_expires_at < $1`,
		revokeSubject: `UPDATE ` + t + `.sessions SET revoked_at = coalesce(revoked_at, $2) WHERE subject = $1 AND max_expires_at > $2 RETURNING sid`,
		live: `SELECT sid, tenant, external_id, api_key, created_at, expires_at, max_expires_at, kind, subject, role, email FROM ` + t +
			`.sessions WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY created_at, sid`,
		sessionRole: `SELECT subject, role FROM ` + t + `.sessions WHERE sid = $1`,
	}
	s.rev = newRevChecker(pool, s.q.isRevoked, s.timeout, s.fail)
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping reports whether the store answers within the query timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.fail("ping", s.pool.Ping(ctx))
}

// bound gives one store call (a query or a whole transaction) the store's
// query timeout, or the caller's deadline when that comes first.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// fail wraps err from store operation op; nil stays nil. A store that did
// not answer in time, could not be reached or is shutting down is
// ErrStoreUnavailable (with the cause wrapped for the log); an error the
// store answered with is a plain wrapped error.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("auth store: %s: %w: %w", op, ErrStoreUnavailable, err)
	}
	return fmt.Errorf("auth store: %s: %w", op, err)
}

func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 08: connection exceptions; 53: out of connections or memory;
		// 57P0x: shutting down, crashed, starting up. The store is there
		// but cannot serve now; anything else is a real error.
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "53") || strings.HasPrefix(pe.Code, "57P0")
	}
	// Everything else is the connection failing: refused, reset, timed out
	// (pgconn.Timeout), the deadline of bound.
	return true
}

// Channel is the LISTEN/NOTIFY channel on which revoked session ids arrive.
func (s *Store) Channel() string { return s.channel }

// migrations are applied in order; schema_version holds how many ran.
var migrations = []string{
	`CREATE TABLE {s}.redeemed_tickets (
		jti         text PRIMARY KEY,
		expires_at  timestamptz NOT NULL,
		redeemed_at timestamptz NOT NULL,
		session_id  text
	);
	CREATE INDEX ON {s}.redeemed_tickets (expires_at);
	CREATE TABLE {s}.sessions (
		sid            text PRIMARY KEY,
		tenant         text NOT NULL,
		external_id    text NOT NULL,
		api_key        text NOT NULL DEFAULT '',
		created_at     timestamptz NOT NULL,
		expires_at     timestamptz NOT NULL,
		max_expires_at timestamptz NOT NULL,
		revoked_at     timestamptz
	);
	CREATE INDEX ON {s}.sessions (max_expires_at);
	CREATE INDEX ON {s}.sessions (revoked_at) WHERE revoked_at IS NOT NULL;`,
	// Statements that viewer sessions of a learning warehouse or tenant ran
	// unlisted (content.go): one row per warehouse and fingerprint.
	`CREATE TABLE {s}.learned_statements (
		warehouse   text NOT NULL,
		fingerprint text NOT NULL,
		normalized  text NOT NULL,
		example     text NOT NULL,
		tenant      text NOT NULL,
		api_key     text NOT NULL DEFAULT '',
		first_seen  timestamptz NOT NULL,
		last_seen   timestamptz NOT NULL,
		sightings   bigint NOT NULL DEFAULT 1,
		PRIMARY KEY (warehouse, fingerprint)
	);`,
	// Internal users (sign-on): who a session is, to revoke by subject and
	// to list sessions; admin API keys, created and rotated at run time.
	`ALTER TABLE {s}.sessions
		ADD COLUMN kind    text NOT NULL DEFAULT 'embed',
		ADD COLUMN subject text NOT NULL DEFAULT '',
		ADD COLUMN role    text NOT NULL DEFAULT '',
		ADD COLUMN email   text NOT NULL DEFAULT '';
	CREATE INDEX ON {s}.sessions (subject) WHERE subject <> '';
	CREATE TABLE {s}.revoked_subjects (
		subject    text PRIMARY KEY,
		revoked_at timestamptz NOT NULL
	);
	CREATE TABLE {s}.admin_keys (
		name       text PRIMARY KEY,
		sha256     text NOT NULL UNIQUE,
		role       text NOT NULL,
		created_by text NOT NULL,
		created_at timestamptz NOT NULL,
		revoked_at timestamptz
	);`,
	// The fleet (fleet.go): live replicas and their answers to requests.
	`CREATE TABLE {s}.replicas (
		id           text PRIMARY KEY,
		name         text NOT NULL,
		started_at   timestamptz NOT NULL,
		heartbeat_at timestamptz NOT NULL
	);
	CREATE TABLE {s}.fleet_answers (
		request_id  text NOT NULL,
		replica     text NOT NULL,
		body        text NOT NULL,
		error       text NOT NULL,
		answered_at timestamptz NOT NULL,
		PRIMARY KEY (request_id, replica)
	);
	CREATE INDEX ON {s}.fleet_answers (answered_at);`,
	// The audit trail's copy (auditstore.go): the file stays the primary
	// record; gaps are what a process dropped.
	`CREATE TABLE {s}.audit_events (
		id          bigserial PRIMARY KEY,
		time        timestamptz NOT NULL,
		event       text NOT NULL,
		session     text NOT NULL,
		kind        text NOT NULL,
		tenant      text NOT NULL,
		external_id text NOT NULL,
		subject     text NOT NULL,
		outcome     text NOT NULL,
		sqlstate    text NOT NULL,
		warehouse   text NOT NULL,
		record      jsonb NOT NULL
	);
	CREATE INDEX ON {s}.audit_events (time);
	CREATE INDEX ON {s}.audit_events (tenant, id);
	CREATE INDEX ON {s}.audit_events (session) WHERE session <> '';
	CREATE TABLE {s}.audit_gaps (
		id       bigserial PRIMARY KEY,
		first_at timestamptz NOT NULL,
		last_at  timestamptz NOT NULL,
		dropped  bigint NOT NULL
	);`,
}

// Migrate creates or upgrades the control schema. It is idempotent and safe
// when several replicas start at once: the whole migration runs under a
// transaction-scoped advisory lock.
func (s *Store) Migrate(ctx context.Context) error {
	// Migrate runs once at start, under the caller's deadline: a migration
	// may legitimately take longer than one store call.
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("auth store: migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('pgwarden.auth.migrate.' || $1))`, s.schema); err != nil {
		return fmt.Errorf("auth store: migrate lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+s.schema+`;
		CREATE TABLE IF NOT EXISTS `+s.schema+`.schema_version (version int NOT NULL)`); err != nil {
		return fmt.Errorf("auth store: migrate: %w", err)
	}
	var version int
	err = tx.QueryRow(ctx, `SELECT version FROM `+s.schema+`.schema_version`).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.schema+`.schema_version VALUES (0)`); err != nil {
			return fmt.Errorf("auth store: migrate: %w", err)
		}
	case err != nil:
		return fmt.Errorf("auth store: migrate: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("auth store: schema version %d is newer than this binary (%d)", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, strings.ReplaceAll(migrations[i], "{s}", s.schema)); err != nil {
			return fmt.Errorf("auth store: migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE `+s.schema+`.schema_version SET version = $1`, len(migrations)); err != nil {
		return fmt.Errorf("auth store: migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("auth store: migrate: %w", err)
	}
	return nil
}

// RedeemTicket marks the ticket jti used. Exactly one caller across every
// replica gets nil; the others get ErrTicketUsed.
func (s *Store) RedeemTicket(ctx context.Context, jti string, expires, now time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.q.redeem, jti, expires, now, nil)
	if err != nil {
		return s.fail("redeem", err)
	}
	if tag.RowsAffected() != 1 {
		return ErrTicketUsed
	}
	return nil
}

// CreateSession records a new session.
func (s *Store) CreateSession(ctx context.Context, r SessionRecord) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, s.q.createSession, r.args()...)
	return s.fail("create session", err)
}

// RedeemAndCreate redeems the ticket and records the session it becomes in
// one transaction: either both happen or neither. A concurrent redemption of
// the same jti waits on the primary key and then finds it taken.
func (s *Store) RedeemAndCreate(ctx context.Context, jti string, ticketExpires time.Time, r SessionRecord) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.fail("redeem", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, s.q.redeem, jti, ticketExpires, r.Created, r.ID)
	if err != nil {
		return s.fail("redeem", err)
	}
	if tag.RowsAffected() != 1 {
		return ErrTicketUsed
	}
	if _, err := tx.Exec(ctx, s.q.createSession, r.args()...); err != nil {
		return s.fail("create session", err)
	}
	return s.fail("redeem", tx.Commit(ctx))
}

// Revoke ends session sid and notifies every listener (at commit). Revoking
// twice is not an error; an unknown sid is ErrSessionNotFound. A non-empty
// apiKey restricts it to sessions minted through that API key (others are
// not found, so one host application cannot probe another's sessions).
func (s *Store) Revoke(ctx context.Context, sid, apiKey string, now time.Time) error {
	_, err := s.RevokeRecord(ctx, sid, apiKey, now)
	return err
}

// RevokeRecord is Revoke that returns who the session was (ID, Tenant,
// ExternalID, Kind, Subject, Role), for the audit trail.
func (s *Store) RevokeRecord(ctx context.Context, sid, apiKey string, now time.Time) (*SessionRecord, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.fail("revoke", err)
	}
	defer tx.Rollback(ctx)
	var r SessionRecord
	if err := tx.QueryRow(ctx, s.q.revoke, sid, now, apiKey).Scan(&r.ID, &r.Tenant, &r.ExternalID, &r.Kind, &r.Subject, &r.Role); errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrSessionNotFound
	} else if err != nil {
		return nil, s.fail("revoke", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, sid); err != nil {
		return nil, s.fail("revoke notify", err)
	}
	return &r, s.fail("revoke", tx.Commit(ctx))
}

// IsRevoked reports whether session sid is revoked; an unknown sid is
// ErrSessionNotFound. Concurrent checks share batched queries (revcheck.go);
// each still sees every revocation committed before it was called.
func (s *Store) IsRevoked(ctx context.Context, sid string) (bool, error) {
	return s.rev.check(ctx, sid)
}

// ExtendSession records a renewal; a revoked session is ErrSessionRevoked
// (checked in the same statement, so a renewal cannot race a revocation into
// a fresh token after the revocation committed).
func (s *Store) ExtendSession(ctx context.Context, sid string, expires time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var revoked bool
	err := s.pool.QueryRow(ctx, s.q.extend, sid, expires).Scan(&revoked)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrSessionNotFound
	case err != nil:
		return s.fail("extend", err)
	case revoked:
		return ErrSessionRevoked
	}
	return nil
}

// SessionExpiry returns session sid's expiry now, later than its token's if
// it was renewed since. Errors: ErrSessionNotFound, ErrSessionRevoked, or a
// store error.
func (s *Store) SessionExpiry(ctx context.Context, sid string) (time.Time, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var (
		exp     time.Time
		revoked bool
	)
	err := s.pool.QueryRow(ctx, s.q.expiry, sid).Scan(&exp, &revoked)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, ErrSessionNotFound
	case err != nil:
		return time.Time{}, s.fail("session expiry", err)
	case revoked:
		return time.Time{}, ErrSessionRevoked
	}
	return exp, nil
}

// RevokedSessions lists revoked sessions whose absolute expiry is after t.
func (s *Store) RevokedSessions(ctx context.Context, after time.Time) ([]RevokedSession, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, s.q.revoked, after)
	if err != nil {
		return nil, s.fail("revoked sessions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RevokedSession, error) {
		var x RevokedSession
		err := r.Scan(&x.ID, &x.MaxExpires)
		return x, err
	})
	if err != nil {
		return nil, s.fail("revoked sessions", err)
	}
	return out, nil
}

// Purge deletes redeemed tickets and sessions that expired before t. Callers
// pass now minus the leeway, so that no row goes while a token that it
// guards can still verify.
func (s *Store) Purge(ctx context.Context, before time.Time) (tickets, sessions int64, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.q.purgeTickets, before)
	if err != nil {
		return 0, 0, s.fail("purge", err)
	}
	tickets = tag.RowsAffected()
	tag, err = s.pool.Exec(ctx, s.q.purgeSessions, before)
	if err != nil {
		return tickets, 0, s.fail("purge", err)
	}
	return tickets, tag.RowsAffected(), nil
}

// connConfig returns a copy of the pool's connection config (connect
// timeout included), for the dedicated LISTEN connection.
func (s *Store) connConfig() *pgx.ConnConfig { return s.pool.Config().ConnConfig.Copy() }

func (r *SessionRecord) args() []any {
	kind := r.Kind
	if kind == "" {
		kind = "embed"
	}
	return []any{r.ID, r.Tenant, r.ExternalID, r.APIKey, r.Created, r.Expires, r.MaxExpires, kind, r.Subject, r.Role, r.Email}
}

// RevokeSubject ends every live session of subject (internal ones and the
// test-tenant sessions it opened) and notifies every listener of each, in
// one transaction. It returns the sessions revoked (none is not an error).
func (s *Store) RevokeSubject(ctx context.Context, subject string, now time.Time) ([]string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.fail("revoke subject", err)
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, s.q.revokeSubject, subject, now)
	if err != nil {
		return nil, s.fail("revoke subject", err)
	}
	sids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail("revoke subject", err)
	}
	// Provider tokens issued before now can no longer open sessions for
	// the subject (see SubjectRevokedAt).
	if _, err := tx.Exec(ctx, `INSERT INTO `+s.schema+`.revoked_subjects (subject, revoked_at) VALUES ($1, $2)
		ON CONFLICT (subject) DO UPDATE SET revoked_at = greatest(`+s.schema+`.revoked_subjects.revoked_at, excluded.revoked_at)`, subject, now); err != nil {
		return nil, s.fail("revoke subject", err)
	}
	// The same notification path as a single revocation: every verifier
	// marks each session revoked and closes its connections.
	for _, sid := range sids {
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, sid); err != nil {
			return nil, s.fail("revoke notify", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, s.fail("revoke subject", err)
	}
	return sids, nil
}

// LiveSessions lists the sessions neither revoked nor expired at now.
func (s *Store) LiveSessions(ctx context.Context, now time.Time) ([]SessionRecord, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, s.q.live, now)
	if err != nil {
		return nil, s.fail("live sessions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SessionRecord, error) {
		var x SessionRecord
		err := r.Scan(&x.ID, &x.Tenant, &x.ExternalID, &x.APIKey, &x.Created, &x.Expires, &x.MaxExpires, &x.Kind, &x.Subject, &x.Role, &x.Email)
		return x, err
	})
	if err != nil {
		return nil, s.fail("live sessions", err)
	}
	return out, nil
}

// SessionOwner returns the subject and role recorded for session sid
// (empty for an embed session of a host application).
func (s *Store) SessionOwner(ctx context.Context, sid string) (subject string, role UserRole, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var r string
	err = s.pool.QueryRow(ctx, s.q.sessionRole, sid).Scan(&subject, &r)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", ErrSessionNotFound
	}
	if err != nil {
		return "", "", s.fail("session owner", err)
	}
	return subject, UserRole(r), nil
}

// SubjectRevokedAt returns when subject was last revoked (zero if never):
// a provider token issued before then opens no session, so a deprovisioned
// user cannot sign back in with a token they already hold.
func (s *Store) SubjectRevokedAt(ctx context.Context, subject string) (time.Time, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var t time.Time
	err := s.pool.QueryRow(ctx, `SELECT revoked_at FROM `+s.schema+`.revoked_subjects WHERE subject = $1`, subject).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, s.fail("subject revoked at", err)
	}
	return t, nil
}

// RevokeFilter selects sessions to revoke: a tenant's, or an external id's
// (within Tenant when set). At least one of them is required.
type RevokeFilter struct {
	Tenant     string
	ExternalID string
	// SpareOwners leaves an Owner's sessions alone: those whose role or
	// subject is an Owner's (Owners are subjects that are Owners by
	// configuration). An Administrator may not revoke them.
	SpareOwners bool
	Owners      []string
}

// RevokeSessions ends every live session f selects and notifies every
// listener of each, in one transaction, as Revoke does for one. It returns
// the sessions revoked and how many it spared as Owners'.
func (s *Store) RevokeSessions(ctx context.Context, f RevokeFilter, now time.Time) ([]string, int, error) {
	if f.Tenant == "" && f.ExternalID == "" {
		return nil, 0, errors.New("auth store: revoke sessions: name a tenant or an external id")
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, 0, s.fail("revoke sessions", err)
	}
	defer tx.Rollback(ctx)
	owners := f.Owners
	if owners == nil {
		owners = []string{}
	}
	const match = ` revoked_at IS NULL AND max_expires_at > $1 AND ($2 = '' OR tenant = $2) AND ($3 = '' OR external_id = $3)`
	const owner = `(role = 'owner' OR (subject <> '' AND subject = ANY($4)))`
	var spared int
	if f.SpareOwners {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+s.schema+`.sessions WHERE`+match+` AND `+owner, now, f.Tenant, f.ExternalID, owners).Scan(&spared); err != nil {
			return nil, 0, s.fail("revoke sessions", err)
		}
	}
	rows, err := tx.Query(ctx, `UPDATE `+s.schema+`.sessions SET revoked_at = $1 WHERE`+match+` AND NOT ($5 AND `+owner+`) RETURNING sid`,
		now, f.Tenant, f.ExternalID, owners, f.SpareOwners)
	if err != nil {
		return nil, 0, s.fail("revoke sessions", err)
	}
	sids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, 0, s.fail("revoke sessions", err)
	}
	for _, sid := range sids {
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, sid); err != nil {
			return nil, 0, s.fail("revoke notify", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, 0, s.fail("revoke sessions", err)
	}
	return sids, spared, nil
}
