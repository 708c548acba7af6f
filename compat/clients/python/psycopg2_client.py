"""psycopg2 through pgwarden: plain queries, client-side parameters, named
(server-side) cursors, a refusal. Connection from the PG* environment."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psycopg2  # noqa: E402
from common import TENANTS_SQL, run, sqlstate  # noqa: E402


def connect():
    return psycopg2.connect("")


def select():
    with connect() as conn, conn.cursor() as cur:
        cur.execute(TENANTS_SQL)
        tenants = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT count(*) FROM customers")
        customers = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM orders")
        orders = cur.fetchone()[0]
    return {"tenants": tenants, "counts": {"customers": customers, "orders": orders}}


def params():
    counts = {}
    with connect() as conn, conn.cursor() as cur:
        for tenant in ("acme", "globex"):
            cur.execute("SELECT count(*) FROM orders WHERE tenant_id = %s", (tenant,))
            counts[tenant] = cur.fetchone()[0]
    return {"counts": counts}


def named_cursor(withhold, name="compat_cursor"):
    conn = connect()
    try:
        # DECLARE "compat_cursor" CURSOR [WITH HOLD] FOR ...; FETCH FORWARD 100 FROM "compat_cursor"; CLOSE.
        cur = conn.cursor(name=name, withhold=withhold)
        cur.itersize = 100
        cur.execute("SELECT tenant_id, order_id, total FROM orders ORDER BY order_id")
        tenants, rows = set(), 0
        for tenant, _order_id, _total in cur:
            tenants.add(tenant)
            rows += 1
        cur.close()
        conn.commit()
    finally:
        conn.close()
    return {"tenants": sorted(tenants), "counts": {"rows": rows}}


def refused():
    conn = connect()
    try:
        cur = conn.cursor()
        code = ""
        try:
            cur.execute("SELECT * FROM internal_costs")
        except psycopg2.Error as e:
            code = sqlstate(e)
        conn.rollback()
        cur.execute("SELECT count(*) FROM customers")
        after = cur.fetchone()[0]
    finally:
        conn.close()
    return {"sqlstate": code, "counts": {"after": after}}


run([
    ("select", select),
    ("params", params),
    ("named-cursor", lambda: named_cursor(False)),
    ("named-cursor-withhold", lambda: named_cursor(True)),
    ("named-cursor-mixed-case", lambda: named_cursor(False, "Compat Cursor")),
    ("refused", refused),
])
