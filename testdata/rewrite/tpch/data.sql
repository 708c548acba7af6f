-- Deterministic TPC-H-shaped data for three tenants (acme, globex, initech),
-- sized to make most of the 22 queries return rows. tn is the tenant number;
-- it shifts every formula so that tenants' data differ while keys collide.
INSERT INTO region VALUES (0,'AFRICA','x'),(1,'AMERICA','x'),(2,'ASIA','x'),(3,'EUROPE','x'),(4,'MIDDLE EAST','x');
INSERT INTO nation SELECT k, n, r, 'x' FROM (VALUES
 (0,'ALGERIA',0),(1,'ARGENTINA',1),(2,'BRAZIL',1),(3,'CANADA',1),(4,'EGYPT',4),(5,'ETHIOPIA',0),(6,'FRANCE',3),
 (7,'GERMANY',3),(8,'INDIA',2),(9,'INDONESIA',2),(10,'IRAN',4),(11,'IRAQ',4),(12,'JAPAN',2),(13,'JORDAN',4),
 (14,'KENYA',0),(15,'MOROCCO',0),(16,'MOZAMBIQUE',0),(17,'PERU',1),(18,'CHINA',2),(19,'ROMANIA',3),
 (20,'SAUDI ARABIA',4),(21,'VIETNAM',2),(22,'RUSSIA',3),(23,'UNITED KINGDOM',3),(24,'UNITED STATES',1)) AS v(k, n, r);
INSERT INTO part SELECT k,
  (ARRAY['forest','green','almond','blush','ivory','navy','peach','lime'])[1 + k % 8] || ' ' ||
  (ARRAY['antique','chiffon','misty','steel','sky'])[1 + k % 5],
  'Manufacturer#' || (1 + k % 5), 'Brand#' || (1 + k % 5) || (1 + (k / 5) % 5),
  (ARRAY['STANDARD','SMALL','MEDIUM','LARGE','ECONOMY','PROMO'])[1 + k % 6] || ' ' ||
  (ARRAY['ANODIZED','BURNISHED','PLATED','POLISHED','BRUSHED'])[1 + (k / 6) % 5] || ' ' ||
  (ARRAY['TIN','NICKEL','BRASS','STEEL','COPPER'])[1 + (k / 30) % 5],
  1 + k % 50,
  (ARRAY['SM','LG','MED','JUMBO','WRAP'])[1 + k % 5] || ' ' || (ARRAY['CASE','BOX','BAG','JAR','PKG','PACK','CAN','DRUM'])[1 + (k / 5) % 8],
  900 + k % 200, 'c' || k
FROM generate_series(1, 400) AS k;

CREATE TEMP TABLE tn AS SELECT * FROM (VALUES ('acme', 0), ('globex', 1), ('initech', 2)) AS v(tenant_id, n);

INSERT INTO supplier SELECT t.tenant_id, k, 'Supplier#' || lpad(k::text, 9, '0'), t.tenant_id || ' addr ' || k,
  (k * 7 + t.n * 3) % 25, ((k * 7 + t.n * 3) % 25 + 10) || '-555-' || lpad(k::text, 4, '0'),
  (k * 131 + t.n * 17) % 10000 - 999,
  CASE WHEN (k + t.n) % 9 = 0 THEN 'Customer ' || t.tenant_id || ' Complaints' ELSE t.tenant_id || ' supplier ' || k END
FROM tn t, generate_series(1, 40) AS k;

INSERT INTO partsupp SELECT t.tenant_id, p, 1 + (p + i * 11 + t.n) % 40, (p * 37 + i + t.n * 5) % 9999 + 1,
  1 + (p * 13 + i * 7 + t.n) % 1000, t.tenant_id || ' ps'
FROM tn t, generate_series(1, 400) AS p, generate_series(0, 1) AS i;

INSERT INTO customer SELECT t.tenant_id, k, 'Customer#' || lpad(k::text, 9, '0'), t.tenant_id || ' street ' || k,
  (k * 3 + t.n) % 25, ((k * 3 + t.n) % 25 + 10) || '-555-' || lpad((k * 7)::text, 4, '0'),
  (k * 97 + t.n * 31) % 10000 - 999,
  (ARRAY['AUTOMOBILE','BUILDING','FURNITURE','HOUSEHOLD','MACHINERY'])[1 + (k + t.n) % 5],
  t.tenant_id || ' customer ' || k
FROM tn t, generate_series(1, 150) AS k;

INSERT INTO orders SELECT t.tenant_id, k, 1 + (k * 7 + t.n) % 120,
  (ARRAY['F','O','P'])[1 + (k + t.n) % 3], 0,
  date '1992-01-01' + (k * 37 + t.n * 11) % 2400,
  (ARRAY['1-URGENT','2-HIGH','3-MEDIUM','4-NOT SPECIFIED','5-LOW'])[1 + (k + t.n) % 5],
  'Clerk#' || lpad((k % 50)::text, 9, '0'), 0,
  CASE WHEN (k + t.n) % 13 = 0 THEN t.tenant_id || ' special requests' ELSE t.tenant_id || ' order ' || k END
FROM tn t, generate_series(1, 1500) AS k;

INSERT INTO lineitem SELECT o.tenant_id, o.o_orderkey, p.pk, 1 + (p.pk + ((o.o_orderkey + l) % 2) * 11 + t.n) % 40, l,
  1 + (o.o_orderkey * 3 + l * 7 + t.n) % 50,
  (1 + (o.o_orderkey * 3 + l * 7 + t.n) % 50) * (900 + p.pk % 200),
  ((o.o_orderkey + l) % 11) / 100.0, ((o.o_orderkey + l * 3) % 9) / 100.0,
  CASE WHEN o.o_orderdate + 30 + l <= date '1995-06-17' THEN (ARRAY['R','A'])[1 + (o.o_orderkey + l) % 2] ELSE 'N' END,
  CASE WHEN o.o_orderdate + 30 + l <= date '1995-06-17' THEN 'F' ELSE 'O' END,
  o.o_orderdate + 1 + (o.o_orderkey * 5 + l) % 120,
  o.o_orderdate + 30 + (o.o_orderkey + l * 3) % 60,
  o.o_orderdate + 2 + (o.o_orderkey * 5 + l) % 120 + (o.o_orderkey + l) % 30,
  (ARRAY['DELIVER IN PERSON','COLLECT COD','NONE','TAKE BACK RETURN'])[1 + (o.o_orderkey + l) % 4],
  (ARRAY['REG AIR','AIR','RAIL','SHIP','TRUCK','MAIL','FOB'])[1 + (o.o_orderkey * 3 + l) % 7],
  o.tenant_id || ' li'
FROM orders o JOIN tn t USING (tenant_id)
CROSS JOIN LATERAL generate_series(1, 1 + o.o_orderkey % 7) AS l
CROSS JOIN LATERAL (SELECT 1 + (o.o_orderkey * 13 + l * 29 + t.n) % 400 AS pk) p;

UPDATE orders o SET o_totalprice = s.total FROM (
  SELECT tenant_id, l_orderkey, sum(l_extendedprice * (1 + l_tax) * (1 - l_discount)) AS total
  FROM lineitem GROUP BY 1, 2) s
WHERE s.tenant_id = o.tenant_id AND s.l_orderkey = o.o_orderkey;
DROP TABLE tn;
ANALYZE;
