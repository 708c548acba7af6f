-- Top three products per region by revenue: row_number() in a derived table,
-- filtered outside, plus a correlated scalar subquery for the region total.
SELECT ranked.region,
       ranked.product,
       ranked.revenue,
       round(100 * ranked.revenue / (SELECT sum(o2.total) FROM orders o2 WHERE o2.region = ranked.region), 1) AS pct_of_region
FROM (
    SELECT o.region,
           p.name AS product,
           sum(oi.quantity * oi.unit_price) AS revenue,
           row_number() OVER (PARTITION BY o.region ORDER BY sum(oi.quantity * oi.unit_price) DESC) AS rn
    FROM orders o
    JOIN order_items oi ON oi.tenant_id = o.tenant_id AND oi.order_id = o.order_id
    JOIN products p ON p.product_id = oi.product_id
    GROUP BY o.region, p.name
) ranked
WHERE ranked.rn <= 3
ORDER BY ranked.region, ranked.rn;
