package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/jackc/pgx/v5"
)

// planSample is the select workload's statement with a fixed key, explained
// on each target so that the report shows why their costs differ.
const planSample = "SELECT abalance FROM pgbench_accounts WHERE aid = 4244"

// targetPlan is what one target runs for planSample and how PostgreSQL
// executes it.
type targetPlan struct {
	Target string
	SQL    string
	Plan   string
	Err    string
}

// explainPlans explains planSample as direct (role app), with row-level
// security (role app_rls, tenant t1) and, when w is running, as pgwarden
// rewrites it (`pgwarden explain`, run as the service account).
func explainPlans(ctx context.Context, c *cluster, w *warden) []targetPlan {
	out := []targetPlan{
		explainAs(ctx, c, "direct", roleApp, "", planSample),
		explainAs(ctx, c, "rls", roleRLS, benchTenant, planSample),
	}
	if w != nil {
		sql, err := w.rewrite(ctx, benchTenant, whBench, planSample)
		if err != nil {
			out = append(out, targetPlan{Target: "pgwarden", Err: err.Error()})
		} else {
			out = append(out, explainAs(ctx, c, "pgwarden", roleSvc, "", sql))
		}
	}
	return out
}

func explainAs(ctx context.Context, c *cluster, target, role, tenant, sql string) targetPlan {
	tp := targetPlan{Target: target, SQL: sql}
	conn, err := pgx.Connect(ctx, c.pg.UserDSN(dbBench, role, c.passwords[role]))
	if err != nil {
		tp.Err = err.Error()
		return tp
	}
	defer conn.Close(context.Background())
	if tenant != "" {
		if _, err := conn.Exec(ctx, "SELECT set_config('app.tenant', $1, false)", tenant); err != nil {
			tp.Err = err.Error()
			return tp
		}
	}
	rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		tp.Err = err.Error()
		return tp
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tp.Err = err.Error()
		return tp
	}
	tp.Plan = strings.Join(lines, "\n")
	return tp
}

// rewrite returns what pgwarden sends the warehouse for sql in a session of
// tenant, from `pgwarden explain`.
func (w *warden) rewrite(ctx context.Context, tenant, warehouse, sql string) (string, error) {
	out, err := exec.CommandContext(ctx, w.bin, "explain", "--config", w.cfgPath, "--tenant", tenant,
		"--warehouse", warehouse, sql).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("pgwarden explain: %w: %s", err, tail(string(out), 400))
	}
	return strings.TrimSuffix(strings.TrimSpace(string(out)), ";"), nil
}
