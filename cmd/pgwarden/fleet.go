package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"

	"github.com/pgwarden/pgwarden/admin"
	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/proxy"
)

// newFleet makes this proxy replica a member of the fleet (auth/fleet.go):
// it answers the admin API's requests for its connections and cancels.
func (a *app) newFleet() (*auth.Fleet, error) {
	host, _ := os.Hostname()
	name := a.cfg.Proxy.Listen
	if host != "" {
		name = host + " " + name
	}
	srv := a.proxy
	return auth.NewFleet(a.store, name, map[string]auth.FleetHandler{
		admin.KindConnections: func(context.Context, json.RawMessage) (any, error) {
			return srv.Connections(), nil
		},
		admin.KindStats: func(_ context.Context, raw json.RawMessage) (any, error) {
			var args admin.StatsArgs
			if err := json.Unmarshal(raw, &args); err != nil {
				return nil, err
			}
			return a.stats.Snapshot(args.Window), nil
		},
		admin.KindCancel: func(ctx context.Context, raw json.RawMessage) (any, error) {
			var args admin.CancelArgs
			if err := json.Unmarshal(raw, &args); err != nil {
				return nil, err
			}
			err := srv.CancelConnection(ctx, args.Conn, func(s *auth.Session) bool {
				return !args.SpareOwners || !admin.OwnerSession(s, args.Owners)
			})
			switch {
			case errors.Is(err, proxy.ErrConnNotFound):
				return admin.CancelResult{Result: admin.CancelNotFound}, nil
			case errors.Is(err, proxy.ErrCancelRefused):
				return admin.CancelResult{Result: admin.CancelForbidden}, nil
			case err != nil:
				return nil, err
			}
			return admin.CancelResult{Result: admin.CancelDone}, nil
		},
	}, a.log.Named("fleet"))
}
