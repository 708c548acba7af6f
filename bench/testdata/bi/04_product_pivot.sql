-- A wide pivot: revenue per product category and region as columns, with
-- FILTER aggregates, the shape BI tools generate for cross-tab widgets.
SELECT date_trunc('quarter', o.ordered_at) AS quarter,
       sum(oi.quantity * oi.unit_price) FILTER (WHERE p.category = 'hardware' AND o.region = 'EU')   AS hardware_eu,
       sum(oi.quantity * oi.unit_price) FILTER (WHERE p.category = 'hardware' AND o.region = 'NA')   AS hardware_na,
       sum(oi.quantity * oi.unit_price) FILTER (WHERE p.category = 'hardware' AND o.region = 'APAC') AS hardware_apac,
       sum(oi.quantity * oi.unit_price) FILTER (WHERE p.category = 'software' AND o.region = 'EU')   AS software_eu,
       sum(oi.quantity * oi.unit_price) FILTER (WHERE p.category = 'software' AND o.region = 'NA')   AS software_na,
       sum(oi.quantity * oi.unit_price) FILTER (WHERE p.category = 'software' AND o.region = 'APAC') AS software_apac,
       sum(oi.quantity * oi.unit_price) FILTER (WHERE p.category = 'services' AND o.region = 'EU')   AS services_eu,
       sum(oi.quantity * oi.unit_price) FILTER (WHERE p.category = 'services' AND o.region = 'NA')   AS services_na,
       sum(oi.quantity * oi.unit_price) FILTER (WHERE p.category = 'services' AND o.region = 'APAC') AS services_apac,
       count(DISTINCT o.customer_id)                                                               AS buyers,
       count(DISTINCT o.order_id)                                                                  AS orders,
       avg(oi.quantity)::numeric(10,2)                                                             AS avg_quantity,
       max(o.total)                                                                                AS largest_order,
       min(o.total)                                                                                AS smallest_order,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY o.total)                                        AS median_order
FROM orders o
JOIN order_items oi ON oi.tenant_id = o.tenant_id AND oi.order_id = o.order_id
JOIN products p ON p.product_id = oi.product_id
GROUP BY 1
ORDER BY 1;
