package proxy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/proxy/pool"
)

// warehousePool is a warehouse's (or a tenant database's) pool in
// transaction mode with what the proxy keeps beside it, per pool: the
// client side of the protocol's caches, which the pool knows nothing of.
type warehousePool struct {
	*pool.Pool
	timeout time.Duration // for the proxy's own round trips

	// descs holds what the warehouse answered to Describe of each proxy
	// statement (by proxy name), so that a client's Parse and Describe need
	// no connection when another client prepared the same statement.
	// descMu guards it, not the pool's lock: a Parse and a Describe read
	// it, and should not wait behind checkouts and returns.
	descMu sync.RWMutex
	descs  map[string]*stmtDesc
	// goodRoles: row security roles the service account was seen to take
	// on (checkRowSecurity), guarded by rolesMu.
	rolesMu   sync.Mutex
	goodRoles map[string]bool
	// slabs are its clients' pending records (pendings.go).
	slabs *sync.Pool
}

// newWarehousePool returns warehouse's pool, which dials through up.
func newWarehousePool(warehouse string, up Upstream, cfg pool.Config, timeout time.Duration, log *zap.Logger, m *metrics, stats StatsRecorder) *warehousePool {
	deps := pool.Deps{
		Dial: func(ctx context.Context) (pool.Conn, error) {
			return up.Acquire(ctx, &ClientInfo{Warehouse: warehouse, User: "pgwarden-pool"})
		},
		Timeout:    timeout,
		Log:        log,
		Metrics:    m.pools,
		Params:     reportedParams,
		SocketIdle: socketIdle,
		LetGo:      letGo,
		Stats:      stats,
	}
	return &warehousePool{Pool: pool.New(warehouse, cfg, deps), timeout: timeout, slabs: newPendingSlabPool()}
}

// stmtDesc is a statement's Describe answer, copied out of the
// connection's buffers and shared read-only between clients.
type stmtDesc struct {
	params *pgproto3.ParameterDescription
	result pgproto3.BackendMessage // *RowDescription or *NoData
	shape  string                  // resultShape(result)
}

// maxDescs bounds the pool's Describe cache (entries are a few hundred bytes).
const maxDescs = 4096

func (p *warehousePool) desc(name string) *stmtDesc {
	p.descMu.RLock()
	defer p.descMu.RUnlock()
	return p.descs[name]
}

func (p *warehousePool) putDesc(name string, d *stmtDesc) {
	p.descMu.Lock()
	defer p.descMu.Unlock()
	if p.descs == nil {
		p.descs = map[string]*stmtDesc{}
	}
	if _, ok := p.descs[name]; !ok && len(p.descs) >= maxDescs {
		for k := range p.descs { // evict one at random
			delete(p.descs, k)
			break
		}
	}
	p.descs[name] = d
}

// newStmtDesc copies a Describe's answers (pgproto3 reuses its messages).
func newStmtDesc(params *pgproto3.ParameterDescription, result pgproto3.BackendMessage) (*stmtDesc, error) {
	d := &stmtDesc{params: &pgproto3.ParameterDescription{ParameterOIDs: append([]uint32(nil), params.ParameterOIDs...)}, shape: resultShape(result)}
	switch m := result.(type) {
	case *pgproto3.NoData:
		d.result = &pgproto3.NoData{}
	case *pgproto3.RowDescription:
		buf, err := m.Encode(nil)
		if err != nil {
			return nil, err
		}
		rd := &pgproto3.RowDescription{}
		if err := rd.Decode(buf[5:]); err != nil { // our own buffer: the fields may point into it
			return nil, err
		}
		d.result = rd
	default:
		return nil, fmt.Errorf("unexpected describe answer %T", result)
	}
	return d, nil
}
