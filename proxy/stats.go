package proxy

import (
	"time"

	"github.com/pgwarden/pgwarden/opstats"
)

// StatsRecorder receives per-tenant and per-pool statistics; it is called
// on the statement path, so it must be cheap and must not block. The
// methods ending in At take the time of the event from a caller that has
// read the clock already.
type StatsRecorder interface {
	Statement(tenant string, outcome opstats.Outcome, sqlstate string, d time.Duration)
	StatementAt(at time.Time, tenant string, outcome opstats.Outcome, sqlstate string, d time.Duration)
	Connected(tenant string)
	Disconnected(tenant string)
	PoolAt(at time.Time, warehouse string, size, inUse, idle, waiting int)
	PoolWaitAt(at time.Time, warehouse string, d time.Duration)
}

var _ StatsRecorder = (*opstats.Recorder)(nil)

type noStats struct{}

func (noStats) Statement(string, opstats.Outcome, string, time.Duration)              {}
func (noStats) StatementAt(time.Time, string, opstats.Outcome, string, time.Duration) {}
func (noStats) Connected(string)                                                      {}
func (noStats) Disconnected(string)                                                   {}
func (noStats) PoolAt(time.Time, string, int, int, int, int)                          {}
func (noStats) PoolWaitAt(time.Time, string, time.Duration)                           {}

// statsOutcome maps the audit log's outcomes onto the statistics'.
func statsOutcome(outcome string) opstats.Outcome {
	switch outcome {
	case "ok":
		return opstats.OK
	case "refused":
		return opstats.Refused
	}
	return opstats.Failed
}
