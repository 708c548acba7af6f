package auth

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// RevocationListener holds a dedicated connection that LISTENs for revoked
// session ids, reconnecting with backoff until its context ends.
type RevocationListener struct {
	config  *pgx.ConnConfig
	channel string
	timeout time.Duration // bounds LISTEN and pings, as the store's queries
	ping    time.Duration // a quiet connection is pinged this often
	log     *zap.Logger
	// OnRevoke gets each notified session id.
	onRevoke func(sid string)
	// OnListen runs after every successful LISTEN, first connect included:
	// a notification sent while we were away is lost, so the caller resyncs.
	// An error counts as a failed connect: the listener reconnects and
	// calls it again, so that no gap stays open until a periodic resync.
	onListen func(ctx context.Context) error
}

// NewRevocationListener returns a listener on store's revocation channel.
func NewRevocationListener(store *Store, log *zap.Logger, onRevoke func(sid string), onListen func(ctx context.Context) error) (*RevocationListener, error) {
	if store == nil || log == nil || onRevoke == nil || onListen == nil {
		return nil, errors.New("auth: NewRevocationListener: nil dependency")
	}
	return &RevocationListener{config: store.connConfig(), channel: store.channel, timeout: store.timeout, ping: DefaultListenPingInterval,
		log: log, onRevoke: onRevoke, onListen: onListen}, nil
}

// Reconnect backoff. Every revocation made while the listener is away is
// found by the resync that follows its reconnect, so the wait between
// attempts is how late a revocation can be once the store is back: the cap
// keeps that under a second (with 5s it took 2.4s after an outage). A
// refused connect costs the store next to nothing, and a frozen one is
// tried once per store_connect_timeout.
const (
	listenMinBackoff = 50 * time.Millisecond
	listenMaxBackoff = 500 * time.Millisecond
)

// Run listens until ctx ends and then returns ctx.Err().
func (l *RevocationListener) Run(ctx context.Context) error {
	backoff := listenMinBackoff
	for {
		err := l.listenOnce(ctx, func() { backoff = listenMinBackoff })
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.log.Warn("store listener disconnected", zap.String("channel", l.channel), zap.Error(err), zap.Duration("retry_in", backoff))
		// Jitter keeps a fleet of proxies from reconnecting in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, listenMaxBackoff)
	}
}

func (l *RevocationListener) listenOnce(ctx context.Context, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, l.config)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	lctx, cancel := context.WithTimeout(ctx, l.timeout)
	_, err = conn.Exec(lctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize())
	cancel()
	if err != nil {
		return err
	}
	if err := l.onListen(ctx); err != nil {
		return fmt.Errorf("resync after listen: %w", err)
	}
	connected()
	l.log.Debug("store listener listening", zap.String("channel", l.channel))
	for {
		wctx, cancel := context.WithTimeout(ctx, l.ping)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			l.onRevoke(n.Payload)
		case ctx.Err() == nil && wctx.Err() != nil:
			// Quiet for a while. A store host that vanished without closing
			// the connection (failover, a partition) would leave us waiting
			// for hours of TCP keepalive: ask it something. A timeout keeps
			// the connection usable, so nothing is lost meanwhile.
			pctx, cancel := context.WithTimeout(ctx, l.timeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("listener ping: %w", err)
			}
		default:
			return err
		}
	}
}
