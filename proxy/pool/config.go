package pool

import (
	"errors"
	"fmt"
	"time"

	"github.com/pgwarden/pgwarden/proxy/fairq"
)

// Mode says how clients share warehouse connections.
type Mode string

const (
	// Session gives each client its own warehouse connection for its
	// whole session (SQL-level PREPARE, cursors WITH HOLD, ... all work).
	Session Mode = "session"
	// Transaction lends a pooled connection to a client for one
	// transaction: it is acquired at the first message that needs the
	// warehouse and returned at the ReadyForQuery 'I' that ends the
	// client's synced batch. The rewritten SQL carries the tenant as a
	// literal, so a connection has no tenant state to leak.
	Transaction Mode = "transaction"
)

// Defaults, applied by Config.WithDefaults.
const (
	DefaultMode             = Transaction
	DefaultSize             = 20
	DefaultAcquireTimeout   = 5 * time.Second
	DefaultIdleTimeout      = 10 * time.Minute
	DefaultMaxLifetime      = time.Hour
	DefaultHealthCheckAfter = 30 * time.Second
	// DefaultMaxPreparedStatements is PgBouncer's default: the rewritten
	// text carries the tenant, so without a cap a long-lived connection
	// would keep a plan for every tenant and statement it ever served.
	DefaultMaxPreparedStatements = 200
)

// Config configures a warehouse's connection pool (transaction mode; in
// session mode only Mode is used).
type Config struct {
	Mode Mode
	// Size caps the warehouse connections open at once.
	Size int
	// AcquireTimeout bounds a client's wait for a connection; it then gets
	// 53300 and may retry.
	AcquireTimeout time.Duration
	// IdleTimeout closes connections unused for this long.
	IdleTimeout time.Duration
	// MaxLifetime retires connections this old when they are returned.
	MaxLifetime time.Duration
	// HealthCheckAfter: a connection idle for longer is checked with a
	// round trip before it is lent.
	HealthCheckAfter time.Duration
	// MaxPreparedStatements caps the statements the proxy keeps prepared
	// on one warehouse connection (both modes); the least recently used is
	// closed to make room, and prepared again when a client next binds it.
	MaxPreparedStatements int
	// PlainSimpleQueries turns off running simple-protocol statements as
	// prepared statements (proxy/simpleprep.go; both modes): for
	// warehouses whose data makes the generic plans PostgreSQL settles on
	// a poor choice.
	PlainSimpleQueries bool
	// Tenants is who goes next when the pool is saturated and each
	// tenant's share of it (fairq): policy fair (the default) or fifo,
	// limits for every tenant and overrides by tenant.
	Tenants fairq.Config
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.AcquireTimeout == 0 {
		c.AcquireTimeout = DefaultAcquireTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	if c.HealthCheckAfter == 0 {
		c.HealthCheckAfter = DefaultHealthCheckAfter
	}
	if c.MaxPreparedStatements == 0 {
		c.MaxPreparedStatements = DefaultMaxPreparedStatements
	}
	if c.Tenants.Policy == "" {
		c.Tenants.Policy = fairq.Fair
	}
	return c
}

// Validate reports invalid fields (after defaults); prefix names the section.
func (c Config) Validate(prefix string) error {
	var errs []error
	if c.Mode != Session && c.Mode != Transaction {
		errs = append(errs, fmt.Errorf("%s.mode: %q is not session or transaction", prefix, c.Mode))
	}
	if c.Size < 1 {
		errs = append(errs, fmt.Errorf("%s.size: must be at least 1", prefix))
	}
	if c.MaxPreparedStatements < 1 {
		errs = append(errs, fmt.Errorf("%s.max_prepared_statements: must be at least 1", prefix))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"acquire_timeout", c.AcquireTimeout}, {"idle_timeout", c.IdleTimeout}, {"max_lifetime", c.MaxLifetime}, {"health_check_after", c.HealthCheckAfter}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s.%s: must not be negative", prefix, d.name))
		}
	}
	if err := c.Tenants.Validate(prefix); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
