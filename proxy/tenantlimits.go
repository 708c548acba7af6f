package proxy

// A tenant's limits on its statements, beside its share of the pool
// (fairq): a statement timeout (by tenant and role), rows and bytes per
// result, and statements per second.
//
//   - The timeout is the warehouse's own statement_timeout: the session's
//     default (a startup parameter in session mode, a replayed setting in
//     transaction mode), so PostgreSQL cancels with its own 57014
//     "canceling statement due to statement timeout"; a client may SET it
//     lower, not higher.
//   - A result past its rows or bytes is cancelled on the warehouse: the rows
//     after the limit are dropped, and the statement's end (the warehouse's
//     57014, or its CommandComplete when it finished first) becomes 54000;
//     the session goes on at the next ReadyForQuery.
//   - Statements per second: a statement beyond the tenant's bucket waits for
//     its token (delayed, not refused: a dashboard's burst of queries slows
//     down instead of failing) unless the wait would pass the pool's
//     acquire_timeout, when it gets 53300 at once.

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/fairq"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// StatementLimits are a tenant's limits on its statements; zero means none.
type StatementLimits struct {
	// Timeout is the statement_timeout, RoleTimeouts the one by the
	// session's role on the warehouse (most specific wins: the tenant's
	// role, the tenant's, the default role's, the default).
	Timeout      time.Duration
	RoleTimeouts map[policy.Role]time.Duration
	// MaxRows and MaxBytes (of DataRow values) bound one result.
	MaxRows  int64
	MaxBytes int64
}

// TenantStatementLimits are the limits every tenant gets and overrides by
// tenant (zero fields take the defaults).
type TenantStatementLimits struct {
	Defaults StatementLimits
	Tenants  map[string]StatementLimits
}

// warehouseLimits are what a warehouse's sessions read of its pool config.
type warehouseLimits struct {
	statements     TenantStatementLimits
	acquireTimeout time.Duration
}

// sessionLimits are one session's resolved limits.
type sessionLimits struct {
	timeout  time.Duration
	maxRows  int64
	maxBytes int64
}

// For resolves tenant's limits for a session with role.
func (t TenantStatementLimits) For(tenant string, role policy.Role) sessionLimits {
	o, ok := t.Tenants[tenant]
	d := t.Defaults
	l := sessionLimits{maxRows: d.MaxRows, maxBytes: d.MaxBytes}
	switch {
	case ok && o.RoleTimeouts[role] > 0:
		l.timeout = o.RoleTimeouts[role]
	case ok && o.Timeout > 0:
		l.timeout = o.Timeout
	case d.RoleTimeouts[role] > 0:
		l.timeout = d.RoleTimeouts[role]
	default:
		l.timeout = d.Timeout
	}
	if ok && o.MaxRows > 0 {
		l.maxRows = o.MaxRows
	}
	if ok && o.MaxBytes > 0 {
		l.maxBytes = o.MaxBytes
	}
	return l
}

// sessionTimeout is the statement_timeout a session starts with: the
// tenant's, unless the proxy's own is lower; 0 when the tenant has none.
func sessionTimeout(tenant, proxy time.Duration) time.Duration {
	if tenant <= 0 || proxy > 0 && proxy <= tenant {
		return 0
	}
	return tenant
}

// checkTimeoutSet refuses a SET statement_timeout above the session's
// tenant timeout (0, no timeout, is above every one).
func (c *clientConn) checkTimeoutSet(res *rewrite.Result) error {
	limit := c.limits.timeout
	if limit <= 0 {
		return nil
	}
	for _, st := range res.Statements {
		if st.Kind != rewrite.KindSet || st.SetName != "statement_timeout" || st.SetValue == "" {
			continue
		}
		if d, ok := parseTimeoutSetting(st.SetValue); !ok || d == 0 || d > limit {
			return pgerr.Denied("permission denied to set statement_timeout above %s", limit).
				WithDetail("the tenant's statement timeout is %s", limit)
		}
	}
	return nil
}

// parseTimeoutSetting reads a statement_timeout value as PostgreSQL does
// (milliseconds without a unit), quoted or not.
func parseTimeoutSetting(v string) (time.Duration, bool) {
	return rewrite.ParseTimeout(strings.Trim(strings.TrimSpace(v), "'"))
}

// scheduler is the fairq state the session's tenant limits live in: its
// pool's in transaction mode, its warehouse's in session mode.
func (c *clientConn) scheduler() *fairq.Scheduler[*pool.Waiter] {
	if c.pool != nil {
		return c.pool.Scheduler()
	}
	return c.srv.sessionScheds[c.wh.Name]
}

// throttle takes a token from the tenant's statement bucket for a Query or
// Execute, waiting for it when the bucket is empty; 53300 when the wait
// would be longer than the pool's acquire timeout.
func (c *clientConn) throttle() error {
	if c.unthrottled {
		return nil
	}
	s := c.scheduler()
	if s == nil || s.Limits(c.session.Tenant).RatePerSecond <= 0 {
		// The scheduler and its limits are the session's for good.
		c.unthrottled = true
		return nil
	}
	maxWait := c.srv.tenantLimits[c.wh.Name].acquireTimeout
	wait := s.Reserve(c.session.Tenant, maxWait)
	if wait > maxWait {
		c.srv.metrics.tenantRefusal(c.wh.Name, c.session.Tenant, "statements_per_second")
		return pgerr.New(pgerr.TooManyConnections, "too many statements per second for tenant %s (limit %g)",
			c.session.Tenant, s.Limits(c.session.Tenant).RatePerSecond).
			WithHint("retry later, or spread the statements out")
	}
	if wait <= 0 {
		return nil
	}
	c.clockStale = true // what follows in the batch waited too
	c.leaveLoop("throttle")
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.ctx.Done():
		return context.Cause(c.ctx)
	}
}

// resultGuard counts the rows and bytes of the result being relayed and
// cuts it off past the session's limits. Only the relaying goroutine uses
// it. Invariant: over is set from the DataRow that passed a limit until
// the end of that statement's result (CommandComplete, PortalSuspended or
// ErrorResponse), and every DataRow meanwhile is dropped.
type resultGuard struct {
	maxRows, maxBytes int64
	rows, bytes       int64
	over              *pgerr.Error
}

func (g *resultGuard) on() bool { return g.maxRows > 0 || g.maxBytes > 0 }

// filter returns what to relay for msg (nil: nothing, or the error in its
// place) and whether the statement has just passed a limit and must be
// cancelled on the warehouse.
func (g *resultGuard) filter(msg pgproto3.BackendMessage) (out pgproto3.BackendMessage, replace *pgerr.Error, cancel bool) {
	switch m := msg.(type) {
	case *pgproto3.DataRow:
		if g.over != nil {
			return nil, nil, false
		}
		g.rows++
		for _, v := range m.Values {
			g.bytes += int64(len(v))
		}
		switch {
		case g.maxRows > 0 && g.rows > g.maxRows:
			g.over = pgerr.New(pgerr.ProgramLimitExceeded, "result exceeds the tenant's limit of %d rows", g.maxRows)
		case g.maxBytes > 0 && g.bytes > g.maxBytes:
			g.over = pgerr.New(pgerr.ProgramLimitExceeded, "result exceeds the tenant's limit of %d bytes", g.maxBytes)
		default:
			return m, nil, false
		}
		g.over = g.over.WithDetail("the statement was canceled on the warehouse").
			WithHint("add a LIMIT or narrower filters, or page through the result with a cursor")
		return nil, nil, true
	case *pgproto3.CommandComplete, *pgproto3.PortalSuspended, *pgproto3.ErrorResponse:
		over := g.over
		g.rows, g.bytes, g.over = 0, 0, nil
		if over == nil {
			return msg, nil, false
		}
		if er, ok := msg.(*pgproto3.ErrorResponse); ok && er.Code != pgerr.QueryCanceled {
			return msg, nil, false // the warehouse's own error came first
		}
		return nil, over, false
	case *pgproto3.EmptyQueryResponse, *pgproto3.ReadyForQuery:
		g.rows, g.bytes, g.over = 0, 0, nil
	}
	return msg, nil, false
}

// guardResult applies the result limits to msg in the relay; nil drops it.
func (c *clientConn) guardResult(b *pool.Backend, msg pgproto3.BackendMessage) pgproto3.BackendMessage {
	out, replace, cancel := c.guard.filter(msg)
	if cancel {
		c.srv.metrics.tenantRefusal(c.wh.Name, c.session.Tenant, "max_result_rows_or_bytes")
		// Here and now, not in the background: once Cancel returns the
		// warehouse has signalled the backend, so the cancel cannot land on
		// a statement of whoever the connection goes to next (the backend
		// ignores it when it is idle by then).
		ctx, done := context.WithTimeout(c.ctx, c.srv.cfg.ConnectTimeout)
		if err := b.Conn().Cancel(ctx); err != nil {
			// The result runs on to its end, its rows dropped.
			c.log.Warn("cancel of a result past its limit failed", zap.Error(err))
		}
		done()
	}
	if replace != nil {
		if _, wasError := msg.(*pgproto3.ErrorResponse); !wasError {
			// The warehouse finished before the cancel: its transaction
			// did not fail, so fail it as for a made-up error.
			c.shapeFailed = true
		}
		return c.errorResponse(replace, false)
	}
	return out
}

// tenantRefusal counts a refusal by a tenant limit outside a pool's wait.
func (m *metrics) tenantRefusal(warehouse, tenant, limit string) {
	if tenant == "" {
		return
	}
	l := m.sessionLabels.Label(tenant)
	m.tenantRefusals.WithLabelValues(warehouse, l, limit).Inc()
}
