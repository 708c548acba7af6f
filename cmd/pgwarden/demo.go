package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/pgwarden/pgwarden"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/demo"
	"github.com/pgwarden/pgwarden/internal/pgcluster"
)

const demoWarehouse = "analytics"

// demoTenancyWarehouse is the demo's schema-per-tenant warehouse (tenancy.go).
const demoTenancyWarehouse = "saas"

// demoRLSWarehouse is the demo's pass-through warehouse: the same database,
// reached through the warehouse's own row security beside row tenancy.
const demoRLSWarehouse = "analytics_rls"

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("demo", stderr)
	dir := fs.String("dir", "", "`directory` for the generated config, keys, policy and database (default a new temporary one)")
	port := fs.Int("port", 6432, "proxy `port` (a free one is picked when it is taken)")
	httpPort := fs.Int("http-port", 8080, "ticket service `port` (a free one is picked when it is taken)")
	metricsPort := fs.Int("metrics-port", 9187, "metrics `port` (a free one is picked when it is taken)")
	pgPort := fs.Int("pg-port", 0, "PostgreSQL `port` (default a free one)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	d, err := newDemo(*dir)
	if err != nil {
		return err
	}
	d.tenancy = true
	stopping := false
	defer func() {
		if cerr := d.cleanup(); cerr != nil && err == nil {
			err = cerr
		}
		if stopping && err == nil {
			fmt.Fprintln(stdout, "pgwarden demo stopped.")
		}
	}()
	fmt.Fprintf(stdout, "starting a throwaway PostgreSQL in %s ...\n", d.dir)
	cfg, apiKey, err := d.provision(ctx, *pgPort, *port, *httpPort, *metricsPort)
	if err != nil {
		return err
	}
	log, err := newLogger(config.Log{Level: "warn", Format: "console"}, stderr)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, log, "")
	if err != nil {
		return err
	}
	defer a.close()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		return err
	}
	if err := printDemo(ctx, stdout, a, cfg, apiKey); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\npgwarden demo is running; press Ctrl-C to stop it and remove everything it created.")
	err = <-done
	// The deferred a.close and d.cleanup stop the listeners and PostgreSQL;
	// the last of them says when that is done.
	stopping = true
	fmt.Fprintf(stdout, "\nstopping the demo: closing the proxy and the ticket service, stopping PostgreSQL, removing what it created in %s\n", d.dir)
	return err
}

// demoRun owns what the demo creates, so that cleanup removes exactly that.
type demoRun struct {
	dir        string
	removeDir  bool
	cluster    *pgcluster.Cluster
	createdAny []string
	// tenancy adds the schema-per-tenant warehouse (tenancy.go); the
	// tests that only need a running service leave it out.
	tenancy bool
}

func newDemo(dir string) (*demoRun, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "pgwarden-demo-")
		if err != nil {
			return nil, err
		}
		return &demoRun{dir: d, removeDir: true}, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, err
	}
	for _, name := range []string{"keys", "pgwarden.yaml", "policy.yaml", "rowsecurity.yaml"} {
		if _, err := os.Stat(filepath.Join(abs, name)); err == nil {
			return nil, fmt.Errorf("%s already holds %s from an earlier demo: remove it or pick another --dir", abs, name)
		}
	}
	return &demoRun{dir: abs}, nil
}

func (d *demoRun) path(name string) string {
	d.createdAny = append(d.createdAny, name)
	return filepath.Join(d.dir, name)
}

func (d *demoRun) cleanup() error {
	var errs []error
	if d.cluster != nil {
		errs = append(errs, d.cluster.Stop())
	}
	if d.removeDir {
		errs = append(errs, os.RemoveAll(d.dir))
	} else {
		for _, name := range d.createdAny {
			errs = append(errs, os.RemoveAll(filepath.Join(d.dir, name)))
		}
	}
	return errors.Join(errs...)
}

// provision starts PostgreSQL, loads the demo, creates the service account,
// keys, policy and config, and returns the loaded config and the API key.
func (d *demoRun) provision(ctx context.Context, pgPort, port, httpPort, metricsPort int) (*config.File, string, error) {
	var err error
	// The cluster lives in a temporary directory of its own, not under --dir: as
	// root the server runs as the postgres user, which may not reach --dir.
	d.cluster, err = pgcluster.Start(ctx, pgcluster.Options{Port: pgPort})
	if err != nil {
		return nil, "", err
	}
	su, err := pgx.Connect(ctx, d.cluster.DSN("postgres"))
	if err != nil {
		return nil, "", err
	}
	_, err = su.Exec(ctx, "CREATE DATABASE demo")
	su.Close(ctx)
	if err != nil {
		return nil, "", err
	}
	dbConn, err := pgx.Connect(ctx, d.cluster.DSN("demo"))
	if err != nil {
		return nil, "", err
	}
	defer dbConn.Close(ctx)
	if err := demo.Load(ctx, dbConn); err != nil {
		return nil, "", err
	}
	svcPassword, err := demo.CreateServiceAccount(ctx, dbConn, "pgwarden_svc", "demo")
	if err != nil {
		return nil, "", err
	}
	rlsPassword, err := demo.CreateRowSecurity(ctx, dbConn, "pgwarden_rls_svc", "demo")
	if err != nil {
		return nil, "", err
	}
	ctlPassword, err := demo.CreateControlDatabase(ctx, dbConn, "pgwarden_control", "pgwarden_control")
	if err != nil {
		return nil, "", err
	}
	signing, public, err := writeKeyPair(d.path("keys"))
	if err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(d.path("policy.yaml"), []byte(pgwarden.DemoPolicy), 0o644); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(d.path("rowsecurity.yaml"), []byte(pgwarden.DemoRowSecurityPolicy), 0o644); err != nil {
		return nil, "", err
	}
	apiKey := "pgw_" + demo.RandomSecret(24)
	sum := sha256.Sum256([]byte(apiKey))
	doc := map[string]any{
		"proxy": map[string]any{
			"listen":            hostPort(portOrFree(port)),
			"statement_timeout": "60s",
			// Embed sessions are bound to the demo's BI backend, this
			// machine: from any other address they get FATAL 28000.
			"embed_context": map[string]any{"networks": []string{"127.0.0.1/32", "::1/128"}},
		},
		"warehouses": map[string]any{
			demoWarehouse: map[string]any{
				"dsn":    d.cluster.UserDSN("demo", "pgwarden_svc", svcPassword),
				"policy": "policy.yaml",
			},
			demoRLSWarehouse: map[string]any{
				"dsn":    d.cluster.UserDSN("demo", "pgwarden_rls_svc", rlsPassword),
				"policy": "rowsecurity.yaml",
			},
		},
		"auth": map[string]any{
			"listen":           hostPort(portOrFree(httpPort)),
			"signing_key_file": signing,
			"verify_key_files": []string{public},
			"store_dsn":        d.cluster.UserDSN("pgwarden_control", "pgwarden_control", ctlPassword),
			"api_keys":         []map[string]any{{"name": "demo-host-app", "sha256": hex.EncodeToString(sum[:])}},
			"cors_origins":     []string{"http://localhost:3000", "http://127.0.0.1:3000"},
			// The database POST /v1/sessions names: the row-tenancy warehouse
			// (the demo has two).
			"connect": map[string]any{"database": demoWarehouse},
		},
		"metrics": map[string]any{"listen": hostPort(portOrFree(metricsPort))},
		"audit":   map[string]any{"path": "audit.jsonl", "include_sql": true},
		"log":     map[string]any{"level": "warn", "format": "console"},
	}
	if d.tenancy {
		if err := d.provisionTenancy(ctx, svcPassword, doc); err != nil {
			return nil, "", err
		}
	}
	d.createdAny = append(d.createdAny, "audit.jsonl")
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, "", err
	}
	cfgPath := d.path("pgwarden.yaml")
	header := "# generated by `pgwarden demo`; removed when the demo stops\n"
	if err := os.WriteFile(cfgPath, append([]byte(header), out...), 0o600); err != nil {
		return nil, "", err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, "", err
	}
	return cfg, apiKey, nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// portOrFree returns port when it can be bound on loopback now, else a free one.
func portOrFree(port int) int {
	if port > 0 {
		if l, err := net.Listen("tcp", hostPort(port)); err == nil {
			l.Close()
			return port
		}
	}
	p, err := pgcluster.FreePort()
	if err != nil {
		return port
	}
	return p
}

// demoQuery is a statement the demo suggests and what it shows. TestDemo
// runs each one as printed and checks that it shows that; the README lists
// the same statements.
type demoQuery struct{ SQL, Shows string }

// demoQueries are for the printed sessions: role querier, not in group pii.
var demoQueries = []demoQuery{
	{"SELECT DISTINCT tenant_id FROM orders;", "only your tenant"},
	{"SELECT name, email FROM customers ORDER BY customer_id LIMIT 3;", "email masked: not in group pii"},
	{"SELECT name, phone FROM customers LIMIT 3;", "refused (42501): phone is denied without group pii"},
	{"SELECT * FROM internal_costs;", "refused (42501): not in the policy"},
	{"INSERT INTO comments (order_id, body) VALUES (1, 'hi') RETURNING created_by;", "written as your tenant; its author from your session, hashed"},
	{"UPDATE comments SET body = 'mine' WHERE comment_id = 3;", "UPDATE 0: comment 3 is another tenant's"},
}

// demoPIIQueries are for the session of the printed ticket command (group
// pii, attribute regions=EU).
var demoPIIQueries = []demoQuery{
	{"SELECT name, email, phone FROM customers ORDER BY customer_id LIMIT 3;", "email and phone unmasked"},
	{"SELECT DISTINCT region FROM orders;", "only EU, from the regions attribute"},
}

// demoRLSQueries are for the printed pass-through session (warehouse
// analytics_rls, tenant acme).
var demoRLSQueries = []demoQuery{
	{"SELECT current_user, count(*) FROM support_tickets;", "runs as tenant_acme; the warehouse's own policy keeps 5 of 15"},
	{"SELECT DISTINCT o.tenant_id, t.tenant_id FROM orders o JOIN support_tickets t USING (tenant_id);", "row tenancy beside pass-through"},
	{"SET app.tenant = 'globex';", "refused (42501): only pgwarden sets what the policies read"},
}

func printQueries(w io.Writer, qs []demoQuery) {
	width := 0
	for _, q := range qs {
		width = max(width, len(q.SQL))
	}
	for _, q := range qs {
		fmt.Fprintf(w, "  %-*s  -- %s\n", width, q.SQL, q.Shows)
	}
}

func printDemo(ctx context.Context, w io.Writer, a *app, cfg *config.File, apiKey string) error {
	host, port, _ := net.SplitHostPort(cfg.Proxy.Listen)
	fmt.Fprintf(w, "\npgwarden demo is up.\n  proxy:          %s (PostgreSQL protocol, database %q)\n", cfg.Proxy.Listen, demoWarehouse)
	fmt.Fprintf(w, "  ticket service: http://%s\n  metrics:        http://%s/metrics\n  config:         %s\n  audit log:      %s\n",
		cfg.Auth.Listen, cfg.Metrics.Listen, cfg.Path, cfg.Audit.Path)
	fmt.Fprintf(w, "  embed context:  embed sessions connect only from %s (proxy.embed_context)\n",
		strings.Join(cfg.Proxy.EmbedContext.Networks, ", "))
	fmt.Fprintln(w, "\nOne session per demo tenant (valid 1 h; role querier, not in group pii):")
	var rlsTenant, rlsToken string
	for _, tenant := range demo.Tenants {
		token, sid, err := a.mintSession(ctx, sessionRequest{
			Tenant: tenant, ExternalID: tenant + "-analyst",
			Roles: map[string]string{demoWarehouse: "querier", demoTenancyWarehouse: "querier", demoRLSWarehouse: "querier"}, TTL: time.Hour,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n  # %s\n  PGPASSWORD='%s' psql \"host=%s port=%s dbname=%s user=%s sslmode=disable\"\n  (session id %s)\n",
			tenant, token, host, port, demoWarehouse, tenant, sid)
		if tenant == demo.Tenants[0] {
			rlsTenant, rlsToken = tenant, token
		}
	}
	self := selfCommand()
	fmt.Fprintln(w, "\nTry, in any of them:")
	printQueries(w, demoQueries)
	printTenancyDemo(w)
	fmt.Fprintf(w, `
Pass-through to the warehouse's own row security, beside row tenancy: database %s, where pgwarden
sets role tenant_<tenant> and app.tenant for the warehouse's policies (same session):
  # %s, pass-through
  PGPASSWORD='%s' psql "host=%s port=%s dbname=%s user=%s sslmode=disable"
In it:
`, demoRLSWarehouse, rlsTenant, rlsToken, host, port, demoRLSWarehouse, rlsTenant)
	printQueries(w, demoRLSQueries)
	fmt.Fprintf(w, `
A session in group pii that sees only region EU (the token goes to stdout, its session id to stderr):
  %s ticket --config %s --tenant acme --external-id alice --groups pii --attr regions=EU --session
In it:
`, self, cfg.Path)
	printQueries(w, demoPIIQueries)
	fmt.Fprintf(w, `
End a session (its open connections close within a second):
  %s revoke --config %s -- SESSION_ID

The ticket service, as a host application's backend calls it:
  curl -s -H 'Authorization: Bearer %s' \
       -d '{"external_id":"alice","tenant":"acme","connection_roles":{"%s":"querier"}}' http://%s/v1/tickets
  curl -s -d '{"ticket":"<ticket>"}' http://%s/v1/sessions
  curl -s -X POST -H 'Authorization: Bearer %s' http://%s/v1/sessions/<session_id>/revoke
(an API key revokes only the sessions minted through it; pgwarden revoke revokes any)
`, self, cfg.Path, apiKey, demoWarehouse, cfg.Auth.Listen, cfg.Auth.Listen, apiKey, cfg.Auth.Listen)
	return nil
}
