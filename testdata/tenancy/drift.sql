-- For tests: a tenant schema that drifted from the model (refused, never
-- served) and a tenant the policy lists whose schema does not exist yet.
SELECT public.pgwarden_tenant_schema('tenant_hooli', 'hooli', 1);
ALTER TABLE tenant_hooli.customers ADD COLUMN notes text;
