-- Grafana's PostgreSQL data source: the query editor's metadata queries (postgresMetaQuery.ts), the feature
-- auto-detection on save, and panel queries after macro expansion (pkg/tsdb/grafana-postgresql-datasource/macros.go).

-- name: grafana/version
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts: getVersion
SELECT current_setting('server_version_num')::int/100 as version

-- name: grafana/timescaledb-version
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts: getTimescaleDBVersion
SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'

-- name: grafana/show-schemas
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts: showSchemas
SELECT schema_name AS "name"
    FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema', 'pg_catalog', 'pg_toast', '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_internal', '_timescaledb_config', 'timescaledb_information', 'timescaledb_experimental')
    ORDER BY schema_name

-- name: grafana/show-tables-schema
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts: showTables(schema) for public
SELECT quote_ident(table_name) AS "table"
      FROM information_schema.tables
      WHERE quote_ident(table_schema) = 'public'
      ORDER BY 1

-- name: grafana/show-tables
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts: showTables() with buildSchemaConstraint
SELECT
    CASE WHEN quote_ident(table_schema) IN (SELECT CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END FROM generate_series(array_lower(string_to_array(current_setting('search_path'),','),1), array_upper(string_to_array(current_setting('search_path'),','),1)) as i, string_to_array(current_setting('search_path'),',') s)
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_internal', '_timescaledb_config', 'timescaledb_information', 'timescaledb_experimental')
    ORDER BY CASE WHEN quote_ident(table_schema) IN (SELECT CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END FROM generate_series(array_lower(string_to_array(current_setting('search_path'),','),1), array_upper(string_to_array(current_setting('search_path'),','),1)) as i, string_to_array(current_setting('search_path'),',') s) THEN 0 ELSE 1 END, 1

-- name: grafana/get-schema
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts: getSchema('orders')
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('orders'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('orders'))[1]
          AND quote_ident(table_name) = (parse_ident('orders'))[2]
        ELSE quote_ident(table_name) = 'orders'
          AND quote_ident(table_schema) IN (SELECT CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END FROM generate_series(array_lower(string_to_array(current_setting('search_path'),','),1), array_upper(string_to_array(current_setting('search_path'),','),1)) as i, string_to_array(current_setting('search_path'),',') s)
      END

-- name: grafana/get-schema-qualified
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts: getSchema('public.customers')
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('public.customers'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('public.customers'))[1]
          AND quote_ident(table_name) = (parse_ident('public.customers'))[2]
        ELSE quote_ident(table_name) = 'public.customers'
      END

-- name: grafana/time-series
-- source: grafana/grafana pkg/tsdb/grafana-postgresql-datasource/macros.go: $__timeGroupAlias(ordered_at, '1d'), $__timeFilter(ordered_at) expanded (floor(extract(epoch ...)/86400)*86400, BETWEEN literals)
SELECT floor(extract(epoch from ordered_at)/86400)*86400 AS "time", region AS metric, sum(total) AS value
FROM orders
WHERE ordered_at BETWEEN '2024-01-01T00:00:00Z' AND '2024-12-31T23:59:59Z'
GROUP BY 1, 2
ORDER BY 1, 2

-- name: grafana/time-series-unixepoch
-- source: grafana/grafana pkg/tsdb/grafana-postgresql-datasource/macros.go: $__unixEpochGroupAlias and $__timeFilter on a timestamptz column, count per week
SELECT floor(extract(epoch from ordered_at)/604800)*604800 AS "time", count(*) AS "orders"
FROM orders
WHERE ordered_at >= to_timestamp(1704067200) AND ordered_at <= to_timestamp(1735689599)
GROUP BY 1
ORDER BY 1

-- name: grafana/table-panel
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource (SQL builder, table format): column selection with LIMIT 50
SELECT status, count(order_id) AS "count", avg(total) AS "avg" FROM orders GROUP BY status ORDER BY status LIMIT 50

-- name: grafana/variable-query
-- source: grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/VariableQueryEditor.tsx: a dashboard variable's query (__text/__value)
SELECT DISTINCT country AS __text, country AS __value FROM customers ORDER BY 1

-- name: grafana/json-panel
-- source: grafana/grafana pkg/tsdb/grafana-postgresql-datasource/macros.go: $__timeGroupAlias(occurred_at, '1h') over a jsonb field a panel reads (events.payload is redacted for this session)
SELECT floor(extract(epoch from occurred_at)/3600)*3600 AS "time", payload->>'kind' AS metric, count(*) AS value
FROM events
WHERE occurred_at BETWEEN '2024-01-01T00:00:00Z' AND '2025-12-31T23:59:59Z'
GROUP BY 1, 2
ORDER BY 1, 2
