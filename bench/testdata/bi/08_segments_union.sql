-- Customer segments as a UNION ALL of differently filtered aggregates with
-- EXISTS / NOT EXISTS / IN subqueries, and a LATERAL "latest order" lookup.
SELECT 'buyers' AS segment, count(*) AS customers
FROM customers c
WHERE EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = c.tenant_id AND o.customer_id = c.customer_id)
UNION ALL
SELECT 'never_bought', count(*)
FROM customers c
WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = c.tenant_id AND o.customer_id = c.customer_id)
UNION ALL
SELECT 'exporters', count(*)
FROM customers c
WHERE c.customer_id IN (SELECT e.customer_id FROM events e WHERE e.kind = 'export')
UNION ALL
SELECT 'recent_big_spenders', count(*)
FROM customers c
CROSS JOIN LATERAL (
    SELECT o.total, o.ordered_at
    FROM orders o
    WHERE o.tenant_id = c.tenant_id AND o.customer_id = c.customer_id
    ORDER BY o.ordered_at DESC
    LIMIT 1
) latest
WHERE latest.total > 500
ORDER BY segment;
