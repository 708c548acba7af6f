-- DBeaver (PostgreSQL plugin, pgjdbc): connect, database and schema navigator, table and column lists, constraints,
-- and the data editor's first page.

-- name: dbeaver/current-database
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataSource.java: bootstrap (SELECT current_database())
SELECT current_database()

-- name: dbeaver/version
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataSource.java: server version (SELECT version())
SELECT version()

-- name: dbeaver/databases
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataSource.java: catalogQuery (templates and unavailable databases hidden, connection database analytics)
-- volatile: datfrozenxid, datminmxid
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE 1 = 1 AND datallowconn AND NOT datistemplate OR db.datname ='analytics'
ORDER BY db.datname

-- name: dbeaver/templates
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataSource.java: template database list
SELECT db.datname FROM pg_catalog.pg_database db WHERE datistemplate

-- name: dbeaver/database-by-name
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java: readDatabaseInfo (datname=?)
-- volatile: datfrozenxid, datminmxid
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='analytics'

-- name: dbeaver/schemas
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java: SchemaCache.prepareLookupStatement (no schema filter)
SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass

-- name: dbeaver/tables
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSchema.java: TableCache.prepareLookupStatement (schema public)
-- volatile: relfrozenxid, relminmxid, relpages, reltuples, relallvisible
SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
WHERE c.relnamespace=2200 AND c.relkind not in ('i','I','c')

-- name: dbeaver/columns
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSchema.java: TableCache.prepareChildrenStatement (one table, with sequences)
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid
WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid={{oid:public.customers}}
ORDER BY a.attnum

-- name: dbeaver/constraints
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSchema.java: ConstraintCache.prepareObjectsStatement (schema public)
SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, case when c.contype='c' then "substring"(pg_get_constraintdef(c.oid), 7) else null end consrc_copy
FROM pg_catalog.pg_constraint c
INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid
LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass
WHERE t.relnamespace=2200
ORDER BY c.oid

-- name: dbeaver/settings
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataSource.java: server configuration (select * from pg_catalog.pg_settings where name=?)
select * from pg_catalog.pg_settings where name='standard_conforming_strings'

-- name: dbeaver/data-editor
-- source: dbeaver/dbeaver (SQL editor / data editor): the first page of a table's data, 200 rows, ordered by the key the user clicked
SELECT * FROM public.orders ORDER BY order_id LIMIT 200

-- name: dbeaver/row-count
-- source: dbeaver/dbeaver (data editor "Calculate total row count"): SELECT COUNT(*) FROM the table
SELECT COUNT(*) FROM public.customers

-- name: dbeaver/execution-context
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreExecutionContext.java: refreshDefaults (SELECT current_schema(),session_user)
SELECT current_schema(),session_user

-- name: dbeaver/search-path
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreExecutionContext.java: refreshDefaults (SHOW search_path)
SHOW search_path

-- name: dbeaver/roles
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java: RoleCache.prepareObjectsStatement (comments on roles supported)
SELECT a.oid,a.*,pd.description FROM pg_catalog.pg_roles a 
left join pg_catalog.pg_shdescription pd on a.oid = pd.objoid
ORDER BY a.rolname

-- name: dbeaver/access-methods
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java: AccessMethodCache.prepareObjectsStatement
SELECT am.oid,am.* FROM pg_catalog.pg_am am 
ORDER BY am.oid

-- name: dbeaver/encodings
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java: EncodingCache.prepareObjectsStatement
SELECT c.contoencoding as encid,pg_catalog.pg_encoding_to_char(c.contoencoding) as encname
FROM pg_catalog.pg_conversion c
GROUP BY c.contoencoding
ORDER BY 2

-- name: dbeaver/collations
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java: CollationCache.prepareObjectsStatement
SELECT c.oid,c.* FROM pg_catalog.pg_collation c 
ORDER BY c.oid

-- name: dbeaver/languages
-- source: dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java: LanguageCache.prepareObjectsStatement
SELECT l.oid,l.* FROM pg_catalog.pg_language l 
ORDER BY l.oid
