-- Schema per tenant (the django-tenants / Apartment layout) beside row
-- tenancy: tenant_template holds the logical model, each tenant has a schema
-- of the same shape, shared holds reference data and one row-keyed table.
CREATE SCHEMA shared;
CREATE TABLE shared.products (product_id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE shared.events (tenant_id text NOT NULL, kind text NOT NULL, at date NOT NULL);
INSERT INTO shared.products VALUES (1, 'widget'), (2, 'gadget');
INSERT INTO shared.events VALUES ('acme', 'login', '2024-01-01'), ('globex', 'login', '2024-01-02'), ('initech', 'export', '2024-01-03');

-- Makes a tenant's schema in the model's shape, with n customers and 2n
-- orders (drift.sql uses it too); NULL tenant: empty (the model).
CREATE FUNCTION public.pgwarden_tenant_schema(s text, tenant text, n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE SCHEMA %I', s);
  EXECUTE format('CREATE TABLE %I.customers (customer_id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, ssn text)', s);
  EXECUTE format('CREATE TABLE %I.orders (order_id int PRIMARY KEY, customer_id int NOT NULL REFERENCES %I.customers, region text NOT NULL, product_id int NOT NULL, amount numeric(12,2) NOT NULL)', s, s);
  EXECUTE format('CREATE INDEX ON %I.orders (region)', s);
  IF tenant IS NOT NULL THEN
    EXECUTE format('INSERT INTO %I.customers SELECT i, %L || '' customer '' || i, %L || i || ''@'' || %L || ''.example'', ''ssn-'' || %L || i FROM generate_series(1, %s) i', s, tenant, 'user', tenant, tenant, n);
    EXECUTE format('INSERT INTO %I.orders SELECT i, 1 + (i %% %s), CASE WHEN i %% 2 = 0 THEN ''EU'' ELSE ''NA'' END, 1 + (i %% 2), i * 10 FROM generate_series(1, %s) i', s, n, n * 2);
  END IF;
END $$;
SELECT public.pgwarden_tenant_schema('tenant_template', NULL, 0);
SELECT public.pgwarden_tenant_schema('tenant_acme', 'acme', 2);
SELECT public.pgwarden_tenant_schema('tenant_globex', 'globex', 3);
SELECT public.pgwarden_tenant_schema('initech_prod', 'initech', 4);
