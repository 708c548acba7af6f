"""psycopg 3 through pgwarden: server-side prepared statements, binary
results, a server-side cursor, pipeline mode, a refusal."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psycopg  # noqa: E402
from common import TENANTS_SQL, run, sqlstate  # noqa: E402


def connect():
    return psycopg.connect("")


def select():
    with connect() as conn:
        tenants = [r[0] for r in conn.execute(TENANTS_SQL)]
        customers = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    return {"tenants": tenants, "counts": {"customers": customers, "orders": orders}}


def prepared():
    counts = {}
    with connect() as conn:
        # prepare=True: Parse of a named statement (_pg3_N), then Bind/Execute.
        for tenant in ("acme", "globex", "acme", "globex"):
            counts[tenant] = conn.execute(
                "SELECT count(*) FROM orders WHERE tenant_id = %s", (tenant,), prepare=True
            ).fetchone()[0]
    return {"counts": counts}


def binary():
    with connect() as conn, conn.cursor(binary=True) as cur:
        cur.execute("SELECT tenant_id, sum(total), max(ordered_at), count(*) FROM orders GROUP BY tenant_id")
        rows = cur.fetchall()
    types = ",".join(type(v).__name__ for v in rows[0][1:]) if rows else ""
    return {
        "tenants": [r[0] for r in rows],
        "counts": {"orders": sum(r[3] for r in rows)},
        "values": {"types": types},
    }


def server_cursor():
    with connect() as conn:
        with conn.cursor(name="compat_cursor") as cur:
            cur.itersize = 100
            cur.execute("SELECT tenant_id, order_id FROM orders WHERE total >= %s", (0,))
            tenants, rows = set(), 0
            for tenant, _ in cur:
                tenants.add(tenant)
                rows += 1
    return {"tenants": sorted(tenants), "counts": {"rows": rows}}


def pipeline():
    with connect() as conn:
        with conn.pipeline():
            c1 = conn.execute(TENANTS_SQL)
            c2 = conn.execute("SELECT count(*) FROM customers WHERE customer_id > %s", (-1,))
            c3 = conn.execute("SELECT count(*) FROM orders")
        tenants = [r[0] for r in c1.fetchall()]
        customers = c2.fetchone()[0]
        orders = c3.fetchone()[0]
    return {"tenants": tenants, "counts": {"customers": customers, "orders": orders}}


def refused():
    with connect() as conn:
        code = ""
        try:
            conn.execute("SELECT * FROM internal_costs")
        except psycopg.Error as e:
            code = sqlstate(e)
        conn.rollback()
        after = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
    return {"sqlstate": code, "counts": {"after": after}}


run([
    ("select", select),
    ("prepared", prepared),
    ("binary", binary),
    ("server-cursor", server_cursor),
    ("pipeline", pipeline),
    ("refused", refused),
])
