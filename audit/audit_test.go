package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// memStore keeps what a Batcher copies; fail makes inserts fail.
type memStore struct {
	mu   sync.Mutex
	fail bool
	recs []Record
	gaps []Gap
	seen chan struct{}
}

func (m *memStore) InsertAudit(_ context.Context, recs []Record, gap *Gap) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer func() {
		select {
		case m.seen <- struct{}{}:
		default:
		}
	}()
	if m.fail {
		return errors.New("store down")
	}
	m.recs = append(m.recs, recs...)
	if gap != nil {
		m.gaps = append(m.gaps, *gap)
	}
	return nil
}

func (m *memStore) PurgeAudit(context.Context, time.Time) (int64, error) { return 0, nil }

func (m *memStore) state() (int, []Gap) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs), append([]Gap(nil), m.gaps...)
}

// The file gets every record as one JSON line; the store's copy loses the
// batch a failing store refused, counts it, and records the gap with the
// next batch that gets through.
func TestLogAndBatcher(t *testing.T) {
	st := &memStore{fail: true, seen: make(chan struct{}, 1)}
	b, err := NewBatcher(BatcherConfig{Queue: 100, Batch: 10, Interval: 5 * time.Millisecond}, st, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	l := New(&file, b)
	t0 := time.Date(2026, 12, 3, 5, 0, 0, 0, time.UTC)
	for i := range 3 {
		l.Write(&Record{Time: t0.Add(time.Duration(i) * time.Second), Session: "s", Outcome: OutcomeOK})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	<-st.seen // the failed insert
	for deadline := time.Now().Add(10 * time.Second); b.Dropped() != 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dropped %d, want 3", b.Dropped())
		}
	}
	st.mu.Lock()
	st.fail = false
	st.mu.Unlock()
	l.Write(&Record{Time: t0.Add(time.Minute), Session: "s", Event: EventRevoke, Outcome: OutcomeOK})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		n, gaps := st.state()
		if n == 1 && len(gaps) == 1 {
			if g := gaps[0]; g.Dropped != 3 || !g.First.Equal(t0) || !g.Last.Equal(t0.Add(2*time.Second)) {
				t.Errorf("gap %+v", g)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored %d records, gaps %v", n, gaps)
		}
	}
	cancel()
	<-done
	if b.Dropped() != 3 {
		t.Errorf("dropped %d after recovery, want 3", b.Dropped())
	}
	lines := bytes.Split(bytes.TrimSpace(file.Bytes()), []byte("\n"))
	if len(lines) != 4 {
		t.Fatalf("file has %d lines, want 4", len(lines))
	}
	var last Record
	if err := json.Unmarshal(lines[3], &last); err != nil || last.Event != EventRevoke {
		t.Errorf("last line %s: %v", lines[3], err)
	}
	var nilLog *Log
	nilLog.Write(&Record{}) // records nothing, does not panic
}
