package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/demo"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/rewrite"
)

// tenantSchemas is the tenant schema source of warehouse name's rewriter:
// nil when its policy keeps no relation one schema per tenant. Each
// tenant's schema is read with a connection of its own, on first use.
func tenantSchemas(cfg *config.File, name string, p *policy.Policy, model *policy.Catalog) (rewrite.TenantSchemaSource, error) {
	if !p.HasSchemaTenancy(policy.KindEmbed) && !p.HasSchemaTenancy(policy.KindInternal) {
		return nil, nil
	}
	dsn, timeout := cfg.Warehouses[name].DSN, cfg.Proxy.ConnectTimeout
	dial := func(ctx context.Context) (*pgx.Conn, error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return pgx.Connect(cctx, dsn)
	}
	tc, err := policy.NewTenantCatalog(p, model, policy.DialLoader(dial), 0, nil)
	if err != nil {
		return nil, fmt.Errorf("warehouse %s: %w", name, err)
	}
	return tc, nil
}

// checkTenantSchemas reports every tenant schema of warehouse name's policy
// that differs from the model (policy check --catalog); an error when one
// does.
func checkTenantSchemas(ctx context.Context, cfg *config.File, name string, stdout io.Writer) error {
	p, err := policy.Load(cfg.Warehouses[name].Policy)
	if err != nil || (!p.HasSchemaTenancy(policy.KindEmbed) && !p.HasSchemaTenancy(policy.KindInternal)) {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Proxy.ConnectTimeout)
	defer cancel()
	conn, err := pgx.Connect(cctx, cfg.Warehouses[name].DSN)
	if err != nil {
		return fmt.Errorf("warehouse %s: cannot read its tenant schemas: %w", name, err)
	}
	defer conn.Close(context.Background())
	model, err := policy.LoadCatalog(ctx, conn, p)
	if err != nil {
		return fmt.Errorf("warehouse %s: %w", name, err)
	}
	reps, err := policy.CheckTenantSchemas(ctx, conn, p, model)
	if err != nil {
		return fmt.Errorf("warehouse %s: %w", name, err)
	}
	bad := 0
	for _, r := range reps {
		if len(r.Problems) == 0 {
			fmt.Fprintf(stdout, "warehouse %s: tenant %s: schema %s: ok\n", name, r.Tenant, r.Schema)
			continue
		}
		bad++
		for _, pr := range r.Problems {
			fmt.Fprintf(stdout, "warehouse %s: tenant %s: schema %s: refused: %s\n", name, r.Tenant, r.Schema, pr)
		}
	}
	if bad > 0 {
		return fmt.Errorf("warehouse %s: %d tenant schema(s) differ from the policy's model and are refused for their tenants", name, bad)
	}
	return nil
}

// explainTenancy prints, for pgwarden explain, the tenancy model each
// relation of a rewritten statement was read under.
func explainTenancy(w io.Writer, p *policy.Policy, id *policy.Identity, relations []string) {
	rels := p.RelationsFor(id.Kind)
	names := append([]string(nil), relations...)
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		r := rels[n]
		if r == nil {
			continue // a catalog relation
		}
		switch {
		case r.Tenancy == policy.TenancyPassthrough && !r.Rewrite:
			parts = append(parts, n+": passthrough (the warehouse's row security alone; not rewritten)")
		case r.Tenancy == policy.TenancyPassthrough:
			parts = append(parts, n+": passthrough (the warehouse's row security, and pgwarden's fence as above)")
		case r.Shared:
			parts = append(parts, n+": shared")
		case r.Tenancy == policy.TenancySchema:
			s, ok := p.TenantSchemasFor(id.Kind).SchemaFor(id.Tenant)
			if !ok {
				s = "(none)"
			}
			parts = append(parts, fmt.Sprintf("%s: schema per tenant (%s.%s)", n, s, r.Name))
		default:
			parts = append(parts, fmt.Sprintf("%s: row tenancy (%s = %s)", n, r.TenantColumn, quoteLiteral(id.Tenant)))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "-- tenancy: %s\n", strings.Join(parts, "; "))
	}
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// provisionTenancy creates the demo's schema-per-tenant warehouse (database
// saas, testdata/tenancy) readable by the service account, writes its
// policy, and adds it to the config document doc.
func (d *demoRun) provisionTenancy(ctx context.Context, svcPassword string, doc map[string]any) error {
	su, err := pgx.Connect(ctx, d.cluster.DSN("postgres"))
	if err != nil {
		return err
	}
	_, err = su.Exec(ctx, "CREATE DATABASE "+demoTenancyWarehouse)
	su.Close(ctx)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, d.cluster.DSN(demoTenancyWarehouse))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if err := demo.LoadTenancy(ctx, conn, "pgwarden_svc", demoTenancyWarehouse); err != nil {
		return err
	}
	if err := os.WriteFile(d.path("tenancy-policy.yaml"), []byte(pgwarden.DemoTenancyPolicy), 0o644); err != nil {
		return err
	}
	doc["warehouses"].(map[string]any)[demoTenancyWarehouse] = map[string]any{
		"dsn": d.cluster.UserDSN(demoTenancyWarehouse, "pgwarden_svc", svcPassword), "policy": "tenancy-policy.yaml"}
	return nil
}

// demoTenancyQueries are for the printed sessions on the saas warehouse.
var demoTenancyQueries = []demoQuery{
	{"SELECT count(*) FROM orders;", "your tenant's schema only: acme 4, globex 6, initech 8"},
	{"SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 2;", "your schema's tables, named public"},
	{"SELECT count(*) FROM tenant_globex.orders;", "refused (42501): another tenant's schema is as a missing relation"},
	{"SELECT kind FROM shared.events;", "row tenancy beside it: your tenant's events only"},
}

func printTenancyDemo(w io.Writer) {
	fmt.Fprintf(w, `
Schema per tenant, beside row tenancy: the same sessions may use database %q (put dbname=%s in the psql
command), where each tenant has a schema of its own (tenant_acme, tenant_globex, initech_prod) that its
sessions see as public, and shared.events is keyed by a tenant column. Try there (and \dt; pgwarden explain
--config CONFIG --warehouse %s --tenant acme "SELECT * FROM orders" shows the model each relation runs under):
`, demoTenancyWarehouse, demoTenancyWarehouse, demoTenancyWarehouse)
	printQueries(w, demoTenancyQueries)
}
