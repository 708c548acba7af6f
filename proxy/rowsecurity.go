package proxy

// Pass-through to the warehouse's own row-level security. When the
// warehouse's policy has a row_security block (policy.RowSecurity), every
// warehouse connection a session holds runs under the session's role and
// settings: they are set, session-wide, by an internal statement queued
// ahead of the client's first message (the same write, so no extra round
// trip), in a transaction of their own that no ROLLBACK, ROLLBACK TO or
// aborted transaction of the client's can undo; and reset when the
// connection goes back to the pool, with a check that it is the service
// account again with none of them set (a connection that fails the check
// is closed). They are session-wide rather than SET LOCAL because one
// lending can span several transactions (pipelined Syncs, COMMIT followed
// by more statements in one Query, a cursor WITH HOLD that pins the
// connection): transaction-local values would leave the later ones running
// as the service account. The client cannot change them: the rewriter
// refuses SET, RESET and set_config of role and of the settings by name,
// and RESET ALL and DISCARD ALL on such warehouses.
//
// If setting them fails (the role was dropped since the login checked it),
// the relay sees the error before any answer to the client's statements,
// closes the connection and fails what the client was owed (lose): nothing
// that ran without the session's role reaches the client.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// RowSecurer is a Rewriter whose policy may ask for pass-through row
// security (rewrite.Rewriter is one).
type RowSecurer interface {
	RowSecurity() *policy.RowSecurity
}

var _ RowSecurer = (*rewrite.Rewriter)(nil)

// rowSecurity is a session's pass-through state. It is computed at startup
// and again by the loop when a policy reload swapped the rewriter.
type rowSecurity struct {
	rw    Rewriter // the rewriter it was computed for
	s     *policy.SessionRowSecurity
	set   string // SetSQL
	reset string // ResetSQL
	names []string
}

// rowSecurityFor computes the session's pass-through state under the
// warehouse's current rewriter; nil when its policy has none. The loop and
// startup call it; c.rls is theirs.
func (c *clientConn) rowSecurityFor() (*rowSecurity, error) {
	rw := c.wh.Rewriter()
	if c.rls != nil && c.rls.rw == rw {
		return c.rls, nil
	}
	rs, ok := rw.(RowSecurer)
	if !ok || rs.RowSecurity() == nil {
		c.rls = nil
		return nil, nil
	}
	s, err := rs.RowSecurity().For(c.identity)
	if err != nil {
		return nil, pgerr.Fatalf(pgerr.InvalidAuthorization, "session cannot use warehouse %s: %v", c.wh.Name, err)
	}
	c.rls = &rowSecurity{rw: rw, s: s, set: s.SetSQL(), reset: s.ResetSQL(), names: rs.RowSecurity().Names()}
	return c.rls, nil
}

// errRowSecuritySetup ends the lending of a connection on which the
// session's role or settings could not be set (see lose).
var errRowSecuritySetup = errors.New("row security setup failed")

// applyRowSecurityLocked queues the statement that sets the session's role
// and settings on b, which the client has just been lent; the relay
// swallows its answers (observeReplay). c.mu is held.
func (c *clientConn) applyRowSecurityLocked(b *pool.Backend) error {
	rls, err := c.rowSecurityFor()
	if err != nil || rls == nil {
		return err
	}
	b.RowSecurityReset = rls.reset
	c.replays.Add(1)
	return c.pushSend(b, &pgproto3.Query{String: rls.set}, &pending{kind: pQuery, internal: true, rls: true, start: time.Now()})
}

// resetRowSecurity takes the session's role and settings off b before it
// goes back to the pool and checks that they are gone; false means b must
// be closed. Nobody else reads b meanwhile.
func resetRowSecurity(b *pool.Backend, timeout time.Duration, log *zap.Logger) bool {
	if b.RowSecurityReset == "" {
		return true
	}
	rows, err := b.Query(b.RowSecurityReset, timeout)
	b.RowSecurityReset = ""
	if err != nil || len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] != "t" {
		log.Warn("row security reset failed; closing the warehouse connection", zap.Error(err))
		return false
	}
	return true
}

// maxGoodRoles bounds checkRowSecurity's memory of roles taken on (as many
// as the pool remembers of settings taken: pool.CheckSettings).
const maxGoodRoles = 1024

// checkRowSecurity makes sure, once per role and settings, that the
// warehouse lets the service account take them on: a login whose role does
// not exist or is not granted to the service account fails now, with the
// warehouse's reason, instead of every transaction later.
func (p *warehousePool) checkRowSecurity(ctx context.Context, rls *rowSecurity) error {
	key := rls.s.Role
	p.rolesMu.Lock()
	ok := p.goodRoles[key]
	p.rolesMu.Unlock()
	if ok {
		return nil
	}
	b, err := p.Acquire(ctx, "", nil)
	if err != nil {
		return err
	}
	if err := trySetRowSecurity(b, rls, p.timeout); err != nil {
		p.Release(b, false)
		return err
	}
	p.Release(b, true)
	p.rolesMu.Lock()
	if p.goodRoles == nil || len(p.goodRoles) >= maxGoodRoles {
		p.goodRoles = map[string]bool{}
	}
	p.goodRoles[key] = true
	p.rolesMu.Unlock()
	return nil
}

// trySetRowSecurity sets rls on b and resets it again, verified.
func trySetRowSecurity(b *pool.Backend, rls *rowSecurity, timeout time.Duration) error {
	status, err := b.RoundTrip(rls.set, timeout)
	b.RowSecurityReset = rls.reset
	if err == nil && status != 'I' {
		err = fmt.Errorf("transaction status %c after setting the role", status)
	}
	if err != nil {
		var pe *pgerr.Error
		if errors.As(err, &pe) {
			return pgerr.Fatalf(pe.Code, "cannot take on this session's row security role: %s", pe.Message).
				WithHint("create the role and grant it to the warehouse's service account (GRANT role TO service_account)")
		}
		return err
	}
	if rows, err := b.Query(rls.reset, timeout); err != nil || len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] != "t" {
		return fmt.Errorf("row security reset check failed: %v", err)
	}
	b.RowSecurityReset = ""
	return nil
}

// sessionSettingsQuery reads back the settings a client changed with
// set_config (captureSettings), leaving out the ones pgwarden pins and
// those it sets for row security.
func (c *clientConn) sessionSettingsQuery() string {
	skip := []string{"'client_encoding'", "'standard_conforming_strings'", "'backslash_quote'"}
	if c.rls != nil {
		for _, n := range c.rls.names {
			skip = append(skip, policy.QuoteLiteral(n))
		}
	}
	return "SELECT name, setting FROM pg_catalog.pg_settings WHERE source = 'session' AND name NOT IN (" + strings.Join(skip, ", ") + ") ORDER BY name"
}
