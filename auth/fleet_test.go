package auth

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// startFleet runs a replica on its own store connection until the test ends.
func (e *env) startFleet(name string, handlers map[string]FleetHandler) *Fleet {
	e.t.Helper()
	st, _ := e.instance()
	f, err := NewFleet(st, name, handlers, e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
	// Registered (and so listening) before the test asks.
	deadline := time.Now().Add(30 * time.Second)
	for {
		live, err := e.store.LiveReplicas(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range live {
			if r.Replica == f.ID() {
				return f
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("replica %s never registered", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every live replica answers a request; one that does not answer in time, a
// registered replica that is not running, and an unknown kind are reported,
// never dropped; a request for one replica reaches that one only.
func TestFleetAsk(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	echo := func(name string) FleetHandler {
		return func(_ context.Context, args json.RawMessage) (any, error) {
			return map[string]any{"from": name, "args": args}, nil
		}
	}
	a := e.startFleet("a", map[string]FleetHandler{"echo": echo("a"), "slow": echo("a")})
	b := e.startFleet("b", map[string]FleetHandler{"echo": echo("b"), "slow": func(ctx context.Context, _ json.RawMessage) (any, error) {
		<-ctx.Done() // never in time
		return nil, ctx.Err()
	}})

	ans, err := e.store.Ask(ctx, FleetQuestion{Kind: "echo", Args: map[string]int{"n": 7}})
	if err != nil {
		t.Fatal(err)
	}
	if ans.Incomplete || len(ans.Replicas) != 2 {
		t.Fatalf("echo: %+v", ans)
	}
	for _, r := range ans.Replicas {
		var got struct {
			From string
			Args struct{ N int }
		}
		if err := json.Unmarshal(r.Body, &got); err != nil || !r.Answered || got.Args.N != 7 || (got.From == "a") != (r.Replica == a.ID()) {
			t.Errorf("answer of %s: %s %v", r.Replica, r.Body, err)
		}
	}

	ans, err = e.store.Ask(ctx, FleetQuestion{Kind: "slow", Wait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !ans.Incomplete {
		t.Errorf("slow replica not reported: %+v", ans)
	}
	for _, r := range ans.Replicas {
		if r.Answered != (r.Replica == a.ID()) {
			t.Errorf("slow: replica %s answered=%v", r.Name, r.Answered)
		}
	}

	ans, err = e.store.Ask(ctx, FleetQuestion{Kind: "echo", To: b.ID()})
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Replicas) != 1 || ans.Replicas[0].Replica != b.ID() || !ans.Replicas[0].Answered {
		t.Errorf("to b: %+v", ans)
	}
	ans, err = e.store.Ask(ctx, FleetQuestion{Kind: "echo", To: "gone"})
	if err != nil || len(ans.Replicas) != 0 {
		t.Errorf("to an unknown replica: %+v %v", ans, err)
	}

	ans, err = e.store.Ask(ctx, FleetQuestion{Kind: "nope", To: a.ID()})
	if err != nil || len(ans.Replicas) != 1 || ans.Replicas[0].Error != `unknown request kind "nope"` {
		t.Errorf("unknown kind: %+v %v", ans, err)
	}

	// A replica that registered and died (no heartbeat since) counts as
	// live until FleetLiveFor has passed: it is reported as not answering.
	if _, err := e.store.pool.Exec(ctx, `INSERT INTO `+e.store.schema+`.replicas VALUES ('dead', 'dead', now(), now())`); err != nil {
		t.Fatal(err)
	}
	ans, err = e.store.Ask(ctx, FleetQuestion{Kind: "echo", Wait: 300 * time.Millisecond})
	if err != nil || !ans.Incomplete || len(ans.Replicas) != 3 {
		t.Errorf("with a dead replica: %+v %v", ans, err)
	}
	if _, err := e.store.pool.Exec(ctx, `UPDATE `+e.store.schema+`.replicas SET heartbeat_at = now() - interval '1 minute' WHERE id = 'dead'`); err != nil {
		t.Fatal(err)
	}
	ans, err = e.store.Ask(ctx, FleetQuestion{Kind: "echo"})
	if err != nil || ans.Incomplete || len(ans.Replicas) != 2 {
		t.Errorf("after the dead replica's heartbeat expired: %+v %v", ans, err)
	}
	// Answers are collected and deleted.
	var left int
	if err := e.store.pool.QueryRow(ctx, `SELECT count(*) FROM `+e.store.schema+`.fleet_answers`).Scan(&left); err != nil || left != 0 {
		t.Errorf("answers left behind: %d %v", left, err)
	}
	if _, err := e.store.Ask(ctx, FleetQuestion{Kind: "echo", Args: string(make([]byte, 9000))}); err == nil || errors.Is(err, ErrStoreUnavailable) {
		t.Errorf("oversized request: %v", err)
	}
}
