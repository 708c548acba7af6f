-- Demo-schema corpus for the differential test: each statement's result
-- through the rewriter as tenant T must equal its result on a copy of the
-- database that holds only T's rows (masks applied).
SELECT * FROM customers;
SELECT * FROM orders WHERE status = 'shipped';
SELECT count(*), sum(total), avg(total) FROM orders;
SELECT region, status, count(*), sum(total) FROM orders GROUP BY ROLLUP (region, status);
SELECT c.name, c.email, sum(o.total) FROM customers c JOIN orders o USING (customer_id) GROUP BY c.name, c.email ORDER BY 3 DESC, 1 LIMIT 10;
SELECT c.customer_id, count(o.order_id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id GROUP BY 1;
SELECT p.category, sum(i.quantity * i.unit_price) FROM order_items i JOIN products p USING (product_id) GROUP BY 1;
SELECT * FROM tenants;
SELECT count(*) FROM products;
SELECT date_trunc('month', ordered_at) AS m, count(*) FROM orders GROUP BY 1;
SELECT customer_id FROM customers EXCEPT SELECT customer_id FROM orders WHERE status = 'returned';
SELECT customer_id FROM orders INTERSECT SELECT customer_id FROM customers WHERE country = 'DE';
SELECT order_id FROM orders WHERE total > (SELECT avg(total) FROM orders);
SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id AND o.total > 1500);
SELECT name FROM customers WHERE customer_id NOT IN (SELECT customer_id FROM orders WHERE region = 'APAC');
WITH top AS (SELECT customer_id, sum(total) AS s FROM orders GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5) SELECT c.name, top.s FROM top JOIN customers c USING (customer_id);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT n.i, count(o.order_id) FROM n LEFT JOIN orders o ON o.customer_id = n.i GROUP BY n.i;
SELECT c.customer_id, l.cnt FROM customers c, LATERAL (SELECT count(*) AS cnt FROM orders o WHERE o.customer_id = c.customer_id) l;
SELECT kind, count(*), min(occurred_at) FROM events GROUP BY kind;
SELECT e.payload, count(*) FROM events e GROUP BY 1;
SELECT order_id, rank() OVER (PARTITION BY region ORDER BY total DESC) FROM orders;
SELECT country, string_agg(email, ',' ORDER BY email) FROM customers GROUP BY country;
SELECT o.order_id, (SELECT count(*) FROM order_items i WHERE i.order_id = o.order_id) FROM orders o;
SELECT * FROM orders o FULL JOIN customers c ON c.customer_id = o.customer_id AND o.region = 'EU' WHERE c.customer_id < 20 OR o.order_id < 20;
SELECT t.name, count(c.customer_id) FROM tenants t JOIN customers c USING (tenant_id) GROUP BY t.name;
SELECT count(DISTINCT tenant_id) FROM orders;
SELECT tenant_id, count(*) FROM order_items GROUP BY tenant_id;
SELECT v.s, count(o.order_id) FROM (VALUES ('placed'), ('shipped'), ('nope')) AS v(s) LEFT JOIN orders o ON o.status = v.s GROUP BY v.s;
SELECT split_part(email, '@', 2), count(*) FROM customers GROUP BY 1;
TABLE tenants;
SELECT max(total) FILTER (WHERE region = 'EU'), min(total) FILTER (WHERE region = 'NA') FROM orders;
SELECT o.customer_id, array_agg(o.order_id ORDER BY o.order_id) FROM orders o GROUP BY 1 HAVING count(*) > 4;
SELECT DISTINCT region, status FROM orders;
