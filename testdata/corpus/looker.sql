-- Looker with a PostgreSQL connection. Looker is closed source; its generated SQL has the shape its SQL tab shows
-- (view.field aliases, "FETCH NEXT n ROWS ONLY", derived tables as CTEs) and fan-out-safe sums use the symmetric
-- aggregate that Looker's open-source sibling Malloy shares for PostgreSQL.

-- name: looker/connection-test
-- source: Looker (closed source): the connection test's trivial query
SELECT 1

-- name: looker/explore-count
-- source: Looker (closed source): an Explore with one dimension and a count measure, default row limit 500
SELECT
    orders.region  AS "orders.region",
    COUNT(*) AS "orders.count"
FROM public.orders  AS orders
GROUP BY
    1
ORDER BY
    2 DESC
FETCH NEXT 500 ROWS ONLY

-- name: looker/explore-dimension-group
-- source: Looker (closed source): a dimension_group of type time (month), TO_CHAR(DATE_TRUNC(...)) as Looker renders it for PostgreSQL
SELECT
    (TO_CHAR(DATE_TRUNC('month', orders.ordered_at ), 'YYYY-MM')) AS "orders.ordered_month",
    COALESCE(SUM(orders.total ), 0) AS "orders.total_revenue"
FROM public.orders  AS orders
GROUP BY
    (DATE_TRUNC('month', orders.ordered_at ))
ORDER BY
    1 DESC
FETCH NEXT 500 ROWS ONLY

-- name: looker/symmetric-aggregate
-- source: malloydata/malloy packages/malloy/src/dialect/postgres/postgres.ts: sqlSumDistinctHashedKey (Looker's PostgreSQL symmetric aggregate for a sum over a fanned-out join)
SELECT
    customers.country  AS "customers.country",
    COUNT(DISTINCT orders.order_id ) AS "orders.count",
    COALESCE(CAST( ( SUM(DISTINCT (CAST(FLOOR(COALESCE( orders.total ,0)*(1000000*1.0)) AS DECIMAL(65,0))) + ('x' || MD5( orders.order_id ::varchar))::bit(64)::bigint::DECIMAL(65,0)  *18446744073709551616 + ('x' || SUBSTR(MD5( orders.order_id ::varchar),17))::bit(64)::bigint::DECIMAL(65,0) ) - SUM(DISTINCT ('x' || MD5( orders.order_id ::varchar))::bit(64)::bigint::DECIMAL(65,0)  *18446744073709551616 + ('x' || SUBSTR(MD5( orders.order_id ::varchar),17))::bit(64)::bigint::DECIMAL(65,0)) )  AS DOUBLE PRECISION) / CAST((1000000*1.0) AS DOUBLE PRECISION), 0) AS "orders.total_revenue"
FROM public.customers  AS customers
LEFT JOIN public.orders  AS orders ON customers.tenant_id = orders.tenant_id AND customers.customer_id = orders.customer_id
LEFT JOIN public.order_items  AS order_items ON orders.tenant_id = order_items.tenant_id AND orders.order_id = order_items.order_id
GROUP BY
    1
ORDER BY
    2 DESC
FETCH NEXT 500 ROWS ONLY

-- name: looker/derived-table
-- source: Looker (closed source): a SQL derived table rendered as a CTE ahead of the Explore's query
WITH customer_facts AS (SELECT
        customer_id,
        COUNT(*) AS lifetime_orders,
        SUM(total) AS lifetime_value
      FROM public.orders
      GROUP BY 1
       )
SELECT
    customer_facts.lifetime_orders AS "customer_facts.lifetime_orders",
    COUNT(*) AS "customer_facts.count"
FROM customer_facts
GROUP BY
    1
ORDER BY
    1
FETCH NEXT 500 ROWS ONLY

-- name: looker/filter-relative-date
-- source: Looker (closed source): a relative date filter ("before 2030-01-01") and a yesno dimension
SELECT
    CASE WHEN orders.status = 'returned'  THEN 'Yes' ELSE 'No' END
 AS "orders.is_returned",
    COUNT(*) AS "orders.count"
FROM public.orders  AS orders
WHERE ((( orders.ordered_at  ) < ((TIMESTAMP '2030-01-01'))))
GROUP BY
    1
ORDER BY
    2 DESC
FETCH NEXT 500 ROWS ONLY
