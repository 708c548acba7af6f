package proxy_test

import (
	"context"
	"os"
	"os/signal"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/proxy"
)

// How cmd/pgwarden wires the proxy: the real authenticator and rewriter come
// from packages auth and rewrite.
func ExampleNew() {
	var (
		authn    proxy.Authenticator // e.g. the auth package's session verifier
		rewriter proxy.Rewriter      // e.g. the rewrite package's rewriter for this warehouse
	)
	log, _ := zap.NewProduction()
	reg := prometheus.NewRegistry()
	srv, err := proxy.New(proxy.Config{
		Listen:           "0.0.0.0:6432",
		TLSCertFile:      "/etc/pgwarden/tls.crt",
		TLSKeyFile:       "/etc/pgwarden/tls.key",
		StatementTimeout: 0, // the warehouse's default
	}, proxy.Deps{
		Logger:        log,
		Authenticator: authn,
		Warehouses: map[string]*proxy.Warehouse{
			"analytics": proxy.NewWarehouse("analytics", "postgres://pgwarden_svc@warehouse:5432/analytics?sslmode=verify-full", rewriter),
		},
		Audit:   proxy.NewAuditLog(os.Stdout, false),
		Metrics: reg,
	})
	if err != nil {
		log.Fatal("proxy config", zap.Error(err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// On a policy reload: srv's warehouse picks up the new rewriter at the next statement.
	//   warehouses["analytics"].SetRewriter(newRewriter)
	if err := srv.ListenAndServe(ctx); err != nil {
		log.Fatal("proxy", zap.Error(err))
	}
}
