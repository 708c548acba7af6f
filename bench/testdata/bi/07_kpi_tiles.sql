-- A dashboard's KPI tiles in one round trip: a row of scalar subqueries, each
-- its own relation reference, as some BI tools batch them.
SELECT (SELECT count(*) FROM customers)                                              AS customers,
       (SELECT count(*) FROM customers WHERE created_at >= now() - interval '90 days') AS new_customers,
       (SELECT count(*) FROM orders)                                                 AS orders,
       (SELECT sum(total) FROM orders WHERE status <> 'returned')                    AS net_revenue,
       (SELECT avg(total) FROM orders)                                               AS avg_order,
       (SELECT count(*) FROM orders WHERE status = 'returned')                       AS returns,
       (SELECT sum(quantity) FROM order_items)                                       AS units,
       (SELECT count(DISTINCT product_id) FROM order_items)                          AS products_sold,
       (SELECT count(*) FROM events WHERE kind = 'login')                            AS logins,
       (SELECT count(*) FROM events WHERE kind = 'export')                           AS exports,
       (SELECT count(DISTINCT customer_id) FROM events)                              AS active_users,
       (SELECT max(ordered_at) FROM orders)                                          AS last_order_at,
       (SELECT plan FROM tenants LIMIT 1)                                            AS plan;
