-- Malloy, the semantic model and report language from the Looker team (npm @malloydata/malloy and
-- @malloydata/db-postgres 0.0.431, which compat's malloy client runs): the schema reads of a table source and of a
-- SQL source, then the SQL it compiles for a report, a nested report and a fan-out-safe sum, as it printed them
-- for the model in compat/clients/malloy/report.js.

-- name: malloy/table-schema
-- source: malloydata/malloy packages/malloy-db-postgres/src/postgres_connection.ts (npm @malloydata/db-postgres 0.0.431, dist/postgres_connection.js): fetchTableSchema (infoQuery, $1 = customers, $2 = public)
SELECT column_name, c.data_type, e.data_type as element_type
      FROM information_schema.columns c LEFT JOIN information_schema.element_types e
        ON ((c.table_catalog, c.table_schema, c.table_name, 'TABLE', c.dtd_identifier)
          = (e.object_catalog, e.object_schema, e.object_name, e.object_type, e.collection_type_identifier))
        WHERE table_name = 'customers'
          AND table_schema = 'public'

-- name: malloy/select-schema
-- source: malloydata/malloy packages/malloy-db-postgres/src/postgres_connection.ts (npm @malloydata/db-postgres 0.0.431, dist/postgres_connection.js): fetchSelectSchema (the row description of a SQL source, no rows)
SELECT * FROM (SELECT * FROM public.orders) _t LIMIT 0

-- name: malloy/select-schema-types
-- source: malloydata/malloy packages/malloy-db-postgres/src/postgres_connection.ts (npm @malloydata/db-postgres 0.0.431, dist/postgres_connection.js): fetchSelectSchema loadTypes (pg_type rows of the row description's type oids: text, int4, timestamptz, numeric)
SELECT
        oid,
        typname,
        typtype,
        typcategory,
        typelem,
        typbasetype,
        format_type(oid, NULL) AS formatted
      FROM pg_type
      WHERE oid IN (25, 23, 1184, 1700)

-- name: malloy/report
-- source: malloydata/malloy packages/malloy/src/model/malloy_query.ts (the PostgreSQL dialect's compiled query): run: orders -> { group_by: region; aggregate: order_count, revenue; order_by: region }
WITH __stage0 AS (
  SELECT 
     base."region" as "region",
     COUNT(1) as "order_count",
     COALESCE(SUM(base."total"),0) as "revenue"
  FROM (SELECT * FROM public.orders) as base
  GROUP BY 1
  ORDER BY 1 ASC NULLS LAST
)
SELECT row_to_json(finalStage) as row FROM __stage0 AS finalStage

-- name: malloy/nested-report
-- source: malloydata/malloy packages/malloy/src/model/malloy_query.ts: a nest (group_set stages, ARRAY_AGG ... FILTER, TO_JSONB) over a join_one
WITH __stage0 AS (
  SELECT
    group_set,
    customers_0."country" as "country__0",
    CASE WHEN group_set=0 THEN
      COUNT(1)
      END as "order_count__0",
    CASE WHEN group_set=1 THEN
      base."status"
      END as "status__1",
    CASE WHEN group_set=1 THEN
      COALESCE(SUM(base."total"),0)
      END as "revenue__1"
  FROM (SELECT * FROM public.orders) as base
   LEFT JOIN (SELECT * FROM public.customers) AS customers_0
    ON customers_0."customer_id"=base."customer_id"
  CROSS JOIN GENERATE_SERIES(0,1,1) as group_set
  GROUP BY 1,2,4
)
, __stage1 AS (
  SELECT
    "country__0" as "country",
    (ARRAY_AGG("order_count__0") FILTER (WHERE group_set=0 AND "order_count__0" IS NOT NULL))[1] as "order_count",
    COALESCE(TO_JSONB((ARRAY_AGG((SELECT TO_JSONB(__x) FROM (SELECT 
      "status__1" as "status", 
      "revenue__1"::DOUBLE PRECISION as "revenue"
      ) as __x)  ORDER BY  "revenue__1" DESC NULLS LAST ) FILTER (WHERE group_set=1))),'[]'::JSONB) as "by_status"
  FROM __stage0
  GROUP BY 1
  ORDER BY 2 desc NULLS LAST
)
SELECT row_to_json(finalStage) as row FROM __stage1 AS finalStage

-- name: malloy/symmetric-sum
-- source: malloydata/malloy packages/malloy/src/dialect/postgres/postgres.ts: sqlSumDistinctHashedKey (a sum over a fanned-out join)
WITH __stage0 AS (
  SELECT 
     COALESCE(CAST(SUM(DISTINCT ROUND(CAST(COALESCE(orders_0."total", 0) AS NUMERIC), 9) + ('x' || MD5(orders_0."order_id"::varchar))::bit(64)::bigint::DECIMAL(65,0)  *18446744073709551616 + ('x' || SUBSTR(MD5(orders_0."order_id"::varchar),17))::bit(64)::bigint::DECIMAL(65,0)) - SUM(DISTINCT ('x' || MD5(orders_0."order_id"::varchar))::bit(64)::bigint::DECIMAL(65,0)  *18446744073709551616 + ('x' || SUBSTR(MD5(orders_0."order_id"::varchar),17))::bit(64)::bigint::DECIMAL(65,0)) AS DOUBLE PRECISION),0) as "revenue",
     COUNT(1) as "line_count",
     COUNT(DISTINCT orders_0."order_id") as "order_count"
  FROM (SELECT * FROM public.order_items) as base
   LEFT JOIN (SELECT * FROM public.orders) AS orders_0
    ON orders_0."order_id"=base."order_id"
)
SELECT row_to_json(finalStage) as row FROM __stage0 AS finalStage
