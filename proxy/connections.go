package proxy

import (
	"context"
	"errors"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/pgwarden/pgwarden/auth"
)

// Live client connections, for the admin API. Nothing here runs per
// statement: a snapshot reads what the connection keeps anyway (its startup
// identity, its pending queue, its transaction status, whether it waits for
// a pooled connection) under the locks that already guard them.

// Connection states, as pg_stat_activity names them where it has a name.
const (
	StateIdle          = "idle"
	StateActive        = "active"
	StateIdleInTx      = "idle in transaction"
	StateWaitingForCon = "waiting for a connection"
)

// maxStatementShown caps the statement text of a snapshot.
const maxStatementShown = 1024

// ConnInfo is a snapshot of one client connection past its startup.
type ConnInfo struct {
	// ID is the connection's number in this server (not reused while it
	// runs); CancelConnection takes it.
	ID              uint64    `json:"id"`
	Session         string    `json:"session"`
	Kind            string    `json:"kind"`
	Tenant          string    `json:"tenant"`
	ExternalID      string    `json:"external_id"`
	Subject         string    `json:"subject"`
	Role            string    `json:"role"`
	ActorSubject    string    `json:"actor_subject,omitempty"`
	ActorRole       string    `json:"actor_role,omitempty"`
	ClientAddr      string    `json:"client_addr"`
	ApplicationName string    `json:"application_name"`
	Warehouse       string    `json:"warehouse"`
	ConnectedAt     time.Time `json:"connected_at"`
	State           string    `json:"state"`
	// Statement is the client's statement in flight (its original text,
	// cut at 1 KiB), "" when none; StatementStartedAt is when it arrived.
	Statement          string     `json:"statement"`
	StatementStartedAt *time.Time `json:"statement_started_at"`
}

// Connections returns every client connection past its startup and not
// revoked, by id.
func (s *Server) Connections() []ConnInfo {
	s.mu.Lock()
	conns := make([]*clientConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		if ci, ok := c.snapshot(); ok {
			out = append(out, ci)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// snapshot describes c; ok is false while c is still in its startup and
// once its session is revoked: it is being cut, and its client may have its
// FATAL before the loop has let go of it.
func (c *clientConn) snapshot() (ConnInfo, bool) {
	// started publishes the startup fields (read-only from then on).
	if !c.started.Load() || c.revoked.Load() {
		return ConnInfo{}, false
	}
	s := c.session
	ci := ConnInfo{ID: c.connID, Session: s.ID, Kind: string(s.Kind), Tenant: s.Tenant, ExternalID: s.ExternalID,
		Subject: s.Subject, Role: string(s.Role), ClientAddr: c.raw.RemoteAddr().String(), ApplicationName: c.appName,
		Warehouse: c.wh.Name, ConnectedAt: c.connectedAt.UTC()}
	if a := s.Actor; a != nil {
		ci.ActorSubject, ci.ActorRole = a.Subject, string(a.Role)
	}
	c.cmu.Lock()
	waiting := c.acquiring
	c.cmu.Unlock()
	c.q.mu.Lock()
	busy := c.q.head < len(c.q.items)
	for _, p := range c.q.items[c.q.head:] {
		if !p.internal && p.info != nil {
			ci.Statement = truncateUTF8(p.info.original, maxStatementShown)
			t := p.start.UTC()
			ci.StatementStartedAt = &t
			break
		}
	}
	c.q.mu.Unlock()
	switch tx := c.txStatus.Load(); {
	case waiting:
		ci.State = StateWaitingForCon
	case busy:
		ci.State = StateActive
	case tx == 'T' || tx == 'E':
		ci.State = StateIdleInTx
	default:
		ci.State = StateIdle
	}
	return ci, true
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ErrConnNotFound: no connection of that id (it closed, or never was).
var ErrConnNotFound = errors.New("no such connection")

// ErrCancelRefused: the caller may not cancel that connection's statement.
var ErrCancelRefused = errors.New("may not cancel this connection's statement")

// CancelConnection cancels connection id's statement as a CancelRequest with
// its key would (the client gets 57014). may, when not nil, sees the
// connection's session first and may refuse (ErrCancelRefused).
func (s *Server) CancelConnection(ctx context.Context, id uint64, may func(*auth.Session) bool) error {
	var c *clientConn
	s.mu.Lock()
	for x := range s.conns {
		if x.connID == id {
			c = x
			break
		}
	}
	s.mu.Unlock()
	if c == nil || !c.started.Load() {
		return ErrConnNotFound
	}
	if may != nil && !may(c.session) {
		return ErrCancelRefused
	}
	s.metrics.cancels.WithLabelValues("admin").Inc()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	return c.cancelWarehouse(ctx)
}
