-- Least-privilege service account for pgwarden and the ticket store's database
-- (runs after the demo schema and data; demo passwords, change them).
-- The demo policy opens public.comments for writing, so its transactions
-- cannot be read-only by default: its privileges bound it (README "Writes").
CREATE ROLE pgwarden_svc LOGIN PASSWORD 'svc-demo-password';
REVOKE ALL ON DATABASE demo FROM PUBLIC;
GRANT CONNECT ON DATABASE demo TO pgwarden_svc;
GRANT USAGE ON SCHEMA public TO pgwarden_svc;
GRANT SELECT ON public.tenants, public.products, public.customers, public.orders,
                public.order_items, public.events, public.comments TO pgwarden_svc;
GRANT INSERT, UPDATE, DELETE ON public.comments TO pgwarden_svc;
-- internal_costs is not granted: it is not exposed through the proxy at all.

CREATE ROLE pgwarden_control LOGIN PASSWORD 'control-demo-password';
CREATE DATABASE pgwarden_control OWNER pgwarden_control;
