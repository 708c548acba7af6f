-- A product-usage funnel from jsonb events: per customer the first login, page
-- view, export and share, then conversion between steps per country.
WITH steps AS (
    SELECT e.customer_id,
           min(e.occurred_at) FILTER (WHERE e.kind = 'login')     AS first_login,
           min(e.occurred_at) FILTER (WHERE e.kind = 'page_view') AS first_view,
           min(e.occurred_at) FILTER (WHERE e.kind = 'export')    AS first_export,
           min(e.occurred_at) FILTER (WHERE e.kind = 'share')     AS first_share,
           avg((e.payload ->> 'ms')::int)                         AS avg_ms,
           count(DISTINCT e.payload ->> 'page')                   AS pages
    FROM events e
    GROUP BY e.customer_id
)
SELECT c.country,
       count(*)                                                        AS customers,
       count(s.first_login)                                            AS logged_in,
       count(s.first_view) FILTER (WHERE s.first_view >= s.first_login)   AS viewed_after_login,
       count(s.first_export) FILTER (WHERE s.first_export >= s.first_view) AS exported_after_view,
       count(s.first_share) FILTER (WHERE s.first_share >= s.first_export) AS shared_after_export,
       round(avg(s.avg_ms), 1)                                         AS avg_page_ms,
       max(s.pages)                                                    AS max_pages
FROM customers c
LEFT JOIN steps s ON s.customer_id = c.customer_id
GROUP BY c.country
ORDER BY customers DESC;
