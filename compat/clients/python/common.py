"""Shared harness of pgwarden's compat client scripts.

Each script runs its checks on its own connections (made from the PG* variables
the Go suite sets) and prints one JSON object: check name -> result. The Go side
(compat/scripts_test.go) decides pass or fail; a check that raises reports the
exception in "error".
"""
import json
import sys
import traceback

TENANTS_SQL = (
    "SELECT tenant_id FROM orders UNION SELECT tenant_id FROM customers UNION SELECT tenant_id FROM order_items"
    " UNION SELECT tenant_id FROM events UNION SELECT tenant_id FROM tenants"
)


def run(checks):
    out = {}
    for name, fn in checks:
        try:
            out[name] = fn() or {}
        except Exception as e:  # reported to the Go side, which fails the check
            out[name] = {"error": "%s: %s" % (type(e).__name__, str(e).strip())}
            traceback.print_exc(file=sys.stderr)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


def sqlstate(e):
    """The SQLSTATE of a psycopg2 or psycopg 3 error."""
    return getattr(e, "pgcode", None) or getattr(getattr(e, "diag", None), "sqlstate", None) or ""
