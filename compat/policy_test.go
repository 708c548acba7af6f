package compat

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// mintSession asks the running demo for a session token with `pgwarden
// ticket --session`, as an operator would, and returns acme's connection
// parameters with that token as the password.
func mintSession(ctx context.Context, t *testing.T, tenant string, args ...string) (session, error) {
	s := acme(t)
	cmd := exec.CommandContext(ctx, demo.bin, append([]string{"ticket", "--config", demo.config, "--tenant", tenant,
		"--external-id", "compat-" + tenant, "--session"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return session{}, fmt.Errorf("pgwarden ticket: %v: %s", err, stderr)
	}
	s.Tenant, s.User, s.Password = tenant, tenant, strings.TrimSpace(string(out))
	return s, nil
}

func connectAs(ctx context.Context, s session) (*pgx.Conn, error) {
	return pgx.Connect(ctx, s.url())
}

// testPolicy checks that what a session sees follows its signed claims:
// another tenant, group pii, and a regions attribute.
func testPolicy(t *testing.T) {
	ctx := testCtx(t)
	if demo.config == "" {
		t.Fatal("the demo printed no config path")
	}
	check(t, "policy", "other-tenant", func() error {
		s, err := mintSession(ctx, t, "globex")
		if err != nil {
			return err
		}
		conn, err := connectAs(ctx, s)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		tenants, err := pgxStrings(ctx, conn, tenantsSQL)
		if err != nil {
			return err
		}
		nc, err := pgxInt(ctx, conn, "SELECT count(*) FROM customers")
		if err != nil {
			return err
		}
		no, err := pgxInt(ctx, conn, "SELECT count(*) FROM orders WHERE tenant_id IN ('acme', 'globex', 'initech')")
		if err != nil {
			return err
		}
		if err := sameList("tenants seen by globex", tenants, []string{"globex"}); err != nil {
			return err
		}
		return firstErr(wantCount("globex customers", nc, 150), wantCount("globex orders", no, 750))
	})
	check(t, "policy", "pii-group", func() error {
		s, err := mintSession(ctx, t, "acme", "--groups", "pii")
		if err != nil {
			return err
		}
		pii, err := connectAs(ctx, s)
		if err != nil {
			return err
		}
		defer pii.Close(ctx)
		plain, err := pgxConnect(ctx, t, pgx.QueryExecModeCacheStatement)
		if err != nil {
			return err
		}
		defer plain.Close(ctx)
		var piiEmail, plainEmail string
		var phones int64
		if err := pii.QueryRow(ctx, "SELECT email, (SELECT count(phone) FROM customers) FROM customers WHERE customer_id = 1").Scan(&piiEmail, &phones); err != nil {
			return fmt.Errorf("pii session: %w", err)
		}
		if err := plain.QueryRow(ctx, "SELECT email FROM customers WHERE customer_id = 1").Scan(&plainEmail); err != nil {
			return fmt.Errorf("plain session: %w", err)
		}
		if !strings.Contains(piiEmail, "@") || piiEmail == plainEmail {
			return fmt.Errorf("email of customer 1: pii session %q, plain session %q: want the address for pii only", piiEmail, plainEmail)
		}
		if phones == 0 {
			return fmt.Errorf("pii session sees no phone numbers")
		}
		_, err = plain.Exec(ctx, "SELECT phone FROM customers")
		return wantRefused("phone without group pii", err)
	})
	check(t, "policy", "regions-attribute", func() error {
		s, err := mintSession(ctx, t, "acme", "--attr", "regions=EU")
		if err != nil {
			return err
		}
		eu, err := connectAs(ctx, s)
		if err != nil {
			return err
		}
		defer eu.Close(ctx)
		plain, err := pgxConnect(ctx, t, pgx.QueryExecModeCacheStatement)
		if err != nil {
			return err
		}
		defer plain.Close(ctx)
		regions, err := pgxStrings(ctx, eu, "SELECT DISTINCT region FROM orders WHERE region IN ('EU', 'NA', 'APAC') OR true")
		if err != nil {
			return err
		}
		n, err := pgxInt(ctx, eu, "SELECT count(*) FROM orders")
		if err != nil {
			return err
		}
		want, err := pgxInt(ctx, plain, "SELECT count(*) FROM orders WHERE region = 'EU'")
		if err != nil {
			return err
		}
		if want == 0 || want == acmeOrders {
			return fmt.Errorf("acme has %d EU orders: the check needs some but not all", want)
		}
		return firstErr(sameList("regions seen with regions=EU", regions, []string{"EU"}), wantCount("orders seen with regions=EU", n, want))
	})
}
