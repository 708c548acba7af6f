"""SQLAlchemy (Debian's 1.4, psycopg2 driver) through pgwarden: the dialect's
connect-time probes, a Core query and the Inspector, as BI tools built on it
(Superset) use them."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sqlalchemy import create_engine, inspect, text  # noqa: E402
from common import TENANTS_SQL, run  # noqa: E402

# No host in the URL: psycopg2/libpq read the PG* environment.
engine = create_engine("postgresql+psycopg2://", future=True)


def connect():
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    d = engine.dialect
    return {"values": {"server_version_info": str(d.server_version_info), "default_schema_name": str(d.default_schema_name)}}


def select():
    with engine.connect() as conn:
        tenants = [r[0] for r in conn.execute(text(TENANTS_SQL))]
        customers = conn.execute(text("SELECT count(*) FROM customers")).scalar_one()
        orders = conn.execute(text("SELECT count(*) FROM orders WHERE tenant_id = :t"), {"t": "acme"}).scalar_one()
    return {"tenants": tenants, "counts": {"customers": customers, "orders": orders}}


def tables():
    return {"names": inspect(engine).get_table_names(schema="public")}


def columns():
    return {"names": [c["name"] for c in inspect(engine).get_columns("customers", schema="public")]}


def pkeys():
    return {"names": inspect(engine).get_pk_constraint("orders", schema="public")["constrained_columns"]}


def fkeys():
    names = []
    for fk in inspect(engine).get_foreign_keys("orders", schema="public"):
        for local, remote in zip(fk["constrained_columns"], fk["referred_columns"]):
            names.append("%s->%s.%s" % (local, fk["referred_table"], remote))
    return {"names": names}


run([
    ("connect", connect),
    ("select", select),
    ("tables", tables),
    ("columns", columns),
    ("pkeys", pkeys),
    ("fkeys", fkeys),
])
