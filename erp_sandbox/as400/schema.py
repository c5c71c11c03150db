"""DDL of the AS400 stand-in, shaped like real IBM i physical files.

Upper-case quoted names (Db2 for i folds to upper case), blank-padded CHAR, packed DECIMAL quantities,
CYYMMDD dates in DECIMAL(7,0) with 0 for "no date", HHMMSS times in DECIMAL(6,0), composite keys and no
foreign keys (legacy DDS files have none, so orphans exist). `QSYS2` and `SYSIBM` hold views with IBM's
catalog names so the connector's catalog queries run unchanged on both systems.

Where IBM i differs from PostgreSQL the catalog says what IBM i would: a bytea column is character data FOR
BIT DATA (CCSID 65535); a column comment `SYSTEM_NAME=XXXXXXXXXX` gives a long-named column the 10-character
system name of a DDS field with an ALIAS; a table comment `MEMBERS=n` makes it a multi-member file in
QSYS2.SYSTABLESTAT (the stand-in still reads every row: the connector refuses such a file before reading);
a column comment `ZONED` makes a numeric column a zoned NUMERIC field (packed DECIMAL otherwise), and
`TEXT="..."` / `HEADING="..."` give it the COLUMN_TEXT / COLUMN_HEADING that DDS TEXT and COLHDG keywords (or
LABEL ON) give a field (SYSCOLUMNS2, IBM i 7.4 rbafzcatsyscol2: VARGRAPHIC(50) and VARGRAPHIC(60));
an index comment `DDS_KEYED` makes a unique index the access path of a DDS keyed physical file (UNIQUE keyword):
SYSPARTITIONINDEXSTAT then says INDEX_TYPE 'PHYSICAL', UNIQUE '0' (IBM i 7.4 rbafzcatsyspistat; B. Hauser,
"Determine DDS described physical files containing unique keys"), and no constraint shows in SYSCST/SYSKEYCST,
which hold SQL constraints only (rbafzcatsyscst, rbafzcatkeycst: "one or more rows for each UNIQUE KEY, PRIMARY
KEY, or FOREIGN KEY");
`public.hex` is Db2's HEX for the packed storage of `dds.py` and for bytes.
Journals (QSQJRN per library, DISPLAY_JOURNAL, JOURNALED_OBJECTS, JOURNAL_INFO, JOURNAL_RECEIVER_INFO) come
from `journal.py`: PRODUCTS and INVENTORY are journaled, MEASUREMENTS and PRICING are not.
"""

from __future__ import annotations

import psycopg2

from erp_sandbox.as400 import journal
from erp_sandbox.as400.dds import PACKED_STORAGE_DDL

LIBRARIES = ("PRODUCTLIB", "INVENTORYLIB")

TABLES_DDL = """
create table if not exists "PRODUCTLIB"."PRODUCTS" (
    "ITEMNO"   char(15)      not null,
    "ITEMDESC" char(40)      not null default '',
    "SKU"      char(20)      not null default '',
    "ITEMCLS"  char(4)       not null default '',
    "UOM"      char(2)       not null default '',
    "ITEMSTS"  char(1)       not null default 'A',
    "CRTDAT"   decimal(7, 0) not null default 0,
    "CHGDAT"   decimal(7, 0) not null default 0,
    "CHGTIM"   decimal(6, 0) not null default 0,
    constraint "PRODUCTS_PK" primary key ("ITEMNO")
);
create table if not exists "PRODUCTLIB"."MEASUREMENTS" (
    "ITEMNO"  char(15)       not null,
    "MEASTYP" char(3)        not null,
    "MEASVAL" decimal(11, 4) not null default 0,
    "MEASUOM" char(3)        not null default '',
    "CHGDAT"  decimal(7, 0)  not null default 0,
    "CHGTIM"  decimal(6, 0)  not null default 0,
    constraint "MEASUREMENTS_PK" primary key ("ITEMNO", "MEASTYP")
);
create table if not exists "PRODUCTLIB"."PRICING" (
    "ITEMNO"  char(15)       not null,
    "PRCLST"  char(4)        not null,
    "EFFDAT"  decimal(7, 0)  not null,
    "EXPDAT"  decimal(7, 0)  not null default 0,
    "UNITPRC" decimal(11, 4) not null default 0,
    "CURCDE"  char(3)        not null default '',
    "CHGDAT"  decimal(7, 0)  not null default 0,
    "CHGTIM"  decimal(6, 0)  not null default 0,
    constraint "PRICING_PK" primary key ("ITEMNO", "PRCLST", "EFFDAT")
);
create table if not exists "INVENTORYLIB"."INVENTORY" (
    "ITEMNO" char(15)       not null,
    "WHSE"   char(3)        not null,
    "ONHAND" decimal(11, 3) not null default 0,
    "ALLOC"  decimal(11, 3) not null default 0,
    "ONORD"  decimal(11, 3) not null default 0,
    "UOM"    char(2)        not null default '',
    "BIN"    char(10)       not null default '',
    "LOTCTL" char(1)        not null default 'N',
    "CHGDAT" decimal(7, 0)  not null default 0,
    "CHGTIM" decimal(6, 0)  not null default 0,
    constraint "INVENTORY_PK" primary key ("ITEMNO", "WHSE")
);
create index if not exists "PRODUCTS_CHG" on "PRODUCTLIB"."PRODUCTS" ("CHGDAT", "CHGTIM");
create index if not exists "MEASUREMENTS_CHG" on "PRODUCTLIB"."MEASUREMENTS" ("CHGDAT", "CHGTIM");
create index if not exists "PRICING_CHG" on "PRODUCTLIB"."PRICING" ("CHGDAT", "CHGTIM");
create index if not exists "INVENTORY_CHG" on "INVENTORYLIB"."INVENTORY" ("CHGDAT", "CHGTIM");
"""

# Every upper-case schema is a library, as on IBM i, so a table added to the stand-in shows in its catalog.
CATALOG_DDL = """
create schema if not exists "QSYS2";
create schema if not exists "SYSIBM";
create or replace view "SYSIBM"."SYSDUMMY1" as select 'Y'::char(1) as "IBMREQD";
create or replace view "QSYS2"."SYSTABLES" as
select t.table_schema::varchar(128) as "TABLE_SCHEMA", t.table_name::varchar(128) as "TABLE_NAME",
       t.table_schema::char(10) as "SYSTEM_TABLE_SCHEMA", t.table_name::char(10) as "SYSTEM_TABLE_NAME",
       'P'::char(1) as "TABLE_TYPE", 'D'::char(1) as "FILE_TYPE",
       (select count(*) from information_schema.columns c
         where c.table_schema = t.table_schema and c.table_name = t.table_name)::integer as "COLUMN_COUNT"
from information_schema.tables t
where t.table_schema = upper(t.table_schema) and t.table_schema not in ('QSYS2', 'SYSIBM')
  and t.table_type = 'BASE TABLE';
create or replace view "QSYS2"."SYSCOLUMNS2" as
select c.table_schema::varchar(128) as "TABLE_SCHEMA", c.table_name::varchar(128) as "TABLE_NAME",
       c.column_name::varchar(128) as "COLUMN_NAME",
       coalesce(substring(col_description(format('%I.%I', c.table_schema, c.table_name)::regclass,
                                          c.ordinal_position::integer)
                          from 'SYSTEM_NAME=([A-Z0-9_$#@]{1,10})'),
                c.column_name)::char(10) as "SYSTEM_COLUMN_NAME",
       c.ordinal_position::integer as "ORDINAL_POSITION",
       (case c.data_type when 'character' then 'CHAR' when 'character varying' then 'VARCHAR'
                         when 'numeric' then (case when col_description(
                             format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position::integer)
                             ~ 'ZONED' then 'NUMERIC' else 'DECIMAL' end)
                         when 'integer' then 'INTEGER' when 'bigint' then 'BIGINT'
                         when 'smallint' then 'SMALLINT' when 'date' then 'DATE' when 'bytea' then 'VARCHAR'
                         when 'timestamp without time zone' then 'TIMESTMP' else upper(c.data_type) end
       )::varchar(8) as "DATA_TYPE",
       coalesce(c.character_maximum_length, c.numeric_precision, 0)::integer as "LENGTH",
       c.numeric_scale::integer as "NUMERIC_SCALE",
       (case c.is_nullable when 'YES' then 'Y' else 'N' end)::char(1) as "IS_NULLABLE",
       (case when c.data_type in ('character', 'character varying') then 37
             when c.data_type = 'bytea' then 65535 end)::integer as "CCSID",
       substring(col_description(format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position::integer)
                 from 'TEXT="([^"]{0,50})"')::varchar(50) as "COLUMN_TEXT",
       substring(col_description(format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position::integer)
                 from 'HEADING="([^"]{0,60})"')::varchar(60) as "COLUMN_HEADING"
from information_schema.columns c
where c.table_schema = upper(c.table_schema) and c.table_schema not in ('QSYS2', 'SYSIBM');
create or replace view "QSYS2"."SYSPARTITIONINDEXSTAT" as
select n.nspname::varchar(128) as "TABLE_SCHEMA", t.relname::varchar(128) as "TABLE_NAME",
       n.nspname::varchar(128) as "INDEX_SCHEMA", i.relname::varchar(128) as "INDEX_NAME",
       (case when obj_description(i.oid, 'pg_class') = 'DDS_KEYED' then 'PHYSICAL'
             when x.indisprimary then 'PRIMARY KEY' when x.indisunique then 'UNIQUE' else 'INDEX' end
       )::varchar(11) as "INDEX_TYPE",
       (select string_agg(a.attname, ',' order by k.position)
          from unnest(x.indkey::int2[]) with ordinality as k(attnum, position)
          join pg_attribute a on a.attrelid = t.oid and a.attnum = k.attnum)::varchar(1024) as "COLUMN_NAMES",
       (case when x.indisunique then '0' else '2' end)::char(1) as "UNIQUE"
from pg_index x
join pg_class t on t.oid = x.indrelid
join pg_class i on i.oid = x.indexrelid
join pg_namespace n on n.oid = t.relnamespace
where n.nspname = upper(n.nspname) and n.nspname not in ('QSYS2', 'SYSIBM');
create or replace view "QSYS2"."SYSCST" as
select n.nspname::varchar(128) as "CONSTRAINT_SCHEMA", k.conname::varchar(128) as "CONSTRAINT_NAME",
       (case k.contype when 'p' then 'PRIMARY KEY' when 'u' then 'UNIQUE' when 'f' then 'FOREIGN KEY'
                       else 'CHECK' end)::varchar(11) as "CONSTRAINT_TYPE",
       n.nspname::varchar(128) as "TABLE_SCHEMA", t.relname::varchar(128) as "TABLE_NAME",
       n.nspname::char(10) as "SYSTEM_TABLE_SCHEMA", t.relname::char(10) as "SYSTEM_TABLE_NAME"
from pg_constraint k
join pg_class t on t.oid = k.conrelid
join pg_namespace n on n.oid = t.relnamespace
where k.contype in ('p', 'u', 'f', 'c') and n.nspname = upper(n.nspname) and n.nspname not in ('QSYS2', 'SYSIBM');
create or replace view "QSYS2"."SYSKEYCST" as
select n.nspname::varchar(128) as "CONSTRAINT_SCHEMA", k.conname::varchar(128) as "CONSTRAINT_NAME",
       n.nspname::varchar(128) as "TABLE_SCHEMA", t.relname::varchar(128) as "TABLE_NAME",
       a.attname::varchar(128) as "COLUMN_NAME", key.position::integer as "ORDINAL_POSITION",
       a.attnum::integer as "COLUMN_POSITION",
       coalesce(substring(col_description(t.oid, a.attnum::integer) from 'SYSTEM_NAME=([A-Z0-9_$#@]{1,10})'),
                a.attname)::char(10) as "SYSTEM_COLUMN_NAME"
from pg_constraint k
join pg_class t on t.oid = k.conrelid
join pg_namespace n on n.oid = t.relnamespace
cross join lateral unnest(k.conkey) with ordinality as key(attnum, position)
join pg_attribute a on a.attrelid = t.oid and a.attnum = key.attnum
where k.contype in ('p', 'u', 'f') and n.nspname = upper(n.nspname) and n.nspname not in ('QSYS2', 'SYSIBM');
create or replace view "QSYS2"."SYSTABLESTAT" as
select s.schemaname::varchar(128) as "TABLE_SCHEMA", s.relname::varchar(128) as "TABLE_NAME",
       s.n_live_tup::bigint as "NUMBER_ROWS", s.n_dead_tup::bigint as "NUMBER_DELETED_ROWS",
       coalesce(substring(obj_description(s.relid, 'pg_class') from 'MEMBERS=([0-9]+)')::integer, 1
       )::integer as "NUMBER_PARTITIONS"
from pg_stat_user_tables s
where s.schemaname = upper(s.schemaname) and s.schemaname not in ('QSYS2', 'SYSIBM');
"""


def grants_sql(reader: str = "as400_reader") -> str:
    schemas = ", ".join(f'"{name}"' for name in (*LIBRARIES, "QSYS2", "SYSIBM"))
    return (
        f"revoke create on schema public from public;"
        f"grant usage on schema {schemas} to {reader};"
        + "".join(f'grant select on all tables in schema "{name}" to {reader};' for name in LIBRARIES)
        + f'grant select on all tables in schema "QSYS2", "SYSIBM" to {reader};'
    )


def create_schema(owner_url: str) -> None:
    """Creates the libraries, tables, catalog views and journals; safe to run again."""
    with psycopg2.connect(owner_url) as conn, conn.cursor() as cur:
        for library in LIBRARIES:
            cur.execute(f'create schema if not exists "{library}"')
        cur.execute(TABLES_DDL)
        cur.execute(CATALOG_DDL)
        cur.execute(PACKED_STORAGE_DDL)
        cur.execute(grants_sql())
        journal.install(cur)
    conn.close()
