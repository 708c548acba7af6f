-- pgwarden demo: a multi-tenant SaaS analytics schema. Every tenant-keyed table
-- carries tenant_id; products is shared reference data; internal_costs is
-- never exposed through the proxy.
CREATE TABLE tenants (
    tenant_id  text PRIMARY KEY,
    name       text NOT NULL,
    plan       text NOT NULL,
    created_at date NOT NULL
);

CREATE TABLE products (
    product_id int PRIMARY KEY,
    name       text NOT NULL,
    category   text NOT NULL,
    list_price numeric(10,2) NOT NULL
);

CREATE TABLE customers (
    tenant_id   text NOT NULL REFERENCES tenants,
    customer_id int  NOT NULL,
    name        text NOT NULL,
    email       text NOT NULL,
    phone       text,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);

CREATE TABLE orders (
    tenant_id   text NOT NULL,
    order_id    int  NOT NULL,
    customer_id int  NOT NULL,
    region      text NOT NULL CHECK (region IN ('EU', 'NA', 'APAC')),
    status      text NOT NULL,
    ordered_at  timestamptz NOT NULL,
    total       numeric(12,2) NOT NULL,
    PRIMARY KEY (tenant_id, order_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers
);

CREATE TABLE order_items (
    tenant_id  text NOT NULL,
    order_id   int  NOT NULL,
    line_no    int  NOT NULL,
    product_id int  NOT NULL REFERENCES products,
    quantity   int  NOT NULL,
    unit_price numeric(10,2) NOT NULL,
    PRIMARY KEY (tenant_id, order_id, line_no),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders
);

CREATE TABLE events (
    tenant_id   text   NOT NULL,
    event_id    bigint NOT NULL,
    customer_id int    NOT NULL,
    kind        text   NOT NULL,
    occurred_at timestamptz NOT NULL,
    payload     jsonb  NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);

CREATE TABLE internal_costs (
    tenant_id    text NOT NULL,
    month        date NOT NULL,
    infra_cost   numeric(12,2) NOT NULL,
    support_cost numeric(12,2) NOT NULL,
    PRIMARY KEY (tenant_id, month)
);

CREATE INDEX orders_tenant_ordered_at ON orders (tenant_id, ordered_at);
CREATE INDEX events_tenant_kind ON events (tenant_id, kind);
