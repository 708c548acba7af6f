package pool

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/pgerr"
)

// Conn is one warehouse connection as the pool lends it and the proxy's
// relay sees it. Send and Flush are called only by the client loop, Receive
// and Buffered only by the relay goroutine; Close and Cancel may be called
// from either.
type Conn interface {
	// Send buffers msg for the warehouse.
	Send(msg pgproto3.FrontendMessage) error
	// Flush writes buffered messages.
	Flush() error
	// Receive returns the next message; it is valid until the next call.
	Receive() (pgproto3.BackendMessage, error)
	// Buffered reports how many received bytes are waiting to be decoded, so
	// that the relay can flush the client before it blocks.
	Buffered() int
	// ParameterStatus returns a parameter the warehouse reported at startup.
	ParameterStatus(name string) string
	// PID is the warehouse backend's process id (for logs).
	PID() uint32
	// Cancel asks the warehouse to cancel the statement running on this
	// connection.
	Cancel(ctx context.Context) error
	// Close ends the connection; it unblocks a pending Receive.
	Close() error
}

// Backend is one warehouse connection with what the proxy tracks on it:
// the statements prepared there and the session state a lending left. A
// pool lends Backends in transaction mode; in session mode a client's own
// connection is one too (NewBackend), so that both modes share this
// bookkeeping. Only the client holding it touches it, except prepared,
// which the holder's loop and relay share.
type Backend struct {
	sc       Conn
	created  time.Time
	lastUsed time.Time
	// tenant is whom the pool lent b to (its share in the scheduler).
	tenant string

	prepMu sync.Mutex
	// prepared: proxy statement names prepared here, by last use (a
	// pointer, so that a use is one lookup of the name).
	prepared map[string]*uint64
	// confirmed is what the warehouse has confirmed (ParseComplete, less
	// CloseComplete): prepared is made from it again after messages were
	// skipped (prepDirty), when a Close and a later Parse of the same
	// name may both have been skipped.
	confirmed map[string]struct{}
	prepDirty bool
	prepTick  uint64
	// quietTick is prepTick when the warehouse had last answered all that
	// was sent: statements used since may have a Parse in flight.
	quietTick uint64
	maxPrep   int

	// Settings is the SET script applied since the last RESET ALL;
	// SettingsUnknown forces a RESET ALL before the next lending. The
	// holder reads and writes them; the pool never does.
	Settings        string
	SettingsUnknown bool
	// RowSecurityReset undoes the row security role and settings a
	// client's lending set here (proxy/rowsecurity.go); "" when none are
	// set. The holder's, as Settings.
	RowSecurityReset string
}

// NewBackend wraps sc, opened at now, keeping at most maxPrepared
// statements prepared on it (0: no cap).
func NewBackend(sc Conn, now time.Time, maxPrepared int) *Backend {
	return &Backend{sc: sc, created: now, lastUsed: now, prepared: map[string]*uint64{}, confirmed: map[string]struct{}{}, maxPrep: maxPrepared}
}

// MarkPrepared records a use of name and reports whether it is new here,
// in which case evict, if not "", is the least recently used statement
// that must be closed first to stay within the cap.
func (b *Backend) MarkPrepared(name string) (isNew bool, evict string) {
	b.prepMu.Lock()
	defer b.prepMu.Unlock()
	b.prepTick++
	if t := b.prepared[name]; t != nil {
		*t = b.prepTick
		return false, ""
	}
	if b.maxPrep > 0 && len(b.prepared) >= b.maxPrep {
		// A scan, but only when a full connection prepares a new one.
		// Only a statement unused since the warehouse was last quiet may
		// go, not one the batch in flight binds; if none, the cap waits.
		oldest := b.quietTick + 1
		for n, t := range b.prepared {
			if *t < oldest {
				evict, oldest = n, *t
			}
		}
		if evict != "" {
			delete(b.prepared, evict)
		}
	}
	tick := b.prepTick
	b.prepared[name] = &tick
	return true, evict
}

// Settle records that the warehouse has answered everything sent on b.
func (b *Backend) Settle() {
	b.prepMu.Lock()
	defer b.prepMu.Unlock()
	b.quietTick = b.prepTick
	if !b.prepDirty {
		return
	}
	b.prepDirty = false
	for n := range b.prepared {
		if _, ok := b.confirmed[n]; !ok {
			delete(b.prepared, n)
		}
	}
	for n := range b.confirmed {
		if _, ok := b.prepared[n]; !ok {
			b.prepared[n] = new(uint64)
		}
	}
}

// Confirm records the warehouse's answer to a Parse (prepared) or a Close.
func (b *Backend) Confirm(name string, prepared bool) {
	b.prepMu.Lock()
	if prepared {
		b.confirmed[name] = struct{}{}
	} else {
		delete(b.confirmed, name)
	}
	b.prepMu.Unlock()
}

// Skipped records that a Parse or Close of a proxy statement failed or was
// skipped: Settle makes prepared the warehouse's confirmed set again.
func (b *Backend) Skipped() {
	b.prepMu.Lock()
	b.prepDirty = true
	b.prepMu.Unlock()
}

// UnmarkPrepared forgets name as prepared: its Parse failed or was
// skipped (the warehouse never confirmed it), or it is being deallocated.
func (b *Backend) UnmarkPrepared(name string, deallocated bool) {
	b.prepMu.Lock()
	delete(b.prepared, name)
	if deallocated {
		delete(b.confirmed, name)
	}
	b.prepMu.Unlock()
}

// ClearPrepared forgets every statement prepared on b (DISCARD ALL,
// DEALLOCATE ALL).
func (b *Backend) ClearPrepared() {
	b.prepMu.Lock()
	clear(b.prepared)
	clear(b.confirmed)
	b.prepMu.Unlock()
}

// Conn is b's warehouse connection.
func (b *Backend) Conn() Conn { return b.sc }

// SetReadDeadline interrupts or bounds reads when the connection supports it.
func (b *Backend) SetReadDeadline(t time.Time) bool {
	d, ok := b.sc.(interface{ SetReadDeadline(time.Time) error })
	if !ok {
		return false
	}
	return d.SetReadDeadline(t) == nil
}

// RoundTrip sends a simple query (or a lone Sync when sql is "") and reads
// up to ReadyForQuery, swallowing the answers; it returns the first error
// and the final transaction status. The caller holds b exclusively and no
// relay reads it.
func (b *Backend) RoundTrip(sql string, timeout time.Duration) (byte, error) {
	var msg pgproto3.FrontendMessage = &pgproto3.Sync{}
	if sql != "" {
		msg = &pgproto3.Query{String: sql}
	}
	if err := b.sc.Send(msg); err != nil {
		return 0, err
	}
	if err := b.sc.Flush(); err != nil {
		return 0, err
	}
	if b.SetReadDeadline(time.Now().Add(timeout)) {
		defer b.SetReadDeadline(time.Time{})
	}
	var first error
	for {
		m, err := b.sc.Receive()
		if err != nil {
			return 0, err
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			if first == nil {
				first = pgerr.New(m.Code, "%s", m.Message)
			}
			if m.Severity == pgerr.SeverityFatal || m.Severity == "PANIC" {
				return 0, first
			}
		case *pgproto3.ReadyForQuery:
			return m.TxStatus, first
		}
	}
}

// Query runs a simple query whose result is text columns and returns its
// rows. The caller holds b exclusively and no relay reads it.
func (b *Backend) Query(sql string, timeout time.Duration) ([][]string, error) {
	if err := b.sc.Send(&pgproto3.Query{String: sql}); err != nil {
		return nil, err
	}
	if err := b.sc.Flush(); err != nil {
		return nil, err
	}
	if b.SetReadDeadline(time.Now().Add(timeout)) {
		defer b.SetReadDeadline(time.Time{})
	}
	var rows [][]string
	var first error
	for {
		m, err := b.sc.Receive()
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			row := make([]string, len(m.Values))
			for i, v := range m.Values {
				row[i] = string(v)
			}
			rows = append(rows, row)
		case *pgproto3.ErrorResponse:
			if first == nil {
				first = pgerr.New(m.Code, "%s", m.Message)
			}
		case *pgproto3.ReadyForQuery:
			return rows, first
		}
	}
}
