-- Tableau Desktop/Server with PostgreSQL. Its PostgreSQL connector is closed source: the connect sequence is
-- psqlODBC's (postgresql-interfaces/psqlodbc), the catalog listing is psqlODBC's SQLTables, and the viz queries are
-- in the shape Tableau's logs show, built with the function formulas of Tableau's published PostgreSQL dialect
-- (tableau/connector-plugin-sdk samples/plugins/postgres_jdbc/dialect.tdd).

-- name: tableau/odbc-connect
-- source: postgresql-interfaces/psqlodbc connection.c: CC_send_settings / the connect-time SETs and isolation probe (also compat/chatter_test.go psqlodbc-connect)
SET DateStyle = 'ISO';SET extra_float_digits = 2;show transaction_isolation

-- name: tableau/odbc-lo-type
-- source: postgresql-interfaces/psqlodbc connection.c: the large-object type probe every psqlODBC connection sends
select oid, typbasetype from pg_type where typname = 'lo'

-- name: tableau/odbc-tables
-- source: postgresql-interfaces/psqlodbc info.c: PGAPI_Tables (SQLTables, Tableau's table list)
select relname, nspname, relkind from pg_catalog.pg_class c, pg_catalog.pg_namespace n where relkind in ('r', 'v', 'm', 'f', 'p') and nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_1') and n.oid = relnamespace order by nspname, relname

-- name: tableau/odbc-declare-fetch
-- source: postgresql-interfaces/psqlodbc statement.c: UseDeclareFetch (BEGIN, DECLARE ... WITH HOLD, first FETCH in one simple query)
BEGIN;declare "SQL_CUR0x1" cursor with hold for SELECT "orders"."order_id" AS "order_id", "orders"."total" AS "total" FROM "public"."orders" "orders";fetch 100 in "SQL_CUR0x1"

-- name: tableau/metadata-probe
-- source: Tableau (closed source): the column-metadata read it sends when a table is dragged in (no rows)
SELECT * FROM "public"."orders" "orders" WHERE (1 = 0)

-- name: tableau/viz-sum-by-region
-- source: Tableau (closed source): a bar chart, SUM(total) by region, aliases "sum:total:ok" (also compat/bisql_test.go)
SELECT "orders"."region" AS "region", SUM("orders"."total") AS "sum:total:ok" FROM "public"."orders" "orders" GROUP BY 1

-- name: tableau/viz-year-countd
-- source: tableau/connector-plugin-sdk samples/plugins/postgres_jdbc/dialect.tdd: YEAR (CAST(EXTRACT(YEAR FROM %1) AS INTEGER)) and COUNTD, in Tableau's query shape
SELECT CAST(EXTRACT(YEAR FROM "orders"."ordered_at") AS INTEGER) AS "yr:ordered_at:ok", COUNT(DISTINCT "orders"."customer_id") AS "ctd:customer_id:ok" FROM "public"."orders" "orders" GROUP BY 1

-- name: tableau/viz-contains-filter
-- source: tableau/connector-plugin-sdk samples/plugins/postgres_jdbc/dialect.tdd: CONTAINS ((STRPOS(CAST(%1 AS TEXT),CAST(%2 AS TEXT)) > 0)) and LOWER, as a filter
SELECT "customers"."country" AS "country", COUNT(DISTINCT "customers"."customer_id") AS "ctd:customer_id:ok" FROM "public"."customers" "customers" WHERE (STRPOS(CAST(LOWER(CAST("customers"."name" AS TEXT)) AS TEXT),CAST('a' AS TEXT)) > 0) GROUP BY 1

-- name: tableau/viz-join-top10
-- source: Tableau (closed source): a Top-10 filter over a two-table relationship, INNER JOIN on the composite key (the demo's totals tie, so which ten rows is open)
-- rowcount
SELECT "customers"."name" AS "name", SUM("orders"."total") AS "sum:total:ok" FROM "public"."orders" "orders" INNER JOIN "public"."customers" "customers" ON (("orders"."tenant_id" = "customers"."tenant_id") AND ("orders"."customer_id" = "customers"."customer_id")) GROUP BY 1 ORDER BY 2 DESC LIMIT 10

-- name: tableau/viz-datetrunc-quarter
-- source: tableau/connector-plugin-sdk samples/plugins/postgres_jdbc/dialect.tdd: DATETRUNC quarter (DATE_TRUNC) with a quick-filter on a date range
SELECT CAST(DATE_TRUNC('QUARTER', CAST("orders"."ordered_at" AS DATE)) AS DATE) AS "tqr:ordered_at:ok", AVG(CAST("orders"."total" AS DOUBLE PRECISION)) AS "avg:total:ok" FROM "public"."orders" "orders" WHERE (("orders"."ordered_at" >= (TIMESTAMP '2024-01-01 00:00:00.000')) AND ("orders"."ordered_at" <= (TIMESTAMP '2024-12-31 23:59:59.000'))) GROUP BY 1
