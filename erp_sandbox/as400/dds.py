"""DDS-style packed decimal storage for the stand-in: fields whose stored bytes can be invalid, as on IBM i.

A DDS physical file does not validate what programs write into a packed field: blanks (x'40'), left by
`CPYF FMTOPT(*NOCHK)` or program-described writes, stay in it. Reading such a field with SQL fails with
SQL0802 "Data conversion or data mapping error", while `HEX(field)` returns the stored bytes (IT Jungle, "SQL
and Invalid Decimal Data", 2013: `select * from baddata where hex(customerid) = '40404040'`; IBM Support,
"Correcting Decimal Data Errors"). PostgreSQL's numeric cannot hold such bytes, so `store_packed` moves a
stand-in file into the `as400_storage` schema (hidden from the QSYS2 catalog views), gives the chosen
DECIMAL columns a bytea column of stored bytes, and puts a view with the file's name and columns in its
place; the view delivers each packed field through `deliver_packed`, which raises SQLSTATE 22023 with the
message id SQL0802 when the bytes are no packed decimal. `plant_bytes` writes such bytes.

`public.hex` is Db2's HEX for those fields. PostgreSQL evaluates a view column before a function around it
sees it, so `deliver_packed` itself answers a statement that asks for `HEX("FIELD")` (it looks at the
statement's text, `current_query()`) with the stored bytes, encoded as a number `hex` turns back into hex
digits. Only the HEX form and the plain form of a field are supported, one of them per statement. The view
column is an unconstrained numeric (it must also carry the encoded bytes), so the catalog shows no precision.
"""

from __future__ import annotations

import psycopg2

STORAGE = "as400_storage"
READER = "as400_reader"

PACKED_STORAGE_DDL = f"""
create schema if not exists {STORAGE};
grant usage on schema {STORAGE} to {READER};
create or replace function {STORAGE}.pack(value numeric, digits integer, scale integer) returns bytea
language sql immutable as $$
    select decode(lpad(abs(round(value * 10 ^ scale))::text, 2 * (digits / 2 + 1) - 1, '0')
                  || case when value < 0 then 'd' else 'f' end, 'hex')
$$;
create or replace function {STORAGE}.deliver_packed(
    value numeric, stored bytea, digits integer, scale integer, field text
) returns numeric language plpgsql stable as $$
declare
    raw bytea := coalesce(stored, {STORAGE}.pack(value, digits, scale));
    hexed text := encode(raw, 'hex');
    encoded numeric := 1;
begin
    if position(upper('HEX("' || field || '")') in upper(regexp_replace(current_query(), '\\s', '', 'g'))) > 0 then
        for i in 0 .. length(raw) - 1 loop
            encoded := encoded * 256 + get_byte(raw, i);
        end loop;
        return encoded;
    end if;
    if hexed !~ '^[0-9]+[a-f]$' then
        raise exception using errcode = '22023',
            message = format('SQL0802 Data conversion or data mapping error (stand-in: the stored bytes %s of '
                             'packed field %s are no packed decimal)', upper(hexed), field);
    end if;
    return (case when right(hexed, 1) in ('b', 'd') then -1 else 1 end) * left(hexed, -1)::numeric / 10 ^ scale;
end
$$;
create or replace function public.hex(encoded numeric) returns varchar language plpgsql immutable as $$
declare
    digits text := '';
begin
    while encoded >= 256 loop
        digits := lpad(upper(to_hex((encoded % 256)::integer)), 2, '0') || digits;
        encoded := div(encoded, 256);
    end loop;
    return digits;
end
$$;
"""


def _split(table: str) -> tuple[str, str]:
    library, name = table.split(".")
    return library, name


def store_packed(owner_url: str, table: str, fields: dict[str, tuple[int, int]]) -> None:
    """Gives a stand-in file packed storage for `fields` (name → (digits, scale)); the file keeps its name
    and columns, as a view. Undo with `restore`."""
    library, name = _split(table)
    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        cursor.execute(f'alter table "{library}"."{name}" set schema {STORAGE}')
        cursor.execute(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
            "order by ordinal_position", (STORAGE, name),
        )
        columns = [row[0] for row in cursor.fetchall()]
        for field in fields:
            cursor.execute(f'alter table {STORAGE}."{name}" add column "{field}#STORED" bytea')
        delivered = ", ".join(
            f'{STORAGE}.deliver_packed("{column}", "{column}#STORED", {fields[column][0]}, {fields[column][1]}, '
            f"'{column}') as \"{column}\""
            if column in fields else f'"{column}"'
            for column in columns
        )
        cursor.execute(f'create view "{library}"."{name}" as select {delivered} from {STORAGE}."{name}"')
        cursor.execute(f'grant select on "{library}"."{name}" to {READER}')
    connection.close()


def plant_bytes(owner_url: str, table: str, field: str, where: dict[str, str], stored: bytes) -> None:
    """Writes `stored` as the bytes of a packed field, as a program writing past DDS would."""
    _, name = _split(table)
    match = " and ".join(f'"{column}" = %({column})s' for column in where)
    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        cursor.execute(f'update {STORAGE}."{name}" set "{field}#STORED" = %(stored)s where {match}',
                       {**where, "stored": psycopg2.Binary(stored)})
        assert cursor.rowcount == 1, f"no row of {table} matches {where}"
    connection.close()


def restore(owner_url: str, table: str) -> None:
    """Back to a plain table (stored bytes dropped, the numeric values kept)."""
    library, name = _split(table)
    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        cursor.execute(f'drop view if exists "{library}"."{name}"')
        cursor.execute(f'alter table {STORAGE}."{name}" set schema "{library}"')
        cursor.execute(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
            "and column_name like %s", (library, name, "%#STORED"),
        )
        for (column,) in cursor.fetchall():
            cursor.execute(f'alter table "{library}"."{name}" drop column "{column}"')
    connection.close()
