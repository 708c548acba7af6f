package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The bigstmt part is issue #19's memory figure: the proxy's peak resident
// set while it takes statements of the largest size a client may send
// (proxy.max_message_bytes), 1, 4 and 16 at once, each on its own
// connection. Two kinds: an IN list of integers (the most parse tree per
// byte) and one long string literal (the least). Every level runs on a
// freshly started proxy, so that its peak (VmHWM) is its own.

// bigStmtPoint is one kind at one level of concurrency.
type bigStmtPoint struct {
	Kind       string // "in" (an IN list) or "string"
	Concurrent int
	Bytes      int   // each statement's length
	BaseKB     int64 // VmRSS before the statements
	PeakKB     int64 // VmHWM after them
	// Outcomes: answered with rows, refused for memory (53200), over the
	// rewrite budget (54000), anything else (first one in FirstErr).
	OK, OutOfMemory, OverBudget, Other int
	FirstErr                           string
	Seconds                            float64
	// RewriteTimeout is the proxy's rewrite_timeout, "" for its default.
	RewriteTimeout string
	Err            string // a setup error that stopped the level
}

// defaultMaxMessageBytes is proxy.max_message_bytes's default, which the
// bench's configuration keeps.
const defaultMaxMessageBytes = 16 << 20

func runBigStmt(ctx context.Context, o *options, rep *report, c *cluster, work, wardenBin string, keys *wardenKeys, log io.Writer) {
	size := o.BigStmtBytes
	if size <= 0 {
		size = defaultMaxMessageBytes - 1024 // the Query message's own bytes, with room to spare
	}
	for _, kind := range o.BigStmtKinds {
		sql := bigStatement(kind, size)
		for _, n := range o.BigStmtConcurrency {
			if ctx.Err() != nil {
				return
			}
			p := bigStmtPoint{Kind: kind, Concurrent: n, Bytes: len(sql)}
			if o.BigStmtRewriteTimeout > 0 {
				p.RewriteTimeout = o.BigStmtRewriteTimeout.String()
			}
			if err := measureBigStmt(ctx, &p, sql, c, work, wardenBin, keys, o.BigStmtRewriteTimeout); err != nil {
				p.Err = oneLine(err.Error(), 300)
			}
			fmt.Fprintf(log, "bigstmt: %s of %.1f MiB × %d: peak RSS %.0f MiB (base %.0f MiB); %d ok, %d 53200, %d 54000, %d other %s in %.1fs %s\n",
				kind, mib(int64(p.Bytes)), n, kbMiB(p.PeakKB), kbMiB(p.BaseKB), p.OK, p.OutOfMemory, p.OverBudget, p.Other, p.FirstErr, p.Seconds, p.Err)
			rep.BigStmt = append(rep.BigStmt, p)
		}
	}
}

// bigStatement is a query on the bench table of about size bytes.
func bigStatement(kind string, size int) string {
	var b strings.Builder
	b.Grow(size + 32)
	if kind == "string" {
		b.WriteString("SELECT count(*) FROM pgbench_accounts WHERE filler = '")
		b.WriteString(strings.Repeat("x", max(0, size-b.Len()-1)))
		b.WriteString("'")
		return b.String()
	}
	b.WriteString("SELECT count(*) FROM pgbench_accounts WHERE aid IN (1")
	for k := 2; ; k++ {
		v := strconv.Itoa(k)
		if b.Len()+2+len(v)+1 > size {
			break
		}
		b.WriteString(", ")
		b.WriteString(v)
	}
	b.WriteString(")")
	return b.String()
}

func measureBigStmt(ctx context.Context, p *bigStmtPoint, sql string, c *cluster, work, wardenBin string, keys *wardenKeys, rewriteTimeout time.Duration) error {
	wd, err := startWardenWith(ctx, wardenBin, work, keys, c, fmt.Sprintf("bigstmt-%d", p.Concurrent), wardenOptions{RewriteTimeout: rewriteTimeout})
	if err != nil {
		return err
	}
	defer wd.stop()
	token, err := wd.sessionToken(ctx, benchTenant)
	if err != nil {
		return err
	}
	connStr := fmt.Sprintf("host=127.0.0.1 port=%d user=bench password=%s dbname=%s sslmode=disable connect_timeout=60", wd.ProxyPort, token, whBench)
	conns := make([]*pgconn.PgConn, p.Concurrent)
	defer func() {
		for _, cn := range conns {
			if cn != nil {
				cn.Close(context.Background())
			}
		}
	}()
	for i := range conns {
		if conns[i], err = pgconn.Connect(ctx, connStr); err != nil {
			return err
		}
	}
	settle()
	pid := wd.pid()
	p.BaseKB = rssKB(pid)
	var mu sync.Mutex
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, cn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			defer cancel()
			_, err := cn.Exec(qctx, sql).ReadAll()
			mu.Lock()
			defer mu.Unlock()
			switch code := sqlState(err); {
			case err == nil:
				p.OK++
			case code == "53200":
				p.OutOfMemory++
			case code == "54000":
				p.OverBudget++
			default:
				p.Other++
				if p.FirstErr == "" {
					p.FirstErr = oneLine(err.Error(), 120)
				}
			}
		}()
	}
	wg.Wait()
	p.Seconds = time.Since(t0).Seconds()
	p.PeakKB = procStatusKB(fmt.Sprintf("/proc/%d/status", pid), "VmHWM")
	return nil
}

func sqlState(err error) string {
	if pe, ok := err.(*pgconn.PgError); ok {
		return pe.Code
	}
	return ""
}

func mib(b int64) float64    { return float64(b) / (1 << 20) }
func kbMiB(kb int64) float64 { return float64(kb) / 1024 }

// writeBigStmt is the report's section for the bigstmt part.
func writeBigStmt(w io.Writer, ps []bigStmtPoint) {
	fmt.Fprintf(w, "## Memory for maximum-size statements\n\n")
	timeout := "10s (the default)"
	if len(ps) > 0 && ps[0].RewriteTimeout != "" {
		timeout = ps[0].RewriteTimeout + " (-bigstmt-rewrite-timeout, so that the IN list's rewrite completes and its peak includes every phase)"
	}
	fmt.Fprintf(w, "A freshly started proxy per row (proxy.rewrite_memory_bytes and max_message_bytes at their default of 16 MiB,\n")
	fmt.Fprintf(w, "rewrite_memory_wait 5s, rewrite_timeout %s); N connections each send one simple-protocol\n", timeout)
	fmt.Fprintf(w, "statement of the given size at the same time, an IN list of integers (the most parse tree per byte) or one\n")
	fmt.Fprintf(w, "string literal. Peak RSS is the proxy's VmHWM after all have answered; outcomes count rows, 53200 (rewrite\n")
	fmt.Fprintf(w, "memory budget: one statement of this size is rewritten at a time, the others wait up to 5s), 54000 (rewrite\n")
	fmt.Fprintf(w, "time budget) and other errors.\n\n")
	var rows [][]string
	for _, p := range ps {
		note := p.FirstErr
		if p.Err != "" {
			note = p.Err
		}
		rows = append(rows, []string{p.Kind, fmtF(mib(int64(p.Bytes)), 1), fmt.Sprint(p.Concurrent), fmtF(kbMiB(p.BaseKB), 0), fmtF(kbMiB(p.PeakKB), 0),
			fmt.Sprint(p.OK), fmt.Sprint(p.OutOfMemory), fmt.Sprint(p.OverBudget), fmt.Sprint(p.Other), fmtF(p.Seconds, 1), oneLine(serverError(note), 80)})
	}
	mdTable(w, []string{"statement", ">MiB each", ">at once", ">base RSS MiB", ">peak RSS MiB", ">ok", ">53200", ">54000", ">other", ">seconds", "note"}, rows)
	fmt.Fprintln(w)
}
