package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// The pinned part runs the select workload again with every process on a
// CPU of its own choosing, the same for every target: pgbench and the proxy
// on one, PostgreSQL on another. With the kernel choosing (the select
// part), a transaction through a proxy at one client costs about two
// cross-CPU wake-ups when pgbench and the proxy share a CPU and four when
// the proxy is alone, and the kernel picks by the processes' loads: a proxy
// that spares PostgreSQL work (pgwarden's prepared statements) gets the
// dearer layout more often, and a 3-second run may land on either. Pinned,
// each proxy pays for its own work only, so that its CPU per transaction
// compares with another's; unpinned is what a machine that runs all three
// does.

// placement is where the pinned part runs each process: pgbench and the
// proxy on front, PostgreSQL on back; all is where they were before.
type placement struct{ front, back, all cpuSet }

// newPlacement takes the first two CPUs this process may run on.
func newPlacement() (*placement, error) {
	all, err := threadAffinity(0)
	if err != nil {
		return nil, err
	}
	cpus := all.cpus()
	if len(cpus) < 2 {
		return nil, errors.New("a fixed placement needs two CPUs")
	}
	p := &placement{all: all}
	p.front.add(cpus[0])
	p.back.add(cpus[1])
	return p, nil
}

// runPinned runs w on every target that is a proxy (a process of its own
// whose CPU the bench reads: not direct, not rls), with PostgreSQL on the
// placement's back CPU and the proxies on its front one for the whole pass
// (a Go proxy's runtime follows its CPU set: moved at every case, it would
// resize its scheduler each time), and pgbench on the front CPU too.
func runPinned(ctx context.Context, o e2eOptions, targets []*target, w *workload) (res *e2eResults, err error) {
	if o.Postmaster <= 0 {
		return nil, errors.New("PostgreSQL's postmaster is not known")
	}
	pl, err := newPlacement()
	if err != nil {
		return nil, err
	}
	var proxies []*target
	var pids []int
	for _, t := range targets {
		var tp []int
		for _, proto := range w.Protocols {
			if ep, _ := t.Endpoint(w, proto, w.Tenants[0]); ep.Pid > 0 && !slices.Contains(tp, ep.Pid) {
				tp = append(tp, ep.Pid)
			}
		}
		if len(tp) > 0 {
			proxies, pids = append(proxies, t), append(pids, tp...)
		}
	}
	if len(proxies) == 0 {
		return nil, errors.New("no proxy among the targets")
	}
	defer func() {
		errs := []error{err, setTreeAffinity(o.Postmaster, &pl.all)}
		for _, pid := range pids {
			errs = append(errs, setProcessAffinity(pid, &pl.all))
		}
		if err = errors.Join(errs...); err != nil {
			err = fmt.Errorf("placing back: %w", err)
		}
	}()
	if err := setTreeAffinity(o.Postmaster, &pl.back); err != nil {
		return nil, fmt.Errorf("placing PostgreSQL: %w", err)
	}
	for _, pid := range pids {
		if err := setProcessAffinity(pid, &pl.front); err != nil {
			return nil, fmt.Errorf("placing proxy %d: %w", pid, err)
		}
	}
	o.PgbenchCPUs, o.Label = &pl.front, "pinned "
	fmt.Fprintf(o.Log, "pinned: pgbench and the proxy on CPU %d, PostgreSQL on CPU %d; %s …\n",
		pl.front.cpus()[0], pl.back.cpus()[0], targetNames(proxies))
	return runE2E(ctx, o, proxies, []*workload{w}), nil
}

func targetNames(ts []*target) string {
	var names []string
	for _, t := range ts {
		names = append(names, t.Name)
	}
	return strings.Join(names, ", ")
}

// writePinned writes the pinned part's section of RESULTS.md.
func writePinned(w io.Writer, res *e2eResults) {
	fmt.Fprintf(w, "### select with a fixed placement\n\n")
	fmt.Fprintf(w, "The select workload again, on the proxies only, with every process pinned the same way for every target:\n")
	fmt.Fprintf(w, "pgbench and the proxy on the first CPU, PostgreSQL (the postmaster and every backend) on the second. Left\n")
	fmt.Fprintf(w, "to the kernel (above), a transaction at one client costs about 2 cross-CPU wake-ups when pgbench and the\n")
	fmt.Fprintf(w, "proxy share a CPU and about 4 when the proxy is alone, and the kernel picks by the processes' loads: a proxy\n")
	fmt.Fprintf(w, "that spares PostgreSQL work gets the dearer layout more often, and a short run may land on either. Pinned,\n")
	fmt.Fprintf(w, "each proxy pays for its own work only, so that the proxies' CPU per transaction compares; the unpinned\n")
	fmt.Fprintf(w, "table is what a machine that runs all three does. Throughput here is bounded by the one CPU that pgbench\n")
	fmt.Fprintf(w, "and the proxy share.\n\n")
	for _, wl := range res.Workloads {
		mdTable(w, e2eHeader, e2eRows(res, wl))
		fmt.Fprintln(w)
	}
}
