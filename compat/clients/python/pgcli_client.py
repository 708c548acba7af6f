"""pgcli (Debian's pgcli 3.5) through pgwarden, driven through its own classes
because it has no non-interactive mode: the connection, the completion refresh it
runs in the background on connect (schemas, tables, columns, functions, types,
foreign keys), the completions it then offers, and statements and backslash
commands evaluated and formatted as its prompt would."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import TENANTS_SQL, run  # noqa: E402

from pgcli.completion_refresher import CompletionRefresher  # noqa: E402
from pgcli.main import PGCli  # noqa: E402
from pgcli.pgcompleter import PGCompleter  # noqa: E402
from prompt_toolkit.document import Document  # noqa: E402

# pgcli writes its config and history under XDG_CONFIG_HOME on first start.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="pgcli-compat-")
cli = PGCli(never_passwd_prompt=True, less_chatty=True, row_limit=0)
completer = PGCompleter(smart_completion=True, pgspecial=cli.pgspecial, settings={})
refresh_errors = {}


def connect():
    cli.connect(database=os.environ["PGDATABASE"], host=os.environ["PGHOST"], user=os.environ["PGUSER"],
                port=os.environ["PGPORT"], passwd=os.environ["PGPASSWORD"])
    return {"values": {"dbname": cli.pgexecute.dbname, "server_version": str(cli.pgexecute.server_version)}}


def refresh():
    # What CompletionRefresher._bg_refresh does on connect, one refresher at a
    # time so that a failing one names itself (in pgcli it ends the refresh).
    executor = cli.pgexecute.copy()
    for name, refresher in CompletionRefresher.refreshers.items():
        try:
            refresher(completer, executor)
        except Exception as e:
            refresh_errors[name] = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0])
    executor.conn.close()
    if refresh_errors:
        raise RuntimeError("completion refreshers failed: %s" % refresh_errors)
    return {"names": sorted(CompletionRefresher.refreshers)}


def suggested(text, meta, position=None):
    doc = Document(text, cursor_position=len(text) if position is None else position)
    return sorted({c.text for c in completer.get_completions(doc, None) if c.display_meta_text == meta})


def complete_tables():
    return {"names": suggested("SELECT * FROM ", "table")}


def complete_columns():
    return {"names": suggested("SELECT  FROM customers", "column", position=7)}


def evaluate(sql):
    output, _ = cli._evaluate_command(sql)
    return list(output)


def table_rows(lines):
    """The rows of pgcli's psql-style table output, as lists of cells."""
    rows = []
    for line in lines:
        for l in str(line).splitlines():
            if l.startswith("|") and not l.startswith("|-"):
                rows.append([c.strip() for c in l.strip("|").split("|")])
    return rows[1:] if rows else rows  # drop the header


def query():
    tenants = [r[0] for r in table_rows(evaluate(TENANTS_SQL))]
    by_region = table_rows(evaluate("SELECT region, count(*) AS orders, sum(total) AS revenue FROM orders GROUP BY region ORDER BY region"))
    customers = int(table_rows(evaluate("SELECT count(*) FROM customers"))[0][0])
    return {"tenants": tenants, "counts": {"orders": sum(int(r[1]) for r in by_region), "customers": customers},
            "names": [r[0] for r in by_region]}


def backslash_dt():
    return {"names": [r[1] for r in table_rows(evaluate("\\dt"))]}


def refused():
    # pgcli prints a failing statement's error in place of its result.
    message = " ".join(str(l) for l in evaluate("SELECT * FROM internal_costs"))
    after = int(table_rows(evaluate("SELECT count(*) FROM customers"))[0][0])
    return {"values": {"message": message}, "counts": {"after": after}}


run([
    ("connect", connect),
    ("refresh", refresh),
    ("complete-tables", complete_tables),
    ("complete-columns", complete_columns),
    ("query", query),
    ("backslash-dt", backslash_dt),
    ("refused", refused),
])
