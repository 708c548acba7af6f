-- Power BI Desktop's PostgreSQL connector (Npgsql): type loading on the first connection, the navigator's
-- GetSchema calls, then the SQL that query folding sends for a report visual.

-- name: powerbi/version
-- source: npgsql/npgsql src/Npgsql/PostgresDatabaseInfo.cs: LoadPostgresInfo (versionQuery)
SELECT version()

-- name: powerbi/load-types
-- source: npgsql/npgsql src/Npgsql/PostgresDatabaseInfo.cs: GenerateLoadTypesQuery(withRange, withMultirange, loadTableComposites=false, no schema list, hasTypeCategory)
-- unordered
SELECT ns.nspname, t.oid, t.typname, t.typtype, t.typnotnull, t.elemtypoid
FROM (
    
    
    
    SELECT
        typ.oid, typ.typnamespace, typ.typname, typ.typtype, typ.typrelid, typ.typnotnull, typ.relkind,
        elemtyp.oid AS elemtypoid, elemtyp.typname AS elemtypname, elemcls.relkind AS elemrelkind,
        CASE WHEN elemproc.proname='array_recv' THEN 'a' ELSE elemtyp.typtype END AS elemtyptype
        , typ.typcategory
    FROM (
        SELECT typ.oid, typnamespace, typname, typrelid, typnotnull, relkind, typelem AS elemoid,
            CASE WHEN proc.proname='array_recv' THEN 'a' ELSE typ.typtype END AS typtype,
            CASE
                WHEN proc.proname='array_recv' THEN typ.typelem
                WHEN typ.typtype='r' THEN rngsubtype
                WHEN typ.typtype='m' THEN (SELECT rngtypid FROM pg_range WHERE rngmultitypid = typ.oid)
                WHEN typ.typtype='d' THEN typ.typbasetype
            END AS elemtypoid
            , typ.typcategory
        FROM pg_type AS typ
        LEFT JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
        LEFT JOIN pg_proc AS proc ON proc.oid = typ.typreceive
        LEFT JOIN pg_range ON (pg_range.rngtypid = typ.oid)
    ) AS typ
    LEFT JOIN pg_type AS elemtyp ON elemtyp.oid = elemtypoid
    LEFT JOIN pg_class AS elemcls ON (elemcls.oid = elemtyp.typrelid)
    LEFT JOIN pg_proc AS elemproc ON elemproc.oid = elemtyp.typreceive
) AS t
JOIN pg_namespace AS ns ON (ns.oid = typnamespace)
WHERE
        (typtype IN ('b', 'r', 'm', 'e', 'd') OR 
    (typtype = 'c' AND relkind='c') OR 
    (typtype = 'p' AND typname IN ('record', 'void', 'unknown')) OR 
    (typtype = 'a' AND (  
        elemtyptype IN ('b', 'r', 'm', 'e', 'd') OR 
        (elemtyptype = 'p' AND elemtypname IN ('record', 'void')) OR 
        (elemtyptype = 'c' AND elemrelkind='c') 
    )))
ORDER BY CASE
       WHEN typtype IN ('b', 'e', 'p') THEN 0           
       WHEN typtype = 'c' THEN 1                        
       WHEN typtype = 'r' THEN 2                        
       WHEN typtype = 'm' THEN 3                        
       WHEN typtype = 'd' AND elemtyptype <> 'a' THEN 4 
       WHEN typtype = 'a' THEN 5                        
       WHEN typtype = 'd' AND elemtyptype = 'a' THEN 6  
END

-- name: powerbi/load-composites
-- source: npgsql/npgsql src/Npgsql/PostgresDatabaseInfo.cs: GenerateLoadCompositeTypesQuery(loadTableComposites=false)
SELECT typ.oid, att.attname, att.atttypid
FROM pg_type AS typ
JOIN pg_namespace AS ns ON (ns.oid = typ.typnamespace)
JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
JOIN pg_attribute AS att ON (att.attrelid = typ.typrelid)
WHERE
  (typ.typtype = 'c' AND cls.relkind='c')
ORDER BY typ.oid, att.attnum

-- name: powerbi/load-enums
-- source: npgsql/npgsql src/Npgsql/PostgresDatabaseInfo.cs: GenerateLoadEnumFieldsQuery(withEnumSortOrder)
SELECT typ.oid, enumlabel
FROM pg_enum
JOIN pg_type AS typ ON typ.oid = enumtypid
JOIN pg_namespace AS ns ON ns.oid = typ.typnamespace
ORDER BY oid, enumsortorder

-- name: powerbi/schema-databases
-- source: npgsql/npgsql src/Npgsql/NpgsqlSchema.cs: GetDatabases (the navigator's database list)
SELECT d.datname, u.usename, pg_catalog.pg_encoding_to_char(d.encoding)
FROM pg_catalog.pg_database d
LEFT JOIN pg_catalog.pg_user u ON d.datdba = u.usesysid

-- name: powerbi/schema-tables
-- source: npgsql/npgsql src/Npgsql/NpgsqlSchema.cs: GetTables (the navigator's table list)
SELECT table_catalog, table_schema, table_name, table_type
FROM information_schema.tables
WHERE
    table_type IN ('BASE TABLE', 'FOREIGN', 'FOREIGN TABLE') AND
    table_schema NOT IN ('pg_catalog', 'information_schema')

-- name: powerbi/folded-group
-- source: Power Query folding for PostgreSQL (Npgsql path), as in compat/bisql_test.go: Table.Group over orders by region, "_" alias
select "_"."region", count(1) as "C1" from "public"."orders" "_" group by "_"."region"

-- name: powerbi/folded-top
-- source: Power Query folding for PostgreSQL: the navigator's preview (Table.FirstN 1000 over a table)
select "$Table"."order_id" as "order_id", "$Table"."region" as "region", "$Table"."total" as "total" from "public"."orders" "$Table" limit 1000

-- name: powerbi/folded-join
-- source: Power Query folding for PostgreSQL: Table.NestedJoin customers-orders then Table.Group, with Power Query's nested aliases
select "_"."country" as "country", sum("_"."total") as "total" from (select "$Outer"."country", "$Inner"."total" from "public"."customers" as "$Outer" left outer join "public"."orders" as "$Inner" on ("$Outer"."tenant_id" = "$Inner"."tenant_id" and "$Outer"."customer_id" = "$Inner"."customer_id")) as "_" group by "_"."country"
