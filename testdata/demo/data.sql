-- Deterministic demo data: three tenants of different sizes, no randomness, so
-- that tests can state exact expected results. Rerunning on an empty schema
-- produces the same rows.
INSERT INTO tenants VALUES
    ('acme',    'Acme Corporation', 'enterprise', '2021-03-01'),
    ('globex',  'Globex Inc.',      'growth',     '2022-07-15'),
    ('initech', 'Initech LLC',      'starter',    '2023-01-10');

INSERT INTO products
SELECT p,
       (ARRAY['Widget','Gadget','Gizmo','Doohickey','Sprocket'])[1 + p % 5] || ' ' || p,
       (ARRAY['hardware','software','services'])[1 + p % 3],
       (5 + (p * 37) % 200)::numeric(10,2)
FROM generate_series(1, 40) AS p;

-- acme: 200 customers, globex: 150, initech: 100.
INSERT INTO customers
SELECT t.tenant_id, c,
       (ARRAY['Alice','Bob','Carol','Dave','Erin','Frank','Grace','Heidi'])[1 + c % 8] || ' ' || t.tenant_id || ' ' || c,
       lower((ARRAY['alice','bob','carol','dave','erin','frank','grace','heidi'])[1 + c % 8]) || '.' || c || '@' || t.tenant_id || '.example',
       CASE WHEN c % 7 = 0 THEN NULL ELSE '+1-555-' || lpad((c * 97 % 10000)::text, 4, '0') END,
       (ARRAY['DE','FR','US','CA','JP','AU','GB'])[1 + c % 7],
       timestamptz '2023-01-01 00:00:00+00' + (c * interval '1 day')
FROM (VALUES ('acme', 200), ('globex', 150), ('initech', 100)) AS t(tenant_id, n),
     generate_series(1, t.n) AS c;

-- Five orders per customer.
INSERT INTO orders
SELECT c.tenant_id, (c.customer_id - 1) * 5 + k, c.customer_id,
       (ARRAY['EU','NA','APAC'])[1 + (c.customer_id + k) % 3],
       (ARRAY['placed','shipped','delivered','returned'])[1 + (c.customer_id * k) % 4],
       timestamptz '2024-01-01 00:00:00+00' + (((c.customer_id * 13 + k * 29) % 365) * interval '1 day'),
       0
FROM customers c, generate_series(1, 5) AS k;

-- One to four lines per order.
INSERT INTO order_items
SELECT o.tenant_id, o.order_id, l,
       1 + (o.order_id * 7 + l * 3) % 40,
       1 + (o.order_id + l) % 5,
       p.list_price
FROM orders o
CROSS JOIN LATERAL generate_series(1, 1 + o.order_id % 4) AS l
JOIN products p ON p.product_id = 1 + (o.order_id * 7 + l * 3) % 40;

UPDATE orders o SET total = s.total
FROM (SELECT tenant_id, order_id, sum(quantity * unit_price) AS total FROM order_items GROUP BY 1, 2) s
WHERE s.tenant_id = o.tenant_id AND s.order_id = o.order_id;

-- Ten events per customer.
INSERT INTO events
SELECT c.tenant_id, (c.customer_id - 1) * 10 + e, c.customer_id,
       (ARRAY['login','page_view','export','share'])[1 + (c.customer_id + e) % 4],
       timestamptz '2024-01-01 00:00:00+00' + (((c.customer_id * 11 + e * 17) % 8760) * interval '1 hour'),
       jsonb_build_object('page', '/dash/' || (e % 6), 'ms', (c.customer_id * e * 31) % 2000, 'tenant', c.tenant_id)
FROM customers c, generate_series(1, 10) AS e;

-- A few comments per tenant (comment_id comes from the identity: 1 to 6).
INSERT INTO comments (tenant_id, order_id, created_by, body, resolved, created_at) VALUES
    ('acme',    1, 'u-alice', 'Shipping address confirmed', true,  '2024-02-01 09:00:00+00'),
    ('acme',    2, 'u-bob',   'Customer asked for a discount', false, '2024-02-02 10:00:00+00'),
    ('globex',  1, 'u-gina',  'globex secret: renegotiate contract', false, '2024-02-03 11:00:00+00'),
    ('globex',  3, 'u-gina',  'Late delivery', false, '2024-02-04 12:00:00+00'),
    ('initech', 1, 'u-ivan',  'Check invoice', false, '2024-02-05 13:00:00+00'),
    ('acme',    3, 'u-alice', 'Duplicate order?', false, '2024-02-06 14:00:00+00');

INSERT INTO internal_costs
SELECT t.tenant_id, d::date, (1000 + length(t.tenant_id) * 100 + extract(month FROM d) * 10)::numeric(12,2),
       (300 + extract(month FROM d) * 5)::numeric(12,2)
FROM tenants t, generate_series(date '2024-01-01', date '2024-12-01', interval '1 month') AS d;

ANALYZE;
