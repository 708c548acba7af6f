-- Customer lifetime value with rank within country: four joins and a window.
SELECT c.country,
       c.customer_id,
       c.name,
       count(DISTINCT o.order_id)                                   AS orders,
       sum(oi.quantity * oi.unit_price)                             AS lifetime_value,
       sum(oi.quantity * (oi.unit_price - p.list_price))            AS discount_given,
       count(DISTINCT p.category)                                   AS categories,
       rank() OVER (PARTITION BY c.country ORDER BY sum(oi.quantity * oi.unit_price) DESC) AS rank_in_country
FROM customers c
JOIN orders o       ON o.tenant_id = c.tenant_id AND o.customer_id = c.customer_id
JOIN order_items oi ON oi.tenant_id = o.tenant_id AND oi.order_id = o.order_id
JOIN products p     ON p.product_id = oi.product_id
LEFT JOIN tenants t ON t.tenant_id = c.tenant_id
GROUP BY c.country, c.customer_id, c.name
ORDER BY c.country, rank_in_country
LIMIT 100;
