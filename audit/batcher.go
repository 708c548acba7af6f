package audit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Gap says that a process dropped records it could not copy to the store
// (its queue was full, or the store refused a batch): the store's copy is
// incomplete between First and Last. The file keeps them.
type Gap struct {
	First, Last time.Time
	Dropped     int64
}

// Store is where a Batcher copies records; auth.Store is one.
type Store interface {
	InsertAudit(ctx context.Context, recs []Record, gap *Gap) error
	PurgeAudit(ctx context.Context, before time.Time) (int64, error)
}

// BatcherConfig sizes a Batcher; zero fields take the defaults.
type BatcherConfig struct {
	Queue     int           // records waiting at most (default 10000)
	Batch     int           // records per insert at most (default 500)
	Interval  time.Duration // longest wait before a partial batch goes (default 1s)
	Retention time.Duration // store rows older than this are deleted (default 30 days)
}

// Batcher copies records to the store in the background, in batches, never
// blocking the caller: past Queue waiting records it drops them, counts them
// (Dropped) and records the gap with the next batch that gets through.
type Batcher struct {
	cfg   BatcherConfig
	store Store
	log   *zap.Logger
	now   func() time.Time
	q     chan Record
	wake  chan struct{}

	dropped atomic.Int64 // ever, for the metric
	mu      sync.Mutex
	gap     *Gap // not yet recorded in the store
}

// NewBatcher returns a batcher for store; call Run.
func NewBatcher(cfg BatcherConfig, store Store, log *zap.Logger) (*Batcher, error) {
	if store == nil || log == nil {
		return nil, errors.New("audit: NewBatcher: nil dependency")
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 10000
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	return &Batcher{cfg: cfg, store: store, log: log, now: time.Now, q: make(chan Record, cfg.Queue), wake: make(chan struct{}, 1)}, nil
}

// Dropped counts the records never copied to the store.
func (b *Batcher) Dropped() int64 { return b.dropped.Load() }

// Add queues a copy of r, or drops it when the queue is full.
func (b *Batcher) Add(r *Record) {
	select {
	case b.q <- *r:
		if len(b.q) >= b.cfg.Batch {
			select {
			case b.wake <- struct{}{}:
			default:
			}
		}
	default:
		b.drop(1, r.Time, r.Time)
	}
}

func (b *Batcher) drop(n int64, first, last time.Time) {
	b.dropped.Add(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gap == nil {
		b.gap = &Gap{First: first, Last: last}
	}
	if first.Before(b.gap.First) {
		b.gap.First = first
	}
	if last.After(b.gap.Last) {
		b.gap.Last = last
	}
	b.gap.Dropped += n
}

// Run copies batches until ctx ends, then what is queued (within a few
// seconds), and returns ctx.Err(). It purges rows past the retention at
// start and hourly.
func (b *Batcher) Run(ctx context.Context) error {
	t := time.NewTicker(b.cfg.Interval)
	defer t.Stop()
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	b.purge(ctx)
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			for len(b.q) > 0 && fctx.Err() == nil {
				b.flush(fctx)
			}
			cancel()
			return ctx.Err()
		case <-t.C:
		case <-b.wake:
		case <-purge.C:
			b.purge(ctx)
		}
		for len(b.q) > 0 || b.pendingGap() {
			if !b.flush(ctx) {
				break
			}
		}
	}
}

func (b *Batcher) pendingGap() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gap != nil
}

// flush inserts one batch; a batch the store refuses is dropped (and so
// becomes a gap): the file has it, and retrying would grow the backlog.
func (b *Batcher) flush(ctx context.Context) bool {
	recs := make([]Record, 0, min(len(b.q), b.cfg.Batch))
	for len(recs) < b.cfg.Batch {
		select {
		case r := <-b.q:
			recs = append(recs, r)
			continue
		default:
		}
		break
	}
	b.mu.Lock()
	gap := b.gap
	b.gap = nil
	b.mu.Unlock()
	err := b.store.InsertAudit(ctx, recs, gap)
	if err == nil {
		return true
	}
	b.log.Warn("audit records not copied to the store (the audit file has them)", zap.Int("records", len(recs)), zap.Error(err))
	if gap != nil {
		b.drop(gap.Dropped, gap.First, gap.Last)
		b.dropped.Add(-gap.Dropped) // counted when first dropped
	}
	if len(recs) > 0 {
		b.drop(int64(len(recs)), recs[0].Time, recs[len(recs)-1].Time)
	}
	return false
}

func (b *Batcher) purge(ctx context.Context) {
	n, err := b.store.PurgeAudit(ctx, b.now().Add(-b.cfg.Retention))
	if err != nil {
		if ctx.Err() == nil {
			b.log.Warn("audit retention purge failed", zap.Error(err))
		}
		return
	}
	if n > 0 {
		b.log.Info("audit records past retention deleted", zap.Int64("records", n))
	}
}
