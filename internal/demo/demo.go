// Package demo provisions the demo warehouse: it loads the multi-tenant demo
// schema and data into a database and creates the least-privilege service
// account that pgwarden connects as, and a control database for the ticket
// store. `pgwarden demo` and the end-to-end tests both use it.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden"
)

// ExposedTables are the demo tables the service account may read. internal_costs
// is deliberately absent: it is not exposed through the proxy at all, and the
// service account cannot read it either (defence in depth).
var ExposedTables = []string{"tenants", "products", "customers", "orders", "order_items", "events", "comments"}

// WritableTables are the demo tables the policy opens for writing: the
// service account may INSERT, UPDATE and DELETE on these and nothing else.
var WritableTables = []string{"comments"}

// Tenants of the demo data.
var Tenants = []string{"acme", "globex", "initech"}

// Load creates the demo schema and its deterministic data in the database conn is on.
func Load(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, pgwarden.DemoSchema); err != nil {
		return fmt.Errorf("demo schema: %w", err)
	}
	if _, err := conn.Exec(ctx, pgwarden.DemoData); err != nil {
		return fmt.Errorf("demo data: %w", err)
	}
	return nil
}

// CreateServiceAccount creates a login role that can read only the exposed
// demo tables of database db and write only the writable ones, and returns
// its password. conn must be a superuser connection to db. Its transactions
// are not read-only by default (writes could not run); its privileges are
// what bounds it.
func CreateServiceAccount(ctx context.Context, conn *pgx.Conn, role, db string) (password string, err error) {
	password = RandomSecret(16)
	ident := pgx.Identifier{role}.Sanitize()
	stmts := []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s", ident, quoteLiteral(password)),
		fmt.Sprintf("REVOKE ALL ON DATABASE %s FROM PUBLIC", pgx.Identifier{db}.Sanitize()),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", pgx.Identifier{db}.Sanitize(), ident),
		fmt.Sprintf("GRANT USAGE ON SCHEMA public TO %s", ident),
	}
	for _, t := range ExposedTables {
		stmts = append(stmts, fmt.Sprintf("GRANT SELECT ON public.%s TO %s", pgx.Identifier{t}.Sanitize(), ident))
	}
	for _, t := range WritableTables {
		stmts = append(stmts, fmt.Sprintf("GRANT INSERT, UPDATE, DELETE ON public.%s TO %s", pgx.Identifier{t}.Sanitize(), ident))
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return "", fmt.Errorf("service account: %w", err)
		}
	}
	return password, nil
}

// CreateControlDatabase creates a login role owning a new database db for the
// ticket service's store, and returns the role's password.
func CreateControlDatabase(ctx context.Context, conn *pgx.Conn, role, db string) (password string, err error) {
	password = RandomSecret(16)
	ident := pgx.Identifier{role}.Sanitize()
	for _, s := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s", ident, quoteLiteral(password)),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{db}.Sanitize(), ident),
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return "", fmt.Errorf("control database: %w", err)
		}
	}
	return password, nil
}

// RandomSecret returns n random bytes as hex.
func RandomSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

func quoteLiteral(s string) string {
	// Only ever called with hex secrets, but quote properly regardless.
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}

// TenancySchemas are the schemas of the schema-per-tenant demo warehouse
// (testdata/tenancy): the model, one per tenant, and the shared one.
var TenancySchemas = []string{"shared", "tenant_template", "tenant_acme", "tenant_globex", "initech_prod"}

// LoadTenancy creates the schema-per-tenant demo in the database conn is on
// (db, as a superuser) and lets role, the service account, read it.
func LoadTenancy(ctx context.Context, conn *pgx.Conn, role, db string) error {
	if _, err := conn.Exec(ctx, pgwarden.DemoTenancySchema); err != nil {
		return fmt.Errorf("schema-per-tenant demo: %w", err)
	}
	ident := pgx.Identifier{role}.Sanitize()
	stmts := []string{
		fmt.Sprintf("REVOKE ALL ON DATABASE %s FROM PUBLIC", pgx.Identifier{db}.Sanitize()),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", pgx.Identifier{db}.Sanitize(), ident),
	}
	for _, s := range TenancySchemas {
		s = pgx.Identifier{s}.Sanitize()
		stmts = append(stmts, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", s, ident),
			fmt.Sprintf("GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s", s, ident))
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("schema-per-tenant demo: %w", err)
		}
	}
	return nil
}

// CreateRowSecurity loads the demo's pass-through table into database db
// and creates what the warehouse's own row security needs: a role per
// tenant (tenant_<tenant>) that may read it and the demo's orders, and a
// login role for pgwarden granted those roles and nothing else (no SELECT
// of its own, no BYPASSRLS), whose password it returns. conn must be a
// superuser connection to db, with the demo schema loaded.
func CreateRowSecurity(ctx context.Context, conn *pgx.Conn, role, db string) (password string, err error) {
	if _, err := conn.Exec(ctx, pgwarden.DemoRowSecuritySQL); err != nil {
		return "", fmt.Errorf("row security demo: %w", err)
	}
	password = RandomSecret(16)
	ident := pgx.Identifier{role}.Sanitize()
	stmts := []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN NOBYPASSRLS PASSWORD %s", ident, quoteLiteral(password)),
		fmt.Sprintf("ALTER ROLE %s SET default_transaction_read_only = on", ident),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", pgx.Identifier{db}.Sanitize(), ident),
	}
	for _, t := range Tenants {
		tr := pgx.Identifier{"tenant_" + t}.Sanitize()
		stmts = append(stmts,
			fmt.Sprintf("CREATE ROLE %s NOLOGIN", tr),
			fmt.Sprintf("GRANT USAGE ON SCHEMA public TO %s", tr),
			fmt.Sprintf("GRANT SELECT ON public.support_tickets, public.orders TO %s", tr),
			fmt.Sprintf("GRANT %s TO %s", tr, ident))
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return "", fmt.Errorf("row security demo: %w", err)
		}
	}
	return password, nil
}
