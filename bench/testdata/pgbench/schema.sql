-- pgbench's tables as `pgbench -i` creates them, plus the bench's tenant key.
CREATE TABLE pgbench_branches (bid int NOT NULL PRIMARY KEY, bbalance int, filler char(88)) WITH (fillfactor = 100);
CREATE TABLE pgbench_tellers (tid int NOT NULL PRIMARY KEY, bid int, tbalance int, filler char(84)) WITH (fillfactor = 100);
CREATE TABLE pgbench_accounts (aid int NOT NULL PRIMARY KEY, bid int, abalance int, filler char(84),
    tenant_id text NOT NULL DEFAULT 't1') WITH (fillfactor = 100);
CREATE INDEX pgbench_accounts_tenant_aid ON pgbench_accounts (tenant_id, aid);
INSERT INTO pgbench_branches VALUES (1, 0, '');
INSERT INTO pgbench_tellers SELECT t, 1, 0, '' FROM generate_series(1, 10) t;
INSERT INTO pgbench_accounts SELECT a, 1, 0, '', 't' || (a % 4 + 1) FROM generate_series(1, 1000) a;
