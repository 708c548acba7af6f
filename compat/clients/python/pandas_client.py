"""pandas (Debian's python3-pandas 1.5) through pgwarden: read_sql_table, which
reflects the table with SQLAlchemy's Inspector before it reads it, read_sql_query
for a chart query, a chunked read, and a small revenue report whose figures are
checked against the rows the same session read."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pandas as pd  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402
from common import run  # noqa: E402

# pandas 1.5 calls Engine.execute, which future=True engines do not have.
engine = create_engine("postgresql+psycopg2://")
orders = None


def read_table():
    global orders
    orders = pd.read_sql_table("orders", engine, schema="public")
    return {"tenants": sorted(orders["tenant_id"].unique().tolist()), "counts": {"rows": len(orders)},
            "names": list(orders.columns), "values": {"ordered_at": str(orders["ordered_at"].dtype)}}


def read_masked():
    customers = pd.read_sql_table("customers", engine, schema="public")
    masked = int(customers["email"].str.startswith("***@").sum())
    return {"tenants": sorted(customers["tenant_id"].unique().tolist()), "names": list(customers.columns),
            "counts": {"customers": len(customers), "masked": masked}}


def chart_query():
    q = """SELECT region, date_trunc('month', ordered_at) AS month, count(*) AS orders, sum(total) AS revenue
           FROM orders GROUP BY 1, 2 ORDER BY 2, 1"""
    chart = pd.read_sql_query(q, engine, parse_dates=["month"])
    # The same figures computed by pandas from the rows read_table returned.
    mine = orders.groupby("region")["total"].sum()
    theirs = chart.groupby("region")["revenue"].sum()
    diff = {r: str(theirs.get(r)) + " vs " + str(mine.get(r)) for r in set(mine.index) | set(theirs.index)
            if abs(float(theirs.get(r, 0)) - float(mine.get(r, 0))) > 0.005}
    return {"counts": {"orders": int(chart["orders"].sum()), "months": int(chart["month"].nunique())},
            "values": {"mismatch": str(diff) if diff else "", "revenue": "%.2f" % float(chart["revenue"].sum())}}


def chunks():
    n, tenants = 0, set()
    for chunk in pd.read_sql_query("SELECT tenant_id, order_id, total FROM orders ORDER BY order_id", engine, chunksize=300):
        n += len(chunk)
        tenants |= set(chunk["tenant_id"])
    return {"tenants": sorted(tenants), "counts": {"rows": n}}


def report():
    customers = pd.read_sql_query("SELECT customer_id, country FROM customers", engine)
    joined = orders.merge(customers, on="customer_id", how="left")
    pivot = joined.pivot_table(index="country", columns="status", values="total", aggfunc="sum", fill_value=0)
    return {"counts": {"orders": int(joined["order_id"].count()), "countries": len(pivot.index)},
            "values": {"unmatched": str(int(joined["country"].isna().sum())),
                       "revenue": "%.2f" % float(pivot.to_numpy().sum()), "total": "%.2f" % float(orders["total"].sum())}}


run([
    ("read-table", read_table),
    ("read-masked", read_masked),
    ("chart-query", chart_query),
    ("chunks", chunks),
    ("report", report),
])
