-- Apache Superset's PostgreSQL engine spec goes through SQLAlchemy 1.4 (Debian python3-sqlalchemy 1.4.46): the dialect's
-- initialization on the first connection, the Inspector calls behind "add dataset" and the dataset's column sync
-- (texts as the installed SQLAlchemy sends them, parameters inlined by psycopg2's mogrify), then the chart queries
-- Superset builds around a dataset.

-- name: superset/version
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect._get_server_version_info (rel_1_4)
select pg_catalog.version()

-- name: superset/current-schema
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect._get_default_schema_name (rel_1_4)
select current_schema()

-- name: superset/standard-conforming-strings
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.initialize (rel_1_4)
show standard_conforming_strings

-- name: superset/isolation-level
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_isolation_level (rel_1_4)
show transaction isolation level

-- name: superset/hstore-oids
-- source: psycopg/psycopg2 lib/extras.py: HstoreAdapter.get_oids (SQLAlchemy's psycopg2 dialect calls it on connect)
SELECT t.oid, typarray
FROM pg_type t JOIN pg_namespace ns
    ON typnamespace = ns.oid
WHERE typname = 'hstore'

-- name: superset/schema-names
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_schema_names (rel_1_4), for public.orders
SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' ORDER BY nspname

-- name: superset/table-names
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_table_names (rel_1_4), for public.orders
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind in ('r', 'p')

-- name: superset/view-names
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_view_names (rel_1_4), for public.orders
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm')

-- name: superset/has-table
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.has_table (rel_1_4), for public.orders
select relname from pg_class c join pg_namespace n on n.oid=c.relnamespace where n.nspname='public' and relname='orders'

-- name: superset/table-oid
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_table_oid (get_columns) (rel_1_4), for public.orders
SELECT c.oid
            FROM pg_catalog.pg_class c
            LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE (n.nspname = 'public')
            AND c.relname = 'orders' AND c.relkind in
            ('r', 'v', 'm', 'f', 'p')

-- name: superset/columns
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_columns (rel_1_4), for public.orders
SELECT a.attname,
              pg_catalog.format_type(a.atttypid, a.atttypmod),
              (
                SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid)
                FROM pg_catalog.pg_attrdef d
                WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum
                AND a.atthasdef
              ) AS DEFAULT,
              a.attnotnull,
              a.attrelid as table_oid,
              pgd.description as comment,
              a.attgenerated as generated,
                              (SELECT json_build_object(
                    'always', a.attidentity = 'a',
                    'start', s.seqstart,
                    'increment', s.seqincrement,
                    'minvalue', s.seqmin,
                    'maxvalue', s.seqmax,
                    'cache', s.seqcache,
                    'cycle', s.seqcycle)
                FROM pg_catalog.pg_sequence s
                JOIN pg_catalog.pg_class c on s.seqrelid = c."oid"
                WHERE c.relkind = 'S'
                AND a.attidentity != ''
                AND s.seqrelid = pg_catalog.pg_get_serial_sequence(
                    a.attrelid::regclass::text, a.attname
                )::regclass::oid
                ) as identity_options                
            FROM pg_catalog.pg_attribute a
            LEFT JOIN pg_catalog.pg_description pgd ON (
                pgd.objoid = a.attrelid AND pgd.objsubid = a.attnum)
            WHERE a.attrelid = {{oid:public.orders}}
            AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum

-- name: superset/domains
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect._load_domains (get_columns) (rel_1_4), for public.orders
SELECT t.typname as "name",
               pg_catalog.format_type(t.typbasetype, t.typtypmod) as "attype",
               not t.typnotnull as "nullable",
               t.typdefault as "default",
               pg_catalog.pg_type_is_visible(t.oid) as "visible",
               n.nspname as "schema"
            FROM pg_catalog.pg_type t
               LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
            WHERE t.typtype = 'd'

-- name: superset/enums
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect._load_enums (get_columns) (rel_1_4), for public.orders
-- unordered
SELECT t.typname as "name",
               -- no enum defaults in 8.4 at least
               -- t.typdefault as "default",
               pg_catalog.pg_type_is_visible(t.oid) as "visible",
               n.nspname as "schema",
               e.enumlabel as "label"
            FROM pg_catalog.pg_type t
                 LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
                 LEFT JOIN pg_catalog.pg_enum e ON t.oid = e.enumtypid
            WHERE t.typtype = 'e'
        ORDER BY "schema", "name", e.oid

-- name: superset/pk-columns
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_pk_constraint (rel_1_4), for public.orders
SELECT a.attname
                FROM pg_attribute a JOIN (
                    SELECT unnest(ix.indkey) attnum,
                           generate_subscripts(ix.indkey, 1) ord
                    FROM pg_index ix
                    WHERE ix.indrelid = {{oid:public.orders}} AND ix.indisprimary
                    ) k ON a.attnum=k.attnum
                WHERE a.attrelid = {{oid:public.orders}}
                ORDER BY k.ord

-- name: superset/pk-name
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_pk_constraint (rel_1_4), for public.orders
SELECT conname
           FROM  pg_catalog.pg_constraint r
           WHERE r.conrelid = {{oid:public.orders}} AND r.contype = 'p'
           ORDER BY 1

-- name: superset/foreign-keys
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_foreign_keys (rel_1_4), for public.orders
SELECT r.conname,
                pg_catalog.pg_get_constraintdef(r.oid, true) as condef,
                n.nspname as conschema
          FROM  pg_catalog.pg_constraint r,
                pg_namespace n,
                pg_class c

          WHERE r.conrelid = {{oid:public.orders}} AND
                r.contype = 'f' AND
                c.oid = confrelid AND
                n.oid = c.relnamespace
          ORDER BY 1

-- name: superset/indexes
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_indexes (rel_1_4), for public.orders
SELECT
                  i.relname as relname,
                  ix.indisunique, ix.indexprs,
                  a.attname, a.attnum, c.conrelid, ix.indkey::varchar,
                  ix.indoption::varchar, i.reloptions, am.amname,
                  pg_get_expr(ix.indpred, ix.indrelid),
                  ix.indnkeyatts as indnkeyatts
              FROM
                  pg_class t
                        join pg_index ix on t.oid = ix.indrelid
                        join pg_class i on i.oid = ix.indexrelid
                        left outer join
                            pg_attribute a
                            on t.oid = a.attrelid and a.attnum = ANY(ix.indkey)
                        left outer join
                            pg_constraint c
                            on (ix.indrelid = c.conrelid and
                                ix.indexrelid = c.conindid and
                                c.contype in ('p', 'u', 'x'))
                        left outer join
                            pg_am am
                            on i.relam = am.oid
              WHERE
                  t.relkind IN ('r', 'v', 'f', 'm', 'p')
                  and t.oid = {{oid:public.orders}}
                  and ix.indisprimary = 'f'
              ORDER BY
                  t.relname,
                  i.relname

-- name: superset/unique-constraints
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_unique_constraints (rel_1_4), for public.orders
SELECT
                cons.conname as name,
                cons.conkey as key,
                a.attnum as col_num,
                a.attname as col_name
            FROM
                pg_catalog.pg_constraint cons
                join pg_attribute a
                  on cons.conrelid = a.attrelid AND
                    a.attnum = ANY(cons.conkey)
            WHERE
                cons.conrelid = {{oid:public.orders}} AND
                cons.contype = 'u'

-- name: superset/check-constraints
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_check_constraints (rel_1_4), for public.orders
SELECT
                cons.conname as name,
                pg_get_constraintdef(cons.oid) as src
            FROM
                pg_catalog.pg_constraint cons
            WHERE
                cons.conrelid = {{oid:public.orders}} AND
                cons.contype = 'c'

-- name: superset/table-comment
-- source: sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/base.py: PGDialect.get_table_comment (rel_1_4), for public.orders
SELECT
                pgd.description as table_comment
            FROM
                pg_catalog.pg_description pgd
            WHERE
                pgd.objsubid = 0 AND
                pgd.objoid = {{oid:public.orders}}

-- name: superset/chart-virtual-dataset
-- source: apache/superset superset/models/helpers.py: ExploreMixin.get_sqla_query (a virtual dataset wrapped as virtual_table; also compat/bisql_test.go)
SELECT region AS region, COUNT(*) AS count FROM (SELECT * FROM orders) AS virtual_table GROUP BY region ORDER BY count DESC LIMIT 1000

-- name: superset/chart-timeseries
-- source: apache/superset superset/db_engine_specs/postgres.py: PostgresBaseEngineSpec._time_grain_expressions P1M (DATE_TRUNC('month', {col})), SUM metric
SELECT DATE_TRUNC('month', ordered_at) AS ordered_at, sum(total) AS "SUM(total)" FROM public.orders WHERE ordered_at >= TO_TIMESTAMP('2024-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') AND ordered_at < TO_TIMESTAMP('2025-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') GROUP BY DATE_TRUNC('month', ordered_at) ORDER BY "SUM(total)" DESC LIMIT 10000

-- name: superset/chart-samples
-- source: apache/superset superset/common/query_actions.py: _get_samples (the dataset's samples pane)
SELECT customer_id AS customer_id, name AS name, email AS email, country AS country FROM public.customers LIMIT 1000

-- name: superset/sqllab-preview
-- source: apache/superset superset/db_engine_specs/base.py: BaseEngineSpec.select_star (SQL Lab's table preview, latest_partition off)
-- rowcount
SELECT tenant_id,
       order_id,
       customer_id,
       region,
       status,
       ordered_at,
       total
FROM public.orders
LIMIT 100

-- name: superset/filter-values
-- source: apache/superset superset/connectors/sqla/models.py: SqlaTable.values_for_column (a native filter's options)
SELECT DISTINCT status AS column_values FROM (SELECT * FROM public.orders) AS virtual_table LIMIT 10000

-- name: superset/test-connection
-- source: apache/superset superset/commands/database/test_connection.py: the connection test pings the engine (SQLAlchemy 1.4 PGDialect_psycopg2.do_ping sends SELECT 1)
SELECT 1

-- name: superset/chart-big-number-trend
-- source: apache/superset superset/db_engine_specs/postgres.py: time grain P1W (DATE_TRUNC('week', {col})), COUNT(*) metric, a Big Number with Trendline (weeks tie on count)
-- unordered
SELECT DATE_TRUNC('week', ordered_at) AS ordered_at, COUNT(*) AS count FROM public.orders GROUP BY DATE_TRUNC('week', ordered_at) ORDER BY count DESC LIMIT 10000

-- name: superset/chart-pie-with-other
-- source: apache/superset superset/models/helpers.py: ExploreMixin.get_sqla_query with series limit (the inner query picks the top series, joined back; countries tie, so which five is open)
-- rowcount
SELECT country AS country, COUNT(*) AS count FROM public.customers JOIN (SELECT country AS country__, COUNT(*) AS mme_inner__ FROM public.customers GROUP BY country ORDER BY mme_inner__ DESC LIMIT 5) AS series_limit ON country = country__ GROUP BY country ORDER BY count DESC LIMIT 100

-- name: superset/chart-fifteen-minutes
-- source: apache/superset superset/db_engine_specs/postgres.py: PostgresBaseEngineSpec._time_grain_expressions PT15M (DATE_TRUNC('hour', {col}) + INTERVAL '15 minutes' * FLOOR(EXTRACT(MINUTE FROM {col}) / 15))
-- unordered
SELECT DATE_TRUNC('hour', occurred_at) + INTERVAL '15 minutes' * FLOOR(EXTRACT(MINUTE FROM occurred_at) / 15) AS occurred_at, kind AS kind, COUNT(*) AS count FROM public.events GROUP BY DATE_TRUNC('hour', occurred_at) + INTERVAL '15 minutes' * FLOOR(EXTRACT(MINUTE FROM occurred_at) / 15), kind ORDER BY count DESC LIMIT 10000

-- name: superset/chart-pivot-adhoc-filter
-- source: apache/superset superset/models/helpers.py: ExploreMixin.get_sqla_query, a pivot table (two groupbys, two metrics) with an adhoc SQL WHERE and HAVING filter
SELECT region AS region, status AS status, SUM(total) AS "SUM(total)", COUNT(DISTINCT customer_id) AS "COUNT_DISTINCT(customer_id)" FROM public.orders WHERE (total > 50) GROUP BY region, status HAVING (COUNT(*) > 5) ORDER BY "SUM(total)" DESC LIMIT 10000
