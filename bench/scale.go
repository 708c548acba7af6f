package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// scalePoint is the memory a proxy holds per idle client connection at one
// connection count.
type scalePoint struct {
	Target    string
	Conns     int // wanted
	Opened    int // actually open and authenticated
	BaseKB    int64
	RSSKB     int64
	PerConnKB float64
	Err       string
}

// raiseNoFile lifts this process's open-file soft limit to the hard limit.
// Calling Setrlimit explicitly also makes children (PgBouncer, pgwarden)
// inherit the raised limit.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// rssKB returns the resident set of process pid in kB.
func rssKB(pid int) int64 {
	return procStatusKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS")
}

// idleConns opens connections to one endpoint and holds them open.
type idleConns struct {
	ep    endpoint
	conns []*pgconn.PgConn
}

// grow opens connections until n are open, 16 at a time; it stops at the first
// failure and reports it.
func (ic *idleConns) grow(ctx context.Context, n int) error {
	need := n - len(ic.conns)
	if need <= 0 {
		return nil
	}
	connStr := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=20",
		ic.ep.Port, ic.ep.User, ic.ep.Password, ic.ep.DB)
	cfg, err := pgconn.ParseConfig(connStr)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var firstErr error
	work := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				c, err := pgconn.ConnectConfig(ctx, cfg)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
				} else {
					ic.conns = append(ic.conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < need; i++ {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("after %d connections: %w", len(ic.conns), firstErr)
	}
	return ctx.Err()
}

func (ic *idleConns) closeAll() {
	for _, c := range ic.conns {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c.Close(ctx)
		cancel()
	}
	ic.conns = nil
}

// measureScale opens counts (ascending) idle, authenticated connections to a
// freshly started proxy with process pid and records its RSS growth per
// connection at each count. Baseline is the RSS with one connection open, so
// that the one-off cost of the first session (caches, pools) is not counted.
func measureScale(ctx context.Context, log io.Writer, name string, pid int, ep endpoint, counts []int) []scalePoint {
	ic := &idleConns{ep: ep}
	defer ic.closeAll()
	var out []scalePoint
	if err := ic.grow(ctx, 1); err != nil {
		for _, n := range counts {
			out = append(out, scalePoint{Target: name, Conns: n, Err: err.Error()})
		}
		return out
	}
	settle()
	base := rssKB(pid)
	for _, n := range counts {
		p := scalePoint{Target: name, Conns: n, BaseKB: base}
		err := ic.grow(ctx, n)
		settle()
		p.Opened = len(ic.conns)
		p.RSSKB = rssKB(pid)
		if p.Opened > 1 {
			p.PerConnKB = float64(p.RSSKB-base) / float64(p.Opened-1)
		}
		if err != nil {
			p.Err = err.Error()
		}
		fmt.Fprintf(log, "scale %-9s %5d conns (%5d open): RSS %7d kB, %.1f kB/conn %s\n", name, n, p.Opened, p.RSSKB, p.PerConnKB, p.Err)
		out = append(out, p)
		if err != nil {
			break
		}
	}
	return out
}

// settle lets the proxy finish handshakes and the kernel account the pages.
func settle() { time.Sleep(time.Second) }
