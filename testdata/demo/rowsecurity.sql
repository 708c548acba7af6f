-- The demo's pass-through part: support tickets guarded by the warehouse's own
-- row-level security, keyed on the role and the settings pgwarden sets from the
-- session (warehouse analytics_rls; policy testdata/demo/rowsecurity.yaml). The
-- roles are created by internal/demo, which also grants them to the service
-- account.
CREATE TABLE support_tickets (
    tenant_id text NOT NULL,
    ticket_id integer NOT NULL,
    subject   text NOT NULL,
    status    text NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id)
);
INSERT INTO support_tickets
SELECT t, g, 'ticket ' || g || ' of ' || t, (ARRAY['open', 'closed'])[1 + g % 2]
FROM unnest(ARRAY['acme', 'globex', 'initech']) AS t, generate_series(1, 5) AS g;
ALTER TABLE support_tickets ENABLE ROW LEVEL SECURITY;
-- A tenant's role sees its own tickets, and only with its tenant setting.
CREATE POLICY tenant_tickets ON support_tickets
    USING (current_user = 'tenant_' || tenant_id AND tenant_id = current_setting('app.tenant', true));
