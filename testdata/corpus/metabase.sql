-- Metabase (PostgreSQL driver): connect, table sync, field sync, FK/index sync, and the SQL its query processor
-- compiles for a question. HoneySQL forms rendered as Metabase renders them, with the demo schema's names.

-- name: metabase/show-timezone
-- source: metabase/metabase src/metabase/driver/postgres.clj: driver/db-default-timezone (show timezone;)
show timezone

-- name: metabase/enum-types
-- source: metabase/metabase src/metabase/driver/postgres.clj: enum-types
SELECT nspname, typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid IN (SELECT DISTINCT enumtypid FROM pg_enum e)

-- name: metabase/get-tables
-- source: metabase/metabase src/metabase/driver/postgres.clj: get-tables-sql (describe-database), schemas [public]
SELECT n.nspname AS schema, c.relname AS name, CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS type, d.description AS description, stat.n_live_tup AS estimated_row_count
FROM pg_catalog.pg_class AS c
INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid
LEFT JOIN pg_catalog.pg_description AS d ON (c.oid = d.objoid) AND (d.objsubid = 0) AND (d.classoid = 'pg_class'::regclass)
LEFT JOIN pg_stat_user_tables AS stat ON (n.nspname = stat.schemaname) AND (c.relname = stat.relname)
WHERE (c.relnamespace = n.oid) AND (n.nspname !~ '^pg_') AND (n.nspname <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND (n.nspname IN ('public'))
ORDER BY type ASC, schema ASC, name ASC

-- name: metabase/describe-fields
-- source: metabase/metabase src/metabase/driver/postgres.clj: sql-jdbc.sync/describe-fields-sql :postgres, schema public
SELECT "c"."column_name" AS "name", CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name") ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type", "c"."ordinal_position" - 1 AS "database-position", "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name", "pk"."column_name" IS NOT NULL AS "pk?", COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment", (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO') AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required", (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment"
FROM "information_schema"."columns" AS "c"
LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name" FROM "information_schema"."table_constraints" AS "tc" INNER JOIN "information_schema"."key_column_usage" AS "kc" ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name") WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk" ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name")
WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" IN ('public'))
UNION ALL
SELECT "pa"."attname" AS "name", CASE WHEN "ptn"."nspname" IN ('public', 'pg_catalog') THEN FORMAT('%s', "pt"."typname") ELSE FORMAT('"%s"."%s"', "ptn"."nspname", "pt"."typname") END AS "database-type", "pa"."attnum" - 1 AS "database-position", "pn"."nspname" AS "table-schema", "pc"."relname" AS "table-name", FALSE AS "pk?", NULL AS "field-comment", FALSE AS "database-required", FALSE AS "database-is-auto-increment"
FROM "pg_catalog"."pg_class" AS "pc"
INNER JOIN "pg_catalog"."pg_namespace" AS "pn" ON "pn"."oid" = "pc"."relnamespace"
INNER JOIN "pg_catalog"."pg_attribute" AS "pa" ON "pa"."attrelid" = "pc"."oid"
INNER JOIN "pg_catalog"."pg_type" AS "pt" ON "pt"."oid" = "pa"."atttypid"
INNER JOIN "pg_catalog"."pg_namespace" AS "ptn" ON "ptn"."oid" = "pt"."typnamespace"
WHERE ("pc"."relkind" = 'm') AND ("pa"."attnum" >= 1) AND ("pn"."nspname" IN ('public'))
ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC

-- name: metabase/describe-fks
-- source: metabase/metabase src/metabase/driver/postgres.clj: sql-jdbc.sync/describe-fks-sql :postgres, schema public
-- unordered
SELECT "fk_ns"."nspname" AS "fk-table-schema", "fk_table"."relname" AS "fk-table-name", "fk_column"."attname" AS "fk-column-name", "pk_ns"."nspname" AS "pk-table-schema", "pk_table"."relname" AS "pk-table-name", "pk_column"."attname" AS "pk-column-name"
FROM "pg_constraint" AS "c"
INNER JOIN "pg_class" AS "fk_table" ON "c"."conrelid" = "fk_table"."oid"
INNER JOIN "pg_namespace" AS "fk_ns" ON "c"."connamespace" = "fk_ns"."oid"
INNER JOIN "pg_attribute" AS "fk_column" ON "c"."conrelid" = "fk_column"."attrelid"
INNER JOIN "pg_class" AS "pk_table" ON "c"."confrelid" = "pk_table"."oid"
INNER JOIN "pg_namespace" AS "pk_ns" ON "pk_table"."relnamespace" = "pk_ns"."oid"
INNER JOIN "pg_attribute" AS "pk_column" ON "c"."confrelid" = "pk_column"."attrelid"
WHERE fk_ns.nspname !~ '^information_schema|catalog_history|pg_' AND ("c"."contype" = 'f'::char) AND ("fk_column"."attnum" = ANY(c.conkey)) AND ("pk_column"."attnum" = ANY(c.confkey)) AND ("fk_ns"."nspname" IN ('public'))
ORDER BY "fk-table-schema" ASC, "fk-table-name" ASC

-- name: metabase/describe-indexes
-- source: metabase/metabase src/metabase/driver/postgres.clj: sql-jdbc.sync/describe-indexes-sql :postgres, schema public
SELECT "tmp"."table-schema", "tmp"."table-name", TRIM(BOTH '"' FROM PG_CATALOG.PG_GET_INDEXDEF("tmp"."ci_oid", "tmp"."pos", FALSE)) AS "field-name"
FROM (SELECT "n"."nspname" AS "table-schema", "ct"."relname" AS "table-name", "ci"."oid" AS "ci_oid", (information_schema._pg_expandarray("i"."indkey")).n AS "pos"
      FROM "pg_catalog"."pg_class" AS "ct"
      INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "ct"."relnamespace" = "n"."oid"
      INNER JOIN "pg_catalog"."pg_index" AS "i" ON "ct"."oid" = "i"."indrelid"
      INNER JOIN "pg_catalog"."pg_class" AS "ci" ON "ci"."oid" = "i"."indexrelid"
      WHERE (PG_CATALOG.PG_GET_EXPR("i"."indpred", "i"."indrelid") IS NULL) AND n.nspname !~ '^information_schema|catalog_history|pg_' AND ("n"."nspname" IN ('public'))) AS "tmp"
WHERE "tmp"."pos" = 1

-- name: metabase/select-probe
-- source: metabase/metabase src/metabase/driver/sql_jdbc/sync/describe_database.clj: simple-select-probe-query (have-select-privilege?), public.orders
SELECT TRUE AS "_" FROM "public"."orders" WHERE 1 <> 1 LIMIT 0

-- name: metabase/select-probe-hidden
-- source: metabase/metabase src/metabase/driver/sql_jdbc/sync/describe_database.clj: simple-select-probe-query on a relation the session may not see (public.internal_costs)
SELECT TRUE AS "_" FROM "public"."internal_costs" WHERE 1 <> 1 LIMIT 0

-- name: metabase/fingerprint-sample
-- source: metabase/metabase src/metabase/driver/common/table_rows_sample.clj: table-rows-sample (field fingerprinting), orders
SELECT "public"."orders"."order_id" AS "order_id", "public"."orders"."region" AS "region", "public"."orders"."status" AS "status", "public"."orders"."total" AS "total" FROM "public"."orders" LIMIT 10000

-- name: metabase/distinct-values
-- source: metabase/metabase src/metabase/sync/analyze (field values): the distinct values of a category field, customers.country
SELECT "public"."customers"."country" AS "country" FROM "public"."customers" GROUP BY "public"."customers"."country" ORDER BY "public"."customers"."country" ASC LIMIT 1000

-- name: metabase/question-count-by-region
-- source: metabase/metabase src/metabase/driver/sql/query_processor.clj: MBQL aggregation count, breakout region (also compat/bisql_test.go)
SELECT "public"."orders"."region" AS "region", COUNT(*) AS "count" FROM "public"."orders" GROUP BY "public"."orders"."region" ORDER BY "public"."orders"."region" ASC LIMIT 2000

-- name: metabase/question-sum-by-month
-- source: metabase/metabase src/metabase/driver/postgres.clj: date-trunc :month with report time zone UTC (sql.qp/date :month), sum of total
SELECT CAST(DATE_TRUNC('month', ("public"."orders"."ordered_at" AT TIME ZONE 'UTC')) AS timestamp) AS "ordered_at", SUM("public"."orders"."total") AS "sum" FROM "public"."orders" GROUP BY CAST(DATE_TRUNC('month', ("public"."orders"."ordered_at" AT TIME ZONE 'UTC')) AS timestamp) ORDER BY CAST(DATE_TRUNC('month', ("public"."orders"."ordered_at" AT TIME ZONE 'UTC')) AS timestamp) ASC

-- name: metabase/question-join-filter
-- source: metabase/metabase src/metabase/driver/sql/query_processor.clj: explicit join with a filter and a distinct count
SELECT "Customers"."country" AS "Customers__country", COUNT(DISTINCT "public"."orders"."customer_id") AS "count" FROM "public"."orders" LEFT JOIN "public"."customers" AS "Customers" ON ("public"."orders"."customer_id" = "Customers"."customer_id") AND ("public"."orders"."tenant_id" = "Customers"."tenant_id") WHERE ("public"."orders"."status" = 'shipped') AND ("public"."orders"."total" > 100) GROUP BY "Customers"."country" ORDER BY "count" DESC, "Customers"."country" ASC LIMIT 2000

-- name: metabase/question-binning
-- source: metabase/metabase src/metabase/driver/sql/query_processor.clj: numeric binning (:num-bins) of total
SELECT (FLOOR((("public"."orders"."total" - 0.0) / 250.0)) * 250.0) + 0.0 AS "total", COUNT(*) AS "count" FROM "public"."orders" GROUP BY (FLOOR((("public"."orders"."total" - 0.0) / 250.0)) * 250.0) + 0.0 ORDER BY (FLOOR((("public"."orders"."total" - 0.0) / 250.0)) * 250.0) + 0.0 ASC

-- name: metabase/remark-prefixed
-- source: metabase/metabase src/metabase/query_processor/util.clj: query->remark (every query Metabase runs starts with its "-- Metabase:: userID … queryType … queryHash" comment)
-- Metabase:: userID: 1 queryType: MBQL queryHash: 8f2a6c1d0e9b4a7f3c5d2e1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a10
SELECT "public"."customers"."country" AS "country", COUNT(*) AS "count" FROM "public"."customers" GROUP BY "public"."customers"."country" ORDER BY "public"."customers"."country" ASC

-- name: metabase/question-filter-date
-- source: metabase/metabase src/metabase/driver/sql/query_processor.clj: a :between filter on a date column ("Previous 30 days" relative to a fixed date), count by status
SELECT "public"."orders"."status" AS "status", COUNT(*) AS "count" FROM "public"."orders" WHERE ("public"."orders"."ordered_at" >= CAST((CAST('2024-12-31' AS date) + INTERVAL '-30 day') AS date)) AND ("public"."orders"."ordered_at" < CAST(CAST('2024-12-31' AS date) AS date)) GROUP BY "public"."orders"."status" ORDER BY "public"."orders"."status" ASC

-- name: metabase/question-cumulative
-- source: metabase/metabase src/metabase/query_processor/middleware/cumulative_aggregations.clj: cum-sum by week (a window over the grouped query)
SELECT "source"."ordered_at" AS "ordered_at", SUM("source"."sum") OVER (ORDER BY "source"."ordered_at" ASC ROWS UNBOUNDED PRECEDING) AS "sum" FROM (SELECT DATE_TRUNC('week', "public"."orders"."ordered_at") AS "ordered_at", SUM("public"."orders"."total") AS "sum" FROM "public"."orders" GROUP BY DATE_TRUNC('week', "public"."orders"."ordered_at")) AS "source" ORDER BY "source"."ordered_at" ASC

-- name: metabase/model-nested
-- source: metabase/metabase src/metabase/driver/sql/query_processor.clj: a question on a saved question (the source query nested as "source")
SELECT "source"."region" AS "region", AVG("source"."total") AS "avg" FROM (SELECT "public"."orders"."order_id" AS "order_id", "public"."orders"."region" AS "region", "public"."orders"."total" AS "total" FROM "public"."orders" WHERE "public"."orders"."status" <> 'cancelled') AS "source" GROUP BY "source"."region" ORDER BY "source"."region" ASC
