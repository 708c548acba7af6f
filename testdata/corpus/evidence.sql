-- Evidence (evidence.dev) with its PostgreSQL source (node-postgres): the connection test, the schema setting, the
-- row-count wrapper it runs before each source query, and a source query of a report page.

-- name: evidence/test-connection
-- source: evidence-dev/evidence packages/datasources/postgres/index.cjs: testConnection (runQuery('SELECT 1;'))
SELECT 1

-- name: evidence/set-search-path
-- source: evidence-dev/evidence packages/datasources/postgres/index.cjs: runQuery, pool.on('connect') SET search_path TO ${schema} (schema option public)
SET search_path TO public

-- name: evidence/row-count-wrapper
-- source: evidence-dev/evidence packages/datasources/postgres/index.cjs: runQuery's lengthQuery (WITH root as (${cleanedString}) SELECT COUNT(*) as rows FROM root)
WITH root as (select region, status, count(*) as orders, sum(total) as revenue from orders group by region, status) SELECT COUNT(*) as rows FROM root

-- name: evidence/source-query
-- source: evidence-dev/evidence packages/datasources/postgres/index.cjs: runQuery's cursor over the source query (a report page's orders_by_region.sql)
select region, status, count(*) as orders, sum(total) as revenue from orders group by region, status

-- name: evidence/source-query-monthly
-- source: evidence-dev/evidence packages/datasources/postgres/index.cjs: runQuery's cursor over a time-series source query (date_trunc by month)
select date_trunc('month', ordered_at) as month, count(distinct customer_id) as active_customers, sum(total) as revenue from orders group by 1 order by 1

-- name: evidence/source-query-window
-- source: evidence-dev/evidence packages/datasources/postgres/index.cjs: runQuery's cursor over a source query with a window (running revenue per region for a line chart)
select region, date_trunc('month', ordered_at) as month, sum(sum(total)) over (partition by region order by date_trunc('month', ordered_at)) as running_revenue from orders group by 1, 2 order by 1, 2
