-- Monthly revenue per region with running total, month-over-month change and
-- the region's share of each month: a CTE feeding three window functions.
WITH monthly AS (
    SELECT date_trunc('month', o.ordered_at) AS month,
           o.region,
           count(*)                           AS orders,
           sum(o.total)                       AS revenue
    FROM orders o
    WHERE o.status <> 'returned'
    GROUP BY 1, 2
)
SELECT month,
       region,
       orders,
       revenue,
       sum(revenue) OVER (PARTITION BY region ORDER BY month ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running_revenue,
       revenue - lag(revenue) OVER (PARTITION BY region ORDER BY month)                                   AS change,
       round(100 * revenue / nullif(sum(revenue) OVER (PARTITION BY month), 0), 1)                        AS share_pct
FROM monthly
ORDER BY month, region;
