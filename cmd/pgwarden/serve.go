package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/gctune"
)

func cmdServe(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "pgwarden.yaml", "configuration `file`")
	only := fs.String("only", "", "run only the `proxy` or only the `tickets` service (default both)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *only != "" && *only != onlyProxy && *only != onlyTickets {
		return usagef("--only must be %q or %q", onlyProxy, onlyTickets)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()
	// Fewer collections of a small heap (internal/gctune); GOGC or
	// GOMEMLIMIT in the environment turns this off.
	defer gctune.Start(gctune.DefaultHeadroom)()
	a, err := newApp(ctx, cfg, log, *only)
	if err != nil {
		return err
	}
	defer a.close()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnSignal(ctx, a, hup, log)
	return a.run(ctx, nil)
}

// reloadOnSignal reloads the configuration's policies on each SIGHUP. An invalid
// new policy is rejected with its reason and the old one stays in force.
func reloadOnSignal(ctx context.Context, a *app, hup <-chan os.Signal, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := a.reload(ctx); err != nil {
				log.Error("reload rejected, previous policy stays in force", zap.Error(err))
				continue
			}
			log.Info("reloaded policies")
		}
	}
}

const (
	onlyProxy   = "proxy"
	onlyTickets = "tickets"
)

func (a *app) runs(part string) bool { return a.only == "" || a.only == part }

func describeListeners(a *app) string {
	s := ""
	if a.runs(onlyProxy) {
		s += fmt.Sprintf(" proxy=%s", a.cfg.Proxy.Listen)
	}
	if a.runs(onlyTickets) && a.cfg.Auth.Listen != "" {
		s += fmt.Sprintf(" tickets=%s", a.cfg.Auth.Listen)
	}
	if a.cfg.Metrics.Listen != "" {
		s += fmt.Sprintf(" metrics=%s", a.cfg.Metrics.Listen)
	}
	return s
}
