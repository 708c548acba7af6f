// Malloy (npm @malloydata/malloy and @malloydata/db-postgres), the semantic
// model and report language from the Looker team, through pgwarden: it reads
// a table's schema from information_schema (table sources), or a query's from
// its row description and pg_type (SQL sources), compiles a model with joins
// and measures, and runs a report, a nested report and a fan-out-safe sum (its
// symmetric aggregates). Prints one JSON object as the other compat clients
// do; connection from PGHOST/PGPORT/PGDATABASE/PGUSER/PGPASSWORD.
'use strict';
const {SingleConnectionRuntime} = require('@malloydata/malloy');
const {PostgresConnection} = require('@malloydata/db-postgres');

const connection = new PostgresConnection('postgres', () => ({}), async () => ({
  host: process.env.PGHOST,
  port: Number(process.env.PGPORT),
  username: process.env.PGUSER,
  password: process.env.PGPASSWORD,
  databaseName: process.env.PGDATABASE,
}));
const runtime = new SingleConnectionRuntime({connection});

// The report model reads its sources through SQL sources, which need only the
// row description and pg_type; the schema check below uses a table source.
const model = runtime.loadModel(`
source: customers is postgres.sql("""SELECT * FROM public.customers""") extend {
  primary_key: customer_id
  measure: customer_count is count()
}
source: orders is postgres.sql("""SELECT * FROM public.orders""") extend {
  primary_key: order_id
  join_one: customers with customer_id
  measure:
    order_count is count()
    revenue is total.sum()
}
source: items is postgres.sql("""SELECT * FROM public.order_items""") extend {
  join_one: orders on orders.order_id = order_id
  measure: line_count is count()
}
`);

async function rows(query) {
  const result = await model.loadQuery(query).run();
  return {rows: result.data.toObject(), sql: result.sql};
}

const checks = {
  // A table source: Malloy reads the columns from information_schema.
  async 'table-schema'() {
    const m = runtime.loadModel(`source: customers is postgres.table('public.customers')`);
    const explore = await m.getExploreByName('customers');
    return {names: explore.allFields.filter(f => f.isAtomicField() && !f.isCalculation()).map(f => f.name)};
  },
  // A SQL source: Malloy reads the row description and pg_type.
  async 'sql-schema'() {
    const explore = await model.getExploreByName('customers');
    return {names: explore.allFields.filter(f => f.isAtomicField() && !f.isCalculation()).map(f => f.name)};
  },
  async report() {
    const {rows: r} = await rows(`run: orders -> { group_by: region; aggregate: order_count, revenue; order_by: region }`);
    const tenants = await rows(`run: orders -> { group_by: tenant_id }`);
    return {
      tenants: tenants.rows.map(x => x.tenant_id),
      names: r.map(x => x.region),
      counts: {orders: r.reduce((n, x) => n + Number(x.order_count), 0)},
      values: {revenue: r.reduce((n, x) => n + Number(x.revenue), 0).toFixed(2)},
    };
  },
  async nested() {
    const {rows: r} = await rows(`run: orders -> {
      group_by: customers.country
      aggregate: order_count
      nest: by_status is { group_by: status; aggregate: revenue }
    }`);
    let orders = 0;
    for (const c of r) orders += Number(c.order_count);
    return {counts: {orders, countries: r.length}};
  },
  // A sum over a fanned-out join: Malloy must count each order's total once.
  async symmetric() {
    const {rows: r, sql} = await rows(`run: items -> { aggregate: orders.revenue, line_count, orders.order_count }`);
    return {
      counts: {orders: Number(r[0].order_count), lines: Number(r[0].line_count)},
      values: {revenue: Number(r[0].revenue).toFixed(2), symmetric: String(/MD5|md5/.test(sql))},
    };
  },
};

(async () => {
  const out = {};
  for (const [name, fn] of Object.entries(checks)) {
    try {
      out[name] = (await fn()) || {};
    } catch (e) {
      out[name] = {error: String(e && e.message || e)};
      console.error(e);
    }
  }
  await connection.close();
  // A failed schema read can leave a pg client open that close() does not
  // end: exit once the result is written rather than wait for it.
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
})();
