package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The fleet: asking every live replica for something (its connections, its
// statistics, to cancel a statement) through the control store, the one
// thing they all share.
//
// A replica (Fleet.Run) LISTENs on the store's fleet channel and then
// registers in the replicas table, refreshing its heartbeat every
// FleetHeartbeat; a replica whose heartbeat is older than FleetLiveFor is
// not live. Store.Ask lists the live replicas, sends one NOTIFY naming a
// request id, a kind and its arguments (optionally for one replica only),
// and polls the fleet_answers table, where each replica writes its answer
// keyed by (request id, replica), until every replica asked has answered or
// the wait is over; then it deletes the answers. A replica that registered
// is already listening, so a request is lost only while its listener
// reconnects: Ask then reports it as not answered, never silently.
const (
	// FleetHeartbeat is how often a replica refreshes its registration.
	FleetHeartbeat = 2 * time.Second
	// FleetLiveFor is how old a heartbeat may be for the replica to count
	// as live (three missed heartbeats).
	FleetLiveFor = 3 * FleetHeartbeat
	// DefaultFleetWait is how long Ask waits for answers by default.
	DefaultFleetWait = time.Second
	// fleetPayloadMax keeps a request under NOTIFY's 8000-byte payload.
	fleetPayloadMax = 7900
	// fleetConcurrency bounds the requests a replica answers at once.
	fleetConcurrency = 8
)

// FleetHandler answers one kind of request on a replica. Its result is
// encoded as JSON; an error is reported to the asker as the answer's Error.
type FleetHandler func(ctx context.Context, args json.RawMessage) (any, error)

// Fleet is one replica's membership: it answers requests by kind.
type Fleet struct {
	store    *Store
	id, name string
	handlers map[string]FleetHandler
	log      *zap.Logger
	sem      chan struct{}
	wg       sync.WaitGroup
}

// NewFleet returns the membership of a replica named name (shown to
// operators, e.g. host:port) answering handlers' kinds. Its id is random per
// process, so that a restarted replica is a new one.
func NewFleet(store *Store, name string, handlers map[string]FleetHandler, log *zap.Logger) (*Fleet, error) {
	if store == nil || log == nil {
		return nil, errors.New("auth: NewFleet: nil dependency")
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return &Fleet{store: store, id: hex.EncodeToString(b[:]), name: name, handlers: handlers, log: log,
		sem: make(chan struct{}, fleetConcurrency)}, nil
}

// ID is the replica's id in the fleet.
func (f *Fleet) ID() string { return f.id }

// fleetRequest is a request's NOTIFY payload.
type fleetRequest struct {
	ID   string          `json:"id"`
	Kind string          `json:"kind"`
	To   string          `json:"to,omitempty"`
	Wait int64           `json:"wait_ms"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Run registers the replica and answers requests until ctx ends; then it
// deregisters and returns ctx.Err().
func (f *Fleet) Run(ctx context.Context) error {
	l, err := NewRevocationListener(f.store, f.log, f.handle, f.register)
	if err != nil {
		return err
	}
	l.channel = f.store.fleetChannel
	defer func() {
		f.wg.Wait()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.store.timeout)
		defer cancel()
		f.store.pool.Exec(dctx, `DELETE FROM `+f.store.schema+`.replicas WHERE id = $1`, f.id)
	}()
	f.wg.Go(func() {
		t := time.NewTicker(FleetHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := f.register(ctx); err != nil && ctx.Err() == nil {
					f.log.Warn("fleet heartbeat failed", zap.Error(err))
				}
			}
		}
	})
	return l.Run(ctx)
}

// register records (or refreshes) the replica's heartbeat, and clears
// answers nobody collected and replicas long gone.
func (f *Fleet) register(ctx context.Context) error {
	s := f.store
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.schema+`.replicas (id, name, started_at, heartbeat_at) VALUES ($1, $2, now(), now())
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`, f.id, f.name)
	if err != nil {
		return s.fail("fleet register", err)
	}
	_, err = s.pool.Exec(ctx, `DELETE FROM `+s.schema+`.fleet_answers WHERE answered_at < now() - interval '1 minute';
		DELETE FROM `+s.schema+`.replicas WHERE heartbeat_at < now() - interval '1 hour'`)
	return s.fail("fleet purge", err)
}

// handle answers one notified request (in the background: the listener
// must keep listening).
func (f *Fleet) handle(payload string) {
	var req fleetRequest
	if err := json.Unmarshal([]byte(payload), &req); err != nil || req.ID == "" {
		f.log.Warn("fleet request unreadable")
		return
	}
	if req.To != "" && req.To != f.id {
		return
	}
	select {
	case f.sem <- struct{}{}:
	default:
		f.log.Warn("fleet request dropped: too many in flight", zap.String("kind", req.Kind))
		return
	}
	f.wg.Go(func() {
		defer func() { <-f.sem }()
		wait := time.Duration(req.Wait) * time.Millisecond
		if wait <= 0 || wait > time.Minute {
			wait = DefaultFleetWait
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		var (
			body   []byte
			errMsg string
		)
		h := f.handlers[req.Kind]
		if h == nil {
			errMsg = fmt.Sprintf("unknown request kind %q", req.Kind)
		} else if v, err := h(ctx, req.Args); err != nil {
			errMsg = err.Error()
		} else if body, err = json.Marshal(v); err != nil {
			errMsg = "answer: " + err.Error()
		}
		if ctx.Err() != nil {
			return // the asker stopped waiting: nobody would collect it
		}
		if body == nil {
			body = []byte("null")
		}
		s := f.store
		actx, acancel := s.bound(context.Background())
		defer acancel()
		_, err := s.pool.Exec(actx, `INSERT INTO `+s.schema+`.fleet_answers (request_id, replica, body, error, answered_at)
			VALUES ($1, $2, $3, $4, now()) ON CONFLICT DO NOTHING`, req.ID, f.id, string(body), errMsg)
		if err != nil {
			f.log.Warn("fleet answer not written", zap.String("kind", req.Kind), zap.Error(err))
		}
	})
}

// FleetQuestion is what Ask sends.
type FleetQuestion struct {
	Kind string
	Args any
	// To names one replica; "" asks every live replica.
	To string
	// Wait bounds how long Ask waits for answers (default DefaultFleetWait).
	Wait time.Duration
}

// FleetAnswer is one replica's answer.
type FleetAnswer struct {
	Replica  string
	Name     string
	Answered bool
	Body     json.RawMessage
	// Error is the replica's error message, when it answered with one.
	Error string
}

// FleetAnswers are the answers of every replica asked, in replica id order.
type FleetAnswers struct {
	Replicas []FleetAnswer
	// Incomplete: a live replica did not answer in time.
	Incomplete bool
}

// LiveReplicas lists the replicas whose heartbeat is recent, by id.
func (s *Store) LiveReplicas(ctx context.Context) ([]FleetAnswer, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id, name FROM `+s.schema+`.replicas WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY id`,
		FleetLiveFor.Seconds())
	if err != nil {
		return nil, s.fail("live replicas", err)
	}
	defer rows.Close()
	var out []FleetAnswer
	for rows.Next() {
		var a FleetAnswer
		if err := rows.Scan(&a.Replica, &a.Name); err != nil {
			return nil, s.fail("live replicas", err)
		}
		out = append(out, a)
	}
	return out, s.fail("live replicas", rows.Err())
}

// Ask sends q to every live replica (or to q.To) and collects the answers
// that arrive within q.Wait. A q.To that is not a live replica yields no
// answers at all.
func (s *Store) Ask(ctx context.Context, q FleetQuestion) (*FleetAnswers, error) {
	if q.Wait <= 0 {
		q.Wait = DefaultFleetWait
	}
	live, err := s.LiveReplicas(ctx)
	if err != nil {
		return nil, err
	}
	out := &FleetAnswers{}
	for _, r := range live {
		if q.To == "" || q.To == r.Replica {
			out.Replicas = append(out.Replicas, r)
		}
	}
	if len(out.Replicas) == 0 {
		return out, nil
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	req := fleetRequest{ID: hex.EncodeToString(b[:]), Kind: q.Kind, To: q.To, Wait: q.Wait.Milliseconds()}
	if q.Args != nil {
		if req.Args, err = json.Marshal(q.Args); err != nil {
			return nil, fmt.Errorf("fleet %s: %w", q.Kind, err)
		}
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("fleet %s: %w", q.Kind, err)
	}
	if len(payload) > fleetPayloadMax {
		return nil, fmt.Errorf("fleet %s: request of %d bytes is too large", q.Kind, len(payload))
	}
	nctx, cancel := s.bound(ctx)
	_, err = s.pool.Exec(nctx, `SELECT pg_notify($1, $2)`, s.fleetChannel, string(payload))
	cancel()
	if err != nil {
		return nil, s.fail("fleet ask", err)
	}
	defer func() {
		dctx, cancel := s.bound(context.WithoutCancel(ctx))
		defer cancel()
		s.pool.Exec(dctx, `DELETE FROM `+s.schema+`.fleet_answers WHERE request_id = $1`, req.ID)
	}()
	deadline := time.Now().Add(q.Wait)
	pause := 5 * time.Millisecond
	for {
		n, err := s.collect(ctx, req.ID, out)
		if err != nil {
			return nil, err
		}
		if n == len(out.Replicas) || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(pause, time.Until(deadline))):
		}
		pause = min(pause*2, 50*time.Millisecond)
	}
	for _, r := range out.Replicas {
		if !r.Answered {
			out.Incomplete = true
		}
	}
	return out, nil
}

// collect fills in the answers to request id that have arrived and returns
// how many replicas of out have answered.
func (s *Store) collect(ctx context.Context, id string, out *FleetAnswers) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT replica, body, error FROM `+s.schema+`.fleet_answers WHERE request_id = $1`, id)
	if err != nil {
		return 0, s.fail("fleet answers", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			replica, body, msg string
		)
		if err := rows.Scan(&replica, &body, &msg); err != nil {
			return 0, s.fail("fleet answers", err)
		}
		for i := range out.Replicas {
			if r := &out.Replicas[i]; r.Replica == replica && !r.Answered {
				r.Answered, r.Body, r.Error = true, json.RawMessage(body), msg
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, s.fail("fleet answers", err)
	}
	n := 0
	for _, r := range out.Replicas {
		if r.Answered {
			n++
		}
	}
	return n, nil
}
