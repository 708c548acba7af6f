// node-postgres (npm pg) through pgwarden: simple protocol (no parameters),
// extended protocol (parameters), named prepared statements, a refusal.
// Connection from the PG* environment; prints one JSON object (check name ->
// result) for compat/scripts_test.go.
'use strict';
const { Client } = require('pg');

const TENANTS_SQL = 'SELECT tenant_id FROM orders UNION SELECT tenant_id FROM customers UNION SELECT tenant_id FROM order_items' +
  ' UNION SELECT tenant_id FROM events UNION SELECT tenant_id FROM tenants';

async function withClient(fn) {
  const client = new Client({ ssl: false, application_name: 'compat-node' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const count = async (c, q, values) => Number((await c.query(q, values)).rows[0].count);

const checks = {
  simple: () => withClient(async (c) => ({
    tenants: (await c.query(TENANTS_SQL)).rows.map((r) => r.tenant_id),
    counts: { customers: await count(c, 'SELECT count(*) FROM customers'), orders: await count(c, 'SELECT count(*) FROM orders') },
  })),
  extended: () => withClient(async (c) => ({
    counts: {
      acme: await count(c, 'SELECT count(*) FROM orders WHERE tenant_id = $1', ['acme']),
      globex: await count(c, 'SELECT count(*) FROM orders WHERE tenant_id = $1', ['globex']),
    },
  })),
  prepared: () => withClient(async (c) => {
    const q = (name, text, values) => c.query({ name, text, values });
    let customers = 0;
    for (let i = 0; i < 3; i++) {
      customers = Number((await q('customers_since', 'SELECT count(*) FROM customers WHERE created_at > $1', ['1900-01-01'])).rows[0].count);
    }
    return {
      tenants: (await q('tenants', TENANTS_SQL, [])).rows.map((r) => r.tenant_id),
      counts: { customers, orders: Number((await q('orders', 'SELECT count(*) FROM orders', [])).rows[0].count) },
    };
  }),
  refused: () => withClient(async (c) => {
    let sqlstate = '';
    try {
      await c.query('SELECT * FROM internal_costs');
    } catch (e) {
      sqlstate = e.code || '';
    }
    return { sqlstate, counts: { after: await count(c, 'SELECT count(*) FROM customers') } };
  }),
};

(async () => {
  const out = {};
  for (const [name, fn] of Object.entries(checks)) {
    try {
      out[name] = await fn();
    } catch (e) {
      out[name] = { error: `${e.name}: ${e.message}${e.code ? ` (SQLSTATE ${e.code})` : ''}` };
      console.error(e);
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
})();
