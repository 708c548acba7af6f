package proxy

// Simple-protocol statements as prepared statements. A Query whose rewrite
// has a prepared form (rewrite/prepared.go: its template with the
// constants as parameters) runs as Bind, Describe, Execute and Sync of a
// statement the proxy prepares once per warehouse connection, under a name
// derived from its text, like the client's own prepared statements. The
// warehouse then parses the rewritten text once and plans it as it plans a
// driver's prepared statement, instead of parsing and planning the longer
// rewritten text on every execution. The client sees exactly the messages
// a Query gets: BindComplete and NoData are not its, and an error ends the
// statement as it would a Query.
//
// Whether a shape prepares at all is learnt once, by a probe: its first
// statement outside any transaction block is preceded by a Parse of the
// prepared form and a Sync of its own, both unseen by the client, and then
// runs as a plain Query. A Parse the warehouse refuses (a string whose type
// it cannot infer) leaves the shape to plain Queries; one it accepts lets
// the shape's statements run prepared from then on, inside transaction
// blocks too. Outside a transaction block, because a refused Parse inside
// one would fail the client's transaction.

import (
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/rewrite"
)

// queryPreparedLocked sends a Query with a prepared form pr. It reports
// false when the Query itself must still be sent, after a probe or when
// the shape runs as plain Queries. c.mu is held.
func (c *clientConn) queryPreparedLocked(pr *rewrite.Prepared, p *pending) (bool, error) {
	state := pr.Probe.State()
	if state == rewrite.ProbeRejected || (state == rewrite.ProbeUnknown && !c.mayProbe()) {
		return false, nil
	}
	b, err := c.bindLocked()
	if err != nil {
		return true, c.answerUnbound(err, true)
	}
	name, _, _ := c.names.lookup(pr.SQL, pr.ParamOIDs)
	isNew, err := c.markPreparedLocked(b, name)
	if err != nil {
		return true, err
	}
	if state == rewrite.ProbeUnknown && !isNew {
		// Prepared on this connection already, so accepted: by a session
		// of another identity with the same rewrite.
		pr.Probe.Accept()
		state = rewrite.ProbeAccepted
	}
	if isNew {
		prep := c.newPendingLocked(pParse)
		prep.internal, prep.prep, prep.be = true, name, b
		if state == rewrite.ProbeUnknown {
			prep.probe = pr.Probe
		} else {
			prep.auto, prep.info = true, p.info // a failure is the statement's
		}
		if err := c.pushSend(b, &pgproto3.Parse{Name: name, Query: pr.SQL, ParameterOIDs: pr.ParamOIDs}, prep); err != nil {
			return true, err
		}
		if state == rewrite.ProbeUnknown {
			ps := c.newPendingLocked(pSync)
			ps.internal = true
			return false, c.pushSend(b, &pgproto3.Sync{}, ps)
		}
	}
	c.srv.metrics.simplePrepared.Inc()
	c.sendBind = pgproto3.Bind{PreparedStatement: name, Parameters: pr.Params}
	c.sendPortal = pgproto3.Describe{ObjectType: 'P'}
	c.sendExec = pgproto3.Execute{}
	kinds := [4]pendingKind{pBind, pDescribe, pExecute, pSync}
	for i, m := range [4]pgproto3.FrontendMessage{&c.sendBind, &c.sendPortal, &c.sendExec, &pgproto3.Sync{}} {
		q := c.newPendingLocked(kinds[i])
		q.start, q.info, q.auto = p.start, p.info, q.kind != pSync
		if err := c.pushSend(b, m, q); err != nil {
			return true, err
		}
	}
	return true, b.Conn().Flush()
}

// mayProbe: nothing is owed and the warehouse last reported no transaction
// block, so a probe's failure cannot touch the client's transaction.
func (c *clientConn) mayProbe() bool {
	return c.q.empty() && c.txStatus.Load() == 'I'
}

// probeAnswered handles the warehouse's answer to a probe's Parse p: an
// error is not the client's; the shape runs as plain Queries unless the
// error says nothing about the statement (the connection or the server).
func (c *clientConn) probeAnswered(p *pending, msg pgproto3.BackendMessage) pgproto3.BackendMessage {
	switch m := msg.(type) {
	case *pgproto3.ParseComplete:
		p.probe.Accept()
		c.srv.metrics.probes.WithLabelValues("accepted").Inc()
		return msg // observeMsg confirms and drops it
	case *pgproto3.ErrorResponse:
		switch m.Code[:min(2, len(m.Code))] {
		case "08", "25", "40", "53", "57", "58", "XX":
		default:
			p.probe.Reject()
			c.srv.metrics.probes.WithLabelValues("rejected").Inc()
		}
		c.q.pop()
		c.parseFailed(p)
		c.log.Debug("prepared form refused", zap.String("sqlstate", m.Code), zap.String("reason", m.Message))
		return nil
	}
	return msg
}
