-- Signup cohorts and the share of each cohort that ordered N months later:
-- three chained CTEs, a join between them and a window over the cohort.
WITH cohorts AS (
    SELECT customer_id, date_trunc('month', created_at) AS cohort
    FROM customers
),
activity AS (
    SELECT o.customer_id, date_trunc('month', o.ordered_at) AS active_month
    FROM orders o
    GROUP BY 1, 2
),
retention AS (
    SELECT c.cohort,
           (extract(year FROM a.active_month) - extract(year FROM c.cohort)) * 12
             + extract(month FROM a.active_month) - extract(month FROM c.cohort) AS months_after,
           count(DISTINCT c.customer_id) AS active_customers
    FROM cohorts c
    JOIN activity a ON a.customer_id = c.customer_id
    GROUP BY 1, 2
)
SELECT cohort,
       months_after,
       active_customers,
       round(100.0 * active_customers / first_value(active_customers) OVER (PARTITION BY cohort ORDER BY months_after), 1) AS pct_of_first
FROM retention
WHERE months_after >= 0
ORDER BY cohort, months_after;
