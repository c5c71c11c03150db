"""IBM i journals for the AS400 stand-in: `QSYS2.DISPLAY_JOURNAL`, receivers, record images, catalog views.

A client written from IBM's documentation must run unchanged against this, so the stand-in behaves as IBM
documents, not as a convenient client would like. IBM pages cited below (IBM i 7.4/7.5 unless noted):
  [DJ]  DISPLAY_JOURNAL table function, rzajq/rzajqudfdisplayjournal.htm, and its enhancements page
        https://www.ibm.com/support/pages/qsys2displayjournal
  [JRI] JOURNAL_RECEIVER_INFO view, rzajq/rzajqviewjrnrcvinfo.htm
  [JI]  JOURNAL_INFO view, rzajq/rzajqviewjournalinfo.htm
  [JO]  JOURNALED_OBJECTS view, rzajq/rzajqviewjournaledobjects.htm
  [ET]  "All journal entries by code and type", rzaki/rzakijournalfinderall2.htm
  [VL]  "Variable-length portion of the journal entry" (null value indicators), 7.6
        https://www.ibm.com/docs/en/i/7.6.0?topic=information-variable-length-portion-journal-entry
  [ED]  IBM Support, "How to extract and search ENTRY_DATA with the DISPLAY_JOURNAL table function" (record
        image offsets: CHAR n bytes, VARCHAR(128) ALLOCATE(16) 130 bytes, DECIMAL(11,2) 6 bytes packed,
        NUMERIC(11,2) 11 bytes zoned, INT 4 bytes; ENTRY_DATA is a BLOB(2G))
  [FX]  "Layouts for the fixed-length portion of journal entries", rzaki/rzakifixlength.htm
  [CJ]  Change Journal (CHGJRN), cl/chgjrn.htm (sequence reset on receiver change)
  [DR]  Delete Journal Receiver (DLTJRNRCV) restrictions (attached receivers and receivers in the middle of the
        chain cannot be deleted)
  [DT]  DB_TRANSACTION_JOURNAL_INFO: "The commit cycle identifier is the sequence number of the journal entry
        that corresponds to the beginning of the current LUW"
  [DSP] Display Journal (DSPJRN), cl/dspjrn.htm: "Gaps may exist in the sequence numbers"; entries whose
        sequence numbers were reset can be shown in one receiver chain.

Contract
--------
    SELECT ... FROM "QSYS2"."DISPLAY_JOURNAL"(JOURNAL_LIBRARY => 'PRODUCTLIB', JOURNAL_NAME => 'QSQJRN',
        STARTING_RECEIVER_NAME => '*CURCHAIN', STARTING_SEQUENCE => 42, JOURNAL_CODES => 'R',
        OBJECT_LIBRARY => 'PRODUCTLIB', OBJECT_NAME => 'PRODUCTS', OBJECT_OBJTYPE => '*FILE',
        OBJECT_MEMBER => '*ALL') AS J ORDER BY ... FETCH FIRST 1000 ROWS ONLY

Parameters ([DJ] names; PostgreSQL named notation `name => value`): JOURNAL_LIBRARY, JOURNAL_NAME (required,
positional 1 and 2), STARTING_RECEIVER_LIBRARY, STARTING_RECEIVER_NAME (a name or *CURRENT, *CURCHAIN,
*CURAVLCHN, *CURSEQCHN; default *CURRENT), STARTING_TIMESTAMP, STARTING_SEQUENCE (not both), JOURNAL_CODES,
JOURNAL_ENTRY_TYPES (lists separated by blanks or commas; *ALL; entry types also *RCD), OBJECT_LIBRARY,
OBJECT_NAME (up to 300 names, blank or comma separated, or *ALL), OBJECT_OBJTYPE (*FILE), OBJECT_MEMBER (*FIRST,
*ALL or the member), "user", JOB, PROGRAM, ENDING_RECEIVER_LIBRARY, ENDING_RECEIVER_NAME, ENDING_TIMESTAMP,
ENDING_SEQUENCE (not both). Names are system names (10 characters): INVENTORYLIB's system name is INVENTORYL,
as QSYS2.SYSTABLES says.

Quoting: the function's parameters are declared in lower case, so Db2's unquoted spelling works as written
(`JOURNAL_LIBRARY => ?` folds to journal_library); a quoted `"JOURNAL_LIBRARY" => ?` does NOT match in
PostgreSQL. USER is a reserved word in PostgreSQL: that one parameter must be written `"user" => ?`.

Columns, in sequence order (chronological across receivers): ENTRY_TIMESTAMP timestamp, SEQUENCE_NUMBER
decimal(21,0), JOURNAL_CODE char(1), JOURNAL_ENTRY_TYPE char(2), COUNT_OR_RRN decimal(21,0), INDICATOR_FLAG
char(1), OBJECT varchar(30) (file, library, member, each blank-padded to 10; null for entries of no object),
OBJECT_TYPE varchar(7) ('*QDDS' for a file member's entries), JOB_NAME, JOB_USER varchar(10), JOB_NUMBER
varchar(6), "CURRENT_USER", USER_NAME, PROGRAM_NAME, PROGRAM_LIBRARY varchar(10), COMMIT_CYCLE decimal(21,0),
RECEIVER_NAME, RECEIVER_LIBRARY varchar(10), JOURNAL_LIBRARY, JOURNAL_NAME varchar(10), NULL_VALUE_INDICATORS
bytea, ENTRY_DATA bytea. `HEX(ENTRY_DATA)` and `HEX(NULL_VALUE_INDICATORS)` work (public.hex(bytea)).

Differences from IBM i
----------------------
* Db2 for i calls a table function as `FROM TABLE(QSYS2.DISPLAY_JOURNAL(...)) AS J`; PostgreSQL cannot parse
  TABLE(...), so the stand-in accepts only `FROM "QSYS2"."DISPLAY_JOURNAL"(...) AS J`.
* PostgreSQL shows no uncommitted work, so entries get their sequence numbers at commit (one transaction at a
  time per journal): a reader never sees an open commit cycle, and a cycle's entries are contiguous. IBM
  numbers entries as they are written, so cycles interleave and open cycles are visible. Rolled-back work
  leaves nothing in PostgreSQL: `journal_rolled_back` writes what IBM's journal shows after a rollback.
* Job attributes come from settings (`set local as400.job_name = ...`, job_user, job_number, user_name,
  program_name, program_library); defaults: QZDASOINIT/QUSER/<backend pid>, the session user, QZDASOINIT/QSYS.
  `set local as400.commitment_control = 'off'` journals the transaction outside commitment control (COMMIT_CYCLE
  0, no C entries).
* Errors carry SQLSTATE 38501 and text 'SQL0443 ... CPFxxxx ...' (IBM reports a table function's failure as
  SQL0443 with the CPF message; the exact state is not on the page: a plausible choice).
* RRNs are never reused (REUSEDLT(*NO)); *CURAVLCHN equals *CURCHAIN (no receiver is ever saved with storage
  freed, so every receiver in the chain is available); no remote journals, no minimised entry data, no PX, no
  journal caching. The USER, JOB and PROGRAM filters are refused (SQLSTATE 0A000) rather than ignored; the
  INCLUDE_INTERNAL and COMMIT_CYCLE parameters (7.5 TR5) do not exist here.
* With objects named, C and J entries (no object) are not returned, as DSPJRN FILE(...) documents: a reader
  without *OBJEXIST learns of rollbacks from the R rollback entries (DR, BR, UR) of the objects, not from C RB.
* Reading the whole chain materialises the selected entries before FETCH FIRST applies (PL/pgSQL): bound the
  window by STARTING_SEQUENCE and the object filter.

Control functions (owner only; Python wrappers below): `start_journaling`, `end_journaling`,
`change_receiver`, `delete_receiver`, `add_column`, `drop_column`, `journal_rolled_back`.
"""

from __future__ import annotations

import psycopg2

SCHEMA = "as400_journal"
READER = "as400_reader"
JOURNALED_FILES = {"PRODUCTLIB.PRODUCTS": "*BOTH", "INVENTORYLIB.INVENTORY": "*BOTH"}


def _unicode_literal(text: str) -> str:
    return "E'" + "".join(f"\\u{ord(char):04x}" for char in text) + "'"


# CCSID 37 is a permutation of Latin-1: each Latin-1 character maps to the byte CP037 gives it.
_LATIN1 = "".join(chr(code) for code in range(1, 256))
_CP037_AS_LATIN1 = "".join(chr(char.encode("cp037")[0]) for char in _LATIN1)

STORAGE_DDL = f"""
create schema if not exists {SCHEMA};
create sequence if not exists {SCHEMA}.rrn;
create table if not exists {SCHEMA}.journal (
    library varchar(10) not null, name varchar(10) not null, sql_schema text not null,
    next_sequence numeric(21, 0) not null default 1,
    primary key (library, name)
);
create table if not exists {SCHEMA}.receiver (
    journal_library varchar(10) not null, journal_name varchar(10) not null,
    library varchar(10) not null, name varchar(10) not null, chain_position integer not null,
    sequence_reset boolean not null default false,
    attached timestamp not null default localtimestamp, detached timestamp,
    previous_library varchar(10), previous_name varchar(10),
    primary key (library, name),
    unique (journal_library, journal_name, chain_position)
);
create table if not exists {SCHEMA}.journaled_file (
    relid oid primary key, library varchar(10) not null, file varchar(10) not null,
    journal_library varchar(10) not null, journal_name varchar(10) not null,
    images varchar(6) not null check (images in ('*AFTER', '*BOTH')),
    started timestamp not null default localtimestamp,
    image_function text not null, nulls_function text not null, key_function text not null
);
-- One row per physical record (its RRN). A file without a unique key may hold two records with one key: PostgreSQL
-- cannot tell the stand-in which of them a statement changed, so a change of such a key is journaled at the
-- oldest RRN holding it (IBM i journals the record actually changed).
create table if not exists {SCHEMA}.record_number (
    relid oid not null, key text not null, rrn numeric(21, 0) not null, primary key (relid, rrn)
);
do $upgrade$ begin  -- stand-ins installed before the key was allowed to repeat
    if exists (select 1 from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
               where i.indrelid = '{SCHEMA}.record_number'::regclass and i.indisprimary and a.attname = 'key') then
        alter table {SCHEMA}.record_number drop constraint record_number_pkey;
        alter table {SCHEMA}.record_number add primary key (relid, rrn);
    end if;
end $upgrade$;
create index if not exists record_number_key on {SCHEMA}.record_number (relid, key, rrn);
create table if not exists {SCHEMA}.entry (
    position bigint generated always as identity primary key,
    journal_library varchar(10) not null, journal_name varchar(10) not null,
    receiver_library varchar(10) not null, receiver_name varchar(10) not null,
    sequence numeric(21, 0) not null, entry_timestamp timestamp not null,
    code char(1) not null, type char(2) not null, count_or_rrn numeric(21, 0) not null default 0,
    object_library varchar(10), object_file varchar(10),
    job_name varchar(10), job_user varchar(10), job_number varchar(6), user_name varchar(10),
    program_name varchar(10), program_library varchar(10), commit_cycle numeric(21, 0) not null default 0,
    null_value_indicators bytea, entry_data bytea not null default ''::bytea
);
create index if not exists entry_by_receiver on {SCHEMA}.entry (receiver_library, receiver_name, position);
create index if not exists entry_by_object on {SCHEMA}.entry (object_library, object_file, position);
-- DISPLAY_JOURNAL's STARTING_SEQUENCE finds its first entry through this index, so that a window's cost does
-- not grow with the receivers' size: without it every window scanned the whole entry table (3.9M entries after
-- the benchmark's 1M-row seed: about 300 ms of each 10,000-entry window, an artefact of the stand-in).
create index if not exists entry_by_sequence on {SCHEMA}.entry (journal_library, journal_name, sequence, position);
create table if not exists {SCHEMA}.cycle (
    txid bigint not null, journal_library varchar(10) not null, journal_name varchar(10) not null,
    commitment_control boolean not null, rolled_back boolean not null default false,
    job_name varchar(10), job_user varchar(10), job_number varchar(6), user_name varchar(10),
    program_name varchar(10), program_library varchar(10),
    primary key (txid, journal_library, journal_name)
);
create table if not exists {SCHEMA}.pending (
    ord bigint generated always as identity primary key, txid bigint not null,
    journal_library varchar(10) not null, journal_name varchar(10) not null,
    code char(1) not null, type char(2) not null, count_or_rrn numeric(21, 0) not null default 0,
    object_library varchar(10), object_file varchar(10),
    null_value_indicators bytea, entry_data bytea not null default ''::bytea,
    restore_nulls bytea, restore_data bytea
);
create index if not exists pending_by_txid on {SCHEMA}.pending (txid, journal_library, journal_name, ord);
revoke all on schema {SCHEMA} from public;
"""

# Field encodings of a record image: the fixed-length record format, field after field ([ED]).
ENCODING_DDL = f"""
create or replace function {SCHEMA}.ebcdic(value text) returns bytea language sql immutable parallel safe as $$
    -- CCSID 37; a character CCSID 37 lacks becomes the substitution character x'3F', as a conversion would.
    select convert_to(translate(regexp_replace(value, '[^\\u0001-\\u00ff]', E'\\u001a', 'g'),
                                {_unicode_literal(_LATIN1)}, {_unicode_literal(_CP037_AS_LATIN1)}), 'LATIN1')
$$;
create or replace function {SCHEMA}.char_image(value text, length integer) returns bytea
language sql immutable parallel safe as $$
    select {SCHEMA}.ebcdic(rpad(coalesce(value, ''), length))
$$;
-- VARCHAR: a 2-byte length, then the full allocated length ([ED]: VARCHAR(128) takes 130 bytes). What the
-- unused bytes hold is not documented; the stand-in writes x'00'.
create or replace function {SCHEMA}.varchar_image(value text, length integer) returns bytea
language sql immutable parallel safe as $$
    select int2send(length(coalesce(value, ''))::smallint) || {SCHEMA}.ebcdic(coalesce(value, ''))
           || decode(repeat('00', length - length(coalesce(value, ''))), 'hex')
$$;
-- Packed decimal: two digits a byte, the last nibble the sign (F positive, D negative), p/2+1 bytes ([ED]).
create or replace function {SCHEMA}.packed(value numeric, digits integer, scale integer) returns bytea
language sql immutable parallel safe as $$
    select decode(lpad(abs(round(coalesce(value, 0) * power(10::numeric, scale)))::text, digits / 2 * 2 + 1, '0')
                  || case when value < 0 then 'd' else 'f' end, 'hex')
$$;
-- Zoned decimal: one digit a byte (zone F), the sign in the zone of the last byte, p bytes ([ED]).
create or replace function {SCHEMA}.zoned(value numeric, digits integer, scale integer) returns bytea
language sql immutable parallel safe as $$
    select decode(regexp_replace(left(d, -1), '(.)', 'f\\1', 'g')
                  || case when value < 0 then 'd' else 'f' end || right(d, 1), 'hex')
    from (select lpad(abs(round(coalesce(value, 0) * power(10::numeric, scale)))::text, digits, '0') as d) s
$$;
create or replace function public.hex(value bytea) returns varchar language sql immutable parallel safe as $$
    select upper(encode(value, 'hex'))
$$;
"""

# The generated per-file functions: the record image, the null value indicators and the record's key.
GENERATOR_DDL = f"""
create or replace function {SCHEMA}.field_image(
    field text, data_type text, length integer, scale integer
) returns text language plpgsql immutable as $$
begin
    return case data_type
        when 'CHAR' then format('{SCHEMA}.char_image(r.%I::text, %s)', field, length)
        when 'VARCHAR' then format('{SCHEMA}.varchar_image(r.%I::text, %s)', field, length)
        when 'DECIMAL' then format('{SCHEMA}.packed(r.%I, %s, %s)', field, length, scale)
        when 'NUMERIC' then format('{SCHEMA}.zoned(r.%I, %s, %s)', field, length, scale)
        when 'SMALLINT' then format('int2send(coalesce(r.%I, 0)::smallint)', field)
        when 'INTEGER' then format('int4send(coalesce(r.%I, 0)::integer)', field)
        when 'BIGINT' then format('int8send(coalesce(r.%I, 0)::bigint)', field)
        -- DATE, TIME and TIMESTAMP fields hold their ISO character form (10, 8 and 26 bytes).
        when 'DATE' then format('{SCHEMA}.ebcdic(coalesce(to_char(r.%I, ''YYYY-MM-DD''), ''0001-01-01''))', field)
        when 'TIME' then format('{SCHEMA}.ebcdic(coalesce(to_char(r.%I, ''HH24.MI.SS''), ''00.00.00''))', field)
        when 'TIMESTMP' then format('{SCHEMA}.ebcdic(coalesce(to_char(r.%I, ''YYYY-MM-DD-HH24.MI.SS.US''), '
                                    '''0001-01-01-00.00.00.000000''))', field)
    end;
end
$$;
create or replace function {SCHEMA}.generate_file_functions(file_relid oid) returns text[]
language plpgsql as $$
declare
    table_schema text;
    table_name text;
    row_type text := file_relid::regclass::text;
    base text := 'file_' || file_relid;
    image text;
    nulls text;
    key text;
    unsupported text;
begin
    select n.nspname, c.relname into table_schema, table_name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = file_relid;
    -- The layout as the catalog describes it to a client (QSYS2.SYSCOLUMNS2), in field order.
    select string_agg(c."COLUMN_NAME", ', ') filter (where {SCHEMA}.field_image(c."COLUMN_NAME", c."DATA_TYPE",
                      c."LENGTH", c."NUMERIC_SCALE") is null or (c."DATA_TYPE" in ('CHAR', 'VARCHAR')
                      and c."CCSID" is distinct from 37)),
           string_agg({SCHEMA}.field_image(c."COLUMN_NAME", c."DATA_TYPE", c."LENGTH", c."NUMERIC_SCALE"),
                      ' || ' order by c."ORDINAL_POSITION"),
           -- [VL]: one character per field, '0' not null, '1' null (EBCDIC x'F0', x'F1'), when the file has
           -- null-capable fields; otherwise blanks (one x'40' per field: the length is not documented).
           case when bool_or(c."IS_NULLABLE" = 'Y')
                then 'decode(' || string_agg(format('case when r.%I is null then ''f1'' else ''f0'' end',
                                                    c."COLUMN_NAME"), ' || ' order by c."ORDINAL_POSITION")
                     || ', ''hex'')'
                else format('decode(repeat(''40'', %s), ''hex'')', count(*)) end
    into unsupported, image, nulls
    from "QSYS2"."SYSCOLUMNS2" c
    where c."TABLE_SCHEMA" = table_schema and c."TABLE_NAME" = table_name;
    if unsupported is not null then
        raise exception 'stand-in journal: no record image for fields % of %', unsupported, row_type;
    end if;
    select 'row(' || string_agg(format('r.%I', a.attname), ', ' order by k.position) || ')::text' into key
    from pg_index x
    cross join unnest(x.indkey::int2[]) with ordinality as k(attnum, position)
    join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum
    where x.indrelid = file_relid and x.indisprimary;
    execute format('create or replace function {SCHEMA}.%I(r %s) returns bytea language sql immutable as %L',
                   base || '_image', row_type, 'select ' || image);
    execute format('create or replace function {SCHEMA}.%I(r %s) returns bytea language sql immutable as %L',
                   base || '_nulls', row_type, 'select ' || nulls);
    execute format('create or replace function {SCHEMA}.%I(r %s) returns text language sql immutable as %L',
                   base || '_key', row_type, 'select ' || coalesce(key, 'r::text'));
    return array[format('{SCHEMA}.%I', base || '_image'), format('{SCHEMA}.%I', base || '_nulls'),
                 format('{SCHEMA}.%I', base || '_key')];
end
$$;
"""

CAPTURE_DDL = f"""
create or replace function {SCHEMA}.setting(name text, fallback text) returns text language sql stable as $$
    select coalesce(nullif(current_setting('as400.' || name, true), ''), fallback)
$$;
-- A transaction's first change to a journal opens its commit cycle; the deferred trigger on `cycle` closes it.
create or replace function {SCHEMA}.open_cycle(library varchar, name varchar) returns void
language sql as $$
    insert into {SCHEMA}.cycle (txid, journal_library, journal_name, commitment_control, job_name, job_user,
                                job_number, user_name, program_name, program_library)
    values (txid_current(), library, name, {SCHEMA}.setting('commitment_control', 'on') <> 'off',
            left({SCHEMA}.setting('job_name', 'QZDASOINIT'), 10), left({SCHEMA}.setting('job_user', 'QUSER'), 10),
            left({SCHEMA}.setting('job_number', lpad((pg_backend_pid() % 1000000)::text, 6, '0')), 6),
            left({SCHEMA}.setting('user_name', upper(session_user)), 10),
            left({SCHEMA}.setting('program_name', 'QZDASOINIT'), 10),
            left({SCHEMA}.setting('program_library', 'QSYS'), 10))
    on conflict do nothing
$$;
create or replace function {SCHEMA}.capture() returns trigger language plpgsql as $$
declare
    f {SCHEMA}.journaled_file;
    old_key text;
    new_key text;
    record_rrn numeric;
    before_image bytea;
    before_nulls bytea;
    after_image bytea;
    after_nulls bytea;
begin
    select * into f from {SCHEMA}.journaled_file where relid = TG_RELID;
    if not found then
        return null;
    end if;
    perform {SCHEMA}.open_cycle(f.journal_library, f.journal_name);
    -- A file altered outside `change_layout` (a renamed or retyped column) gets its image functions generated
    -- again from the catalog, and the change is journaled with the new layout.
    for attempt in 1 .. 2 loop
        begin
            if TG_OP = 'TRUNCATE' then
                -- F CR: physical file member cleared ([ET]).
                delete from {SCHEMA}.record_number where relid = f.relid;
                insert into {SCHEMA}.pending (txid, journal_library, journal_name, code, type, object_library,
                                              object_file)
                values (txid_current(), f.journal_library, f.journal_name, 'F', 'CR', f.library, f.file);
            elsif TG_OP = 'INSERT' then
                -- R PT: record added ([ET]); statement level, so COPY of a million rows is one pass.
                execute format($q$
                    with added as (select nextval('{SCHEMA}.rrn') as rrn, row(n.*)::%1$s as r from new_rows n),
                    numbered as (insert into {SCHEMA}.record_number (relid, key, rrn)
                                 select $1, %2$s(r), rrn from added)
                    insert into {SCHEMA}.pending (txid, journal_library, journal_name, code, type, count_or_rrn,
                                                  object_library, object_file, null_value_indicators, entry_data)
                    select txid_current(), $2, $3, 'R', 'PT', rrn, $4, $5, %3$s(r), %4$s(r) from added
                    $q$, TG_RELID::regclass, f.key_function, f.nulls_function, f.image_function)
                using f.relid, f.journal_library, f.journal_name, f.library, f.file;
            else
                execute format('select %s($1), %s($1), %s($1)', f.key_function, f.image_function, f.nulls_function)
                into old_key, before_image, before_nulls using OLD;
                if TG_OP = 'DELETE' then
                    delete from {SCHEMA}.record_number where relid = f.relid and rrn = (
                        select min(rrn) from {SCHEMA}.record_number where relid = f.relid and key = old_key)
                    returning rrn into record_rrn;
                    -- R DL carries the deleted record's image with *BOTH. With *AFTER only, the stand-in gives no image
                    -- (ENTRY_DATA of length 0), only the RRN: IBM's page is silent, and Qlik Replicate documents that
                    -- deletes under *AFTER images cannot be captured unless the RRN is the key.
                    insert into {SCHEMA}.pending (txid, journal_library, journal_name, code, type, count_or_rrn,
                                                  object_library, object_file, null_value_indicators, entry_data,
                                                  restore_nulls, restore_data)
                    values (txid_current(), f.journal_library, f.journal_name, 'R', 'DL', record_rrn, f.library, f.file,
                            case when f.images = '*BOTH' then before_nulls end,
                            case when f.images = '*BOTH' then before_image else ''::bytea end,
                            before_nulls, before_image);
                else
                    execute format('select %s($1), %s($1), %s($1)', f.key_function, f.image_function, f.nulls_function)
                    into new_key, after_image, after_nulls using NEW;
                    -- A key change is an update of the same record (same RRN), as on IBM i.
                    update {SCHEMA}.record_number set key = new_key where relid = f.relid and rrn = (
                        select min(rrn) from {SCHEMA}.record_number where relid = f.relid and key = old_key)
                    returning rrn into record_rrn;
                    if f.images = '*BOTH' then
                        -- R UB: before-image of the updated record, only with JOURNAL_IMAGES *BOTH ([ET], [JO]).
                        insert into {SCHEMA}.pending (txid, journal_library, journal_name, code, type, count_or_rrn,
                                                      object_library, object_file, null_value_indicators, entry_data)
                        values (txid_current(), f.journal_library, f.journal_name, 'R', 'UB', record_rrn,
                                f.library, f.file, before_nulls, before_image);
                    end if;
                    insert into {SCHEMA}.pending (txid, journal_library, journal_name, code, type, count_or_rrn,
                                                  object_library, object_file, null_value_indicators, entry_data,
                                                  restore_nulls, restore_data)
                    values (txid_current(), f.journal_library, f.journal_name, 'R', 'UP', record_rrn, f.library, f.file,
                            after_nulls, after_image, before_nulls, before_image);
                end if;
            end if;
            exit;
        exception when undefined_column or undefined_table or undefined_function or datatype_mismatch
                       or cannot_coerce then
            if attempt = 2 then
                raise;
            end if;
            perform {SCHEMA}.start_journaling(TG_RELID::regclass, f.images);
            select * into f from {SCHEMA}.journaled_file where relid = TG_RELID;
        end;
    end loop;
    return null;
end
$$;
-- Writes one entry at once (receiver changes, journaling start and end, layout changes).
create or replace function {SCHEMA}.write_entry(
    library varchar, name varchar, entry_code char, entry_type char,
    file_library varchar default null, file_name varchar default null
) returns numeric language plpgsql as $$
declare
    j {SCHEMA}.journal;
    live {SCHEMA}.receiver;
begin
    select * into j from {SCHEMA}.journal
    where journal.library = write_entry.library and journal.name = write_entry.name for update;
    select * into live from {SCHEMA}.receiver
    where journal_library = j.library and journal_name = j.name and detached is null;
    insert into {SCHEMA}.entry (journal_library, journal_name, receiver_library, receiver_name, sequence,
                                entry_timestamp, code, type, object_library, object_file, job_name, job_user,
                                job_number, user_name, program_name, program_library)
    values (j.library, j.name, live.library, live.name, j.next_sequence, clock_timestamp()::timestamp,
            entry_code, entry_type, file_library, file_name, 'QPADEV0001', upper(left(session_user, 10)),
            lpad((pg_backend_pid() % 1000000)::text, 6, '0'), upper(left(session_user, 10)), 'QCMD', 'QSYS');
    update {SCHEMA}.journal set next_sequence = next_sequence + 1 where journal.library = j.library
        and journal.name = j.name;
    return j.next_sequence;
end
$$;
-- At commit: number the cycle's entries in the attached receiver, with C SC before and C CM (or, for a
-- rolled-back cycle, the rollback images and C RB) after ([ET]). The journal row lock serialises commits, so
-- sequence order is commit order and no reader sees a later number before an earlier one.
create or replace function {SCHEMA}.close_cycle() returns trigger language plpgsql as $$
declare
    j {SCHEMA}.journal;
    live {SCHEMA}.receiver;
    stamp timestamp := clock_timestamp()::timestamp;
    seq numeric;
    cycle_id numeric := 0;
    rollback_count bigint;
begin
    select * into j from {SCHEMA}.journal where library = NEW.journal_library and name = NEW.journal_name for update;
    select * into live from {SCHEMA}.receiver
    where journal_library = j.library and journal_name = j.name and detached is null;
    seq := j.next_sequence;
    if NEW.commitment_control then
        cycle_id := seq;  -- [DT]: the cycle's identifier is the sequence number of its first entry (SC)
        insert into {SCHEMA}.pending (txid, journal_library, journal_name, code, type)
        values (NEW.txid, j.library, j.name, 'C', 'SC');
    end if;
    insert into {SCHEMA}.entry (journal_library, journal_name, receiver_library, receiver_name, sequence,
                                entry_timestamp, code, type, count_or_rrn, object_library, object_file, job_name,
                                job_user, job_number, user_name, program_name, program_library, commit_cycle,
                                null_value_indicators, entry_data)
    select j.library, j.name, live.library, live.name,
           seq - 1 + row_number() over (order by (p.code = 'C' and p.type = 'SC') desc, p.ord),
           stamp, p.code, p.type, p.count_or_rrn, p.object_library, p.object_file, NEW.job_name, NEW.job_user,
           NEW.job_number, NEW.user_name, NEW.program_name, NEW.program_library, cycle_id,
           p.null_value_indicators, p.entry_data
    from {SCHEMA}.pending p
    where p.txid = NEW.txid and p.journal_library = j.library and p.journal_name = j.name
    order by (p.code = 'C' and p.type = 'SC') desc, p.ord;
    get diagnostics seq = row_count;
    seq := j.next_sequence + seq;
    if NEW.rolled_back then
        -- Rollback images, newest change first: an insert is removed (R DR), an update is reversed (R BR with
        -- the image being undone, only with *BOTH, then R UR with the restored image) and a delete is undone
        -- (R UR with the restored image; IBM's pages do not say which type re-adds a deleted record: UR is
        -- the plausible one, the record slot being updated back).
        insert into {SCHEMA}.entry (journal_library, journal_name, receiver_library, receiver_name, sequence,
                                    entry_timestamp, code, type, count_or_rrn, object_library, object_file,
                                    job_name, job_user, job_number, user_name, program_name, program_library,
                                    commit_cycle, null_value_indicators, entry_data)
        select j.library, j.name, live.library, live.name, seq - 1 + row_number() over (order by r.ord
               desc, r.step), stamp, 'R', r.type, r.count_or_rrn, r.object_library, r.object_file, NEW.job_name,
               NEW.job_user, NEW.job_number, NEW.user_name, NEW.program_name, NEW.program_library, cycle_id,
               r.nulls, r.data
        from (
            select p.ord, 1 as step, 'DR' as type, p.count_or_rrn, p.object_library, p.object_file,
                   p.null_value_indicators as nulls, p.entry_data as data
            from {SCHEMA}.pending p where p.txid = NEW.txid and p.type = 'PT'
              and p.journal_library = j.library and p.journal_name = j.name
            union all
            select p.ord, 1, 'BR', p.count_or_rrn, p.object_library, p.object_file, p.null_value_indicators,
                   p.entry_data
            from {SCHEMA}.pending p join {SCHEMA}.journaled_file f
              on f.library = p.object_library and f.file = p.object_file
            where p.txid = NEW.txid and p.type = 'UP' and f.images = '*BOTH'
              and p.journal_library = j.library and p.journal_name = j.name
            union all
            select p.ord, 2, 'UR', p.count_or_rrn, p.object_library, p.object_file, p.restore_nulls, p.restore_data
            from {SCHEMA}.pending p where p.txid = NEW.txid and p.type in ('UP', 'DL')
              and p.journal_library = j.library and p.journal_name = j.name
        ) r;
        get diagnostics rollback_count = row_count;
        seq := seq + rollback_count;
    end if;
    if NEW.commitment_control then
        insert into {SCHEMA}.entry (journal_library, journal_name, receiver_library, receiver_name, sequence,
                                    entry_timestamp, code, type, job_name, job_user, job_number, user_name,
                                    program_name, program_library, commit_cycle)
        values (j.library, j.name, live.library, live.name, seq, stamp, 'C',
                case when NEW.rolled_back then 'RB' else 'CM' end, NEW.job_name, NEW.job_user, NEW.job_number,
                NEW.user_name, NEW.program_name, NEW.program_library, cycle_id);
        seq := seq + 1;
    end if;
    update {SCHEMA}.journal set next_sequence = seq where library = j.library and name = j.name;
    delete from {SCHEMA}.pending where txid = NEW.txid and journal_library = j.library and journal_name = j.name;
    delete from {SCHEMA}.cycle where txid = NEW.txid and journal_library = j.library and journal_name = j.name;
    return null;
end
$$;
drop trigger if exists close_at_commit on {SCHEMA}.cycle;
create constraint trigger close_at_commit after insert on {SCHEMA}.cycle
    deferrable initially deferred for each row execute function {SCHEMA}.close_cycle();
"""

CONTROL_DDL = f"""
-- CRTJRN as CREATE SCHEMA does it: journal QSQJRN and receiver QSQJRN0001 in the library ([ED] example).
create or replace function {SCHEMA}.create_journal(sql_schema text) returns void language plpgsql as $$
declare
    library varchar(10) := left(sql_schema, 10);
begin
    insert into {SCHEMA}.journal (library, name, sql_schema) values (library, 'QSQJRN', sql_schema)
    on conflict do nothing;
    if found then
        insert into {SCHEMA}.receiver (journal_library, journal_name, library, name, chain_position)
        values (library, 'QSQJRN', library, 'QSQJRN0001', 1);
    end if;
end
$$;
-- STRJRNPF FILE(...) JRN(<library>/QSQJRN) IMAGES(...): F JM "start journaling for member" ([ET]).
create or replace function {SCHEMA}.start_journaling(file regclass, images varchar) returns void
language plpgsql as $$
declare
    sql_schema text;
    table_name text;
    functions text[];
    library varchar(10);
begin
    select n.nspname, c.relname into sql_schema, table_name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = file;
    library := left(sql_schema, 10);
    perform {SCHEMA}.create_journal(sql_schema);
    functions := {SCHEMA}.generate_file_functions(file);
    insert into {SCHEMA}.journaled_file (relid, library, file, journal_library, journal_name, images,
                                         image_function, nulls_function, key_function)
    values (file, library, left(table_name, 10), library, 'QSQJRN', images, functions[1], functions[2],
            functions[3])
    on conflict (relid) do update set images = excluded.images, image_function = excluded.image_function,
        nulls_function = excluded.nulls_function, key_function = excluded.key_function;
    if not exists (select 1 from pg_trigger where tgrelid = file and tgname = 'journal_insert') then
        execute format('insert into {SCHEMA}.record_number (relid, key, rrn) '
                       'select %s, %s(r), nextval(''{SCHEMA}.rrn'') from %s r on conflict do nothing',
                       file::oid, functions[3], file);
        execute format('create trigger journal_insert after insert on %s referencing new table as new_rows '
                       'for each statement execute function {SCHEMA}.capture()', file);
        execute format('create trigger journal_change after update or delete on %s '
                       'for each row execute function {SCHEMA}.capture()', file);
        execute format('create trigger journal_clear after truncate on %s '
                       'for each statement execute function {SCHEMA}.capture()', file);
        perform {SCHEMA}.write_entry(library, 'QSQJRN', 'F', 'JM', library, left(table_name, 10));
    end if;
end
$$;
-- ENDJRNPF: F EJ "end journaling for member" ([ET]); the file's entries stay in the receivers.
create or replace function {SCHEMA}.end_journaling(file regclass) returns void language plpgsql as $$
declare
    f {SCHEMA}.journaled_file;
begin
    delete from {SCHEMA}.journaled_file j where j.relid = end_journaling.file returning * into f;
    if found then
        execute format('drop trigger if exists journal_insert on %s', file);
        execute format('drop trigger if exists journal_change on %s', file);
        execute format('drop trigger if exists journal_clear on %s', file);
        delete from {SCHEMA}.record_number where relid = file;
        perform {SCHEMA}.write_entry(f.journal_library, f.journal_name, 'F', 'EJ', f.library, f.file);
    end if;
end
$$;
-- CHGJRN JRNRCV(*GEN) [SEQOPT(*RESET)] ([CJ]): J NR "next receiver" closes the old receiver, the new one
-- opens with J PR "previous receiver" ([ET]); with a reset the new receiver starts at sequence 1.
create or replace function {SCHEMA}.change_receiver(library varchar, name varchar, reset_sequence boolean)
returns varchar language plpgsql as $$
declare
    live {SCHEMA}.receiver;
    new_name varchar(10);
begin
    perform 1 from {SCHEMA}.journal j where j.library = change_receiver.library and j.name = change_receiver.name
    for update;
    select * into live from {SCHEMA}.receiver r
    where r.journal_library = change_receiver.library and r.journal_name = change_receiver.name
      and r.detached is null;
    perform {SCHEMA}.write_entry(library, name, 'J', 'NR');
    new_name := left(live.name, 6) || lpad((right(live.name, 4)::integer + 1)::text, 4, '0');
    update {SCHEMA}.receiver set detached = clock_timestamp()::timestamp
    where receiver.library = live.library and receiver.name = live.name;
    insert into {SCHEMA}.receiver (journal_library, journal_name, library, name, chain_position, sequence_reset,
                                   attached, previous_library, previous_name)
    values (live.journal_library, live.journal_name, live.library, new_name, live.chain_position + 1,
            reset_sequence, clock_timestamp()::timestamp, live.library, live.name);
    if reset_sequence then
        update {SCHEMA}.journal j set next_sequence = 1
        where j.library = change_receiver.library and j.name = change_receiver.name;
    end if;
    perform {SCHEMA}.write_entry(library, name, 'J', 'PR');
    return new_name;
end
$$;
-- DLTJRNRCV ([DR]): not the attached receiver, and not one in the middle of the chain (oldest first).
create or replace function {SCHEMA}.delete_receiver(library varchar, name varchar) returns void
language plpgsql as $$
declare
    doomed {SCHEMA}.receiver;
begin
    select * into doomed from {SCHEMA}.receiver r where r.library = delete_receiver.library
        and r.name = delete_receiver.name;
    if not found then
        raise exception using errcode = '38501', message = format(
            'CPF9801 Object %s in library %s not found (type *JRNRCV)', name, library);
    end if;
    if doomed.detached is null then
        raise exception using errcode = '38501', message = format(
            'CPF7022 Receiver %s in library %s is attached to journal %s and cannot be deleted', name, library,
            doomed.journal_name);
    end if;
    if exists (select 1 from {SCHEMA}.receiver r where r.journal_library = doomed.journal_library
               and r.journal_name = doomed.journal_name and r.chain_position < doomed.chain_position) then
        raise exception using errcode = '38501', message = format(
            'CPF7024 Receiver %s in library %s not deleted: an older receiver of the chain is still online '
            '(receivers are deleted in the order they were detached)', name, library);
    end if;
    delete from {SCHEMA}.entry e where e.receiver_library = doomed.library and e.receiver_name = doomed.name;
    delete from {SCHEMA}.receiver r where r.library = doomed.library and r.name = doomed.name;
end
$$;
-- ALTER TABLE ADD/DROP COLUMN (and its comments): later images have the new layout; D CG "file changed"
-- marks the change ([ET]).
create or replace function {SCHEMA}.change_layout(file regclass, statements text) returns void
language plpgsql as $$
declare
    f {SCHEMA}.journaled_file;
begin
    execute statements;
    select * into f from {SCHEMA}.journaled_file j where j.relid = change_layout.file;
    if found then
        perform {SCHEMA}.start_journaling(file, f.images);
        perform {SCHEMA}.write_entry(f.journal_library, f.journal_name, 'D', 'CG', f.library, f.file);
    end if;
end
$$;
-- What IBM's journal holds after a rolled-back transaction: the statements' R entries, their rollback images
-- and C RB, while the data stays as it was. PostgreSQL keeps nothing of rolled-back work, so the statements
-- run in a subtransaction that is rolled back after their entries were captured.
create or replace function {SCHEMA}.journal_rolled_back(statements text) returns void language plpgsql as $$
declare
    captured {SCHEMA}.pending[];
    cycles {SCHEMA}.cycle[];
begin
    begin
        execute statements;
        select array_agg(p order by p.ord) into captured from {SCHEMA}.pending p where p.txid = txid_current();
        select array_agg(c) into cycles from {SCHEMA}.cycle c where c.txid = txid_current();
        raise exception using errcode = 'XJRBK', message = 'rolled back';
    exception when sqlstate 'XJRBK' then
        null;
    end;
    insert into {SCHEMA}.pending (txid, journal_library, journal_name, code, type, count_or_rrn, object_library,
                                  object_file, null_value_indicators, entry_data, restore_nulls, restore_data)
    select p.txid, p.journal_library, p.journal_name, p.code, p.type, p.count_or_rrn, p.object_library,
           p.object_file, p.null_value_indicators, p.entry_data, p.restore_nulls, p.restore_data
    from unnest(captured) p order by p.ord;
    insert into {SCHEMA}.cycle
    select (c).txid, (c).journal_library, (c).journal_name, (c).commitment_control, true, (c).job_name,
           (c).job_user, (c).job_number, (c).user_name, (c).program_name, (c).program_library
    from unnest(cycles) c;
end
$$;
"""

DISPLAY_JOURNAL_DDL = f"""
drop function if exists "QSYS2"."DISPLAY_JOURNAL"(varchar, varchar, varchar, varchar, timestamp, numeric,
    varchar, varchar, varchar, varchar, varchar, varchar, varchar, varchar, varchar, varchar, varchar, timestamp,
    numeric);
create function "QSYS2"."DISPLAY_JOURNAL"(
    journal_library varchar, journal_name varchar,
    starting_receiver_library varchar default null, starting_receiver_name varchar default null,
    starting_timestamp timestamp default null, starting_sequence numeric default null,
    journal_codes varchar default null, journal_entry_types varchar default null,
    object_library varchar default null, object_name varchar default null,
    object_objtype varchar default null, object_member varchar default null,
    "user" varchar default null, job varchar default null, program varchar default null,
    ending_receiver_library varchar default null, ending_receiver_name varchar default null,
    ending_timestamp timestamp default null, ending_sequence numeric default null
) returns table (
    "ENTRY_TIMESTAMP" timestamp, "SEQUENCE_NUMBER" numeric(21, 0), "JOURNAL_CODE" char(1),
    "JOURNAL_ENTRY_TYPE" char(2), "COUNT_OR_RRN" numeric(21, 0), "INDICATOR_FLAG" char(1),
    "OBJECT" varchar(30), "OBJECT_TYPE" varchar(7), "JOB_NAME" varchar(10), "JOB_USER" varchar(10),
    "JOB_NUMBER" varchar(6), "CURRENT_USER" varchar(10), "USER_NAME" varchar(10), "PROGRAM_NAME" varchar(10),
    "PROGRAM_LIBRARY" varchar(10), "COMMIT_CYCLE" numeric(21, 0), "RECEIVER_NAME" varchar(10),
    "RECEIVER_LIBRARY" varchar(10), "JOURNAL_LIBRARY" varchar(10), "JOURNAL_NAME" varchar(10),
    "NULL_VALUE_INDICATORS" bytea, "ENTRY_DATA" bytea
) language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
#variable_conflict use_column
declare
    jlib text := upper(trim(journal_library));
    jname text := upper(trim(journal_name));
    start_name text := upper(coalesce(trim(starting_receiver_name), '*CURRENT'));
    start_library text := upper(trim(starting_receiver_library));
    end_name text := upper(coalesce(trim(ending_receiver_name), '*CURRENT'));
    end_library text := upper(trim(ending_receiver_library));
    codes text[] := regexp_split_to_array(upper(trim(journal_codes)), '[[:space:],]+');
    types text[] := regexp_split_to_array(upper(trim(journal_entry_types)), '[[:space:],]+');
    objlib text := upper(trim(object_library));
    objects text[] := regexp_split_to_array(upper(trim(object_name)), '[[:space:],]+');
    member text := upper(coalesce(trim(object_member), '*FIRST'));
    first_position integer;
    last_position integer;
    from_entry bigint;
    to_entry bigint;
    missing text;
    denied text;
begin
    if not exists (select 1 from {SCHEMA}.journal j where j.library = jlib and j.name = jname) then
        raise exception using errcode = '38501', message = format(
            'SQL0443 CPF9801 Object %s in library %s not found (type *JRN)', jname, jlib);
    end if;
    if coalesce("user", job, program) is not null then
        raise exception using errcode = '0A000', message =
            'stand-in: the USER, JOB and PROGRAM filters of DISPLAY_JOURNAL are not emulated';
    end if;
    -- [DJ]: "A value cannot be specified for both starting-timestamp and starting-sequence" (and likewise for
    -- the ending values).
    if starting_timestamp is not null and starting_sequence is not null then
        raise exception using errcode = '38501', message =
            'SQL0443 STARTING_TIMESTAMP and STARTING_SEQUENCE cannot both be specified';
    end if;
    if ending_timestamp is not null and ending_sequence is not null then
        raise exception using errcode = '38501', message =
            'SQL0443 ENDING_TIMESTAMP and ENDING_SEQUENCE cannot both be specified';
    end if;
    -- [DJ]: *OBJEXIST on the journal is required when object-name is omitted or names an object that no
    -- longer exists; *USE on every named object. The owner stands for a user with *OBJEXIST.
    if not pg_has_role(session_user, current_user, 'MEMBER') then
        if object_name is null then
            raise exception using errcode = '38501', message = format(
                'SQL0443 CPF9802 Not authorized to object %s in %s type *JRN: *OBJEXIST authority is required '
                'when OBJECT_NAME is omitted', jname, jlib);
        end if;
        if objects <> array['*ALL'] then
            select string_agg(o.name, ', ') filter (where c.oid is null),
                   string_agg(o.name, ', ') filter (where c.oid is not null
                                                      and not has_table_privilege(session_user, c.oid, 'SELECT'))
            into missing, denied
            from unnest(objects) o(name)
            left join (pg_class c join pg_namespace n on n.oid = c.relnamespace)
              on left(n.nspname, 10) = objlib and left(c.relname, 10) = o.name and c.relkind in ('r', 'v');
            if missing is not null then
                raise exception using errcode = '38501', message = format(
                    'SQL0443 CPF9802 Not authorized to object %s in %s type *JRN: *OBJEXIST authority is required '
                    'when OBJECT_NAME names an object that does not exist (%s)', jname, jlib, missing);
            end if;
            if denied is not null then
                raise exception using errcode = '38501', message = format(
                    'SQL0443 CPF9802 Not authorized to object %s in %s type *FILE', denied, objlib);
            end if;
        end if;
    end if;
    if object_objtype is not null and upper(trim(object_objtype)) <> '*FILE' then
        return;  -- the stand-in's journals hold files only
    end if;
    -- The receiver range. *CURCHAIN: from the oldest receiver of the chain that includes the attached one;
    -- *CURAVLCHN: its available receivers (all of them in the stand-in); *CURSEQCHN: from the receiver where
    -- the current sequence numbering began ([DJ]); *CURRENT (the default): the attached receiver.
    select case start_name
               when '*CURRENT' then max(r.chain_position) filter (where r.detached is null)
               when '*CURCHAIN' then min(r.chain_position)
               when '*CURAVLCHN' then min(r.chain_position)
               when '*CURSEQCHN' then coalesce(max(r.chain_position) filter (where r.sequence_reset),
                                               min(r.chain_position))
               else max(r.chain_position) filter (where r.name = start_name
                                                    and (start_library is null or r.library = start_library)) end,
           case end_name
               when '*CURRENT' then max(r.chain_position) filter (where r.detached is null)
               else max(r.chain_position) filter (where r.name = end_name
                                                    and (end_library is null or r.library = end_library)) end
    into first_position, last_position
    from {SCHEMA}.receiver r where r.journal_library = jlib and r.journal_name = jname;
    if first_position is null or last_position is null then
        -- A starting (or ending) receiver that no longer exists: the object is not found. IBM does not list
        -- the message on the page; CPF9801 is what any command naming a missing object sends.
        raise exception using errcode = '38501', message = format(
            'SQL0443 CPF9801 Object %s in library %s not found (type *JRNRCV)',
            case when first_position is null then start_name else end_name end,
            coalesce(case when first_position is null then start_library else end_library end, jlib));
    end if;
    -- A starting sequence selects the first entry at or after it in the range (the first occurrence when
    -- numbers were reset, [DSP]); IBM's page does not say what happens when no entry has that number: the
    -- stand-in starts at the next higher one, and returns nothing when there is none.
    if starting_sequence is not null then
        select min(e.position) into from_entry
        from {SCHEMA}.entry e join {SCHEMA}.receiver r on r.library = e.receiver_library and r.name = e.receiver_name
        where e.journal_library = jlib and e.journal_name = jname
          and r.chain_position between first_position and last_position and e.sequence >= starting_sequence;
        if from_entry is null then
            return;
        end if;
    end if;
    if ending_sequence is not null then
        select min(e.position) into to_entry
        from {SCHEMA}.entry e join {SCHEMA}.receiver r on r.library = e.receiver_library and r.name = e.receiver_name
        where e.journal_library = jlib and e.journal_name = jname
          and r.chain_position between first_position and last_position and e.sequence = ending_sequence
          and e.position >= coalesce(from_entry, 0);
    end if;
    return query
    select e.entry_timestamp, e.sequence, e.code, e.type, e.count_or_rrn, '0'::char(1),
           case when e.object_file is not null
                then (rpad(e.object_file, 10) || rpad(e.object_library, 10) || rpad(e.object_file, 10))::varchar(30)
           end,
           case when e.object_file is not null then '*QDDS' end::varchar(7),
           e.job_name, e.job_user, e.job_number, e.user_name, e.user_name, e.program_name, e.program_library,
           e.commit_cycle, e.receiver_name, e.receiver_library, e.journal_library, e.journal_name,
           case when e.code = 'R' then e.null_value_indicators end, e.entry_data
    from {SCHEMA}.entry e join {SCHEMA}.receiver r on r.library = e.receiver_library and r.name = e.receiver_name
    where e.journal_library = jlib and e.journal_name = jname
      and r.chain_position between first_position and last_position
      and (from_entry is null or e.position >= from_entry)
      and (to_entry is null or e.position <= to_entry)
      and (starting_timestamp is null or e.entry_timestamp >= starting_timestamp)
      and (ending_timestamp is null or e.entry_timestamp <= ending_timestamp)
      and (codes is null or codes = array['*ALL'] or e.code = any(codes)
           or ('*CTL' = any(codes) and e.code = 'J'))
      and (types is null or types = array['*ALL'] or e.type = any(types) or ('*RCD' = any(types) and e.code = 'R'))
      -- Naming objects selects their entries only (DSPJRN FILE: "only the journal entries for the specified
      -- files"): C and J entries, which belong to no object, are then not returned.
      and (objects is null or objects = array['*ALL'] and e.object_file is not null
           or (e.object_library = objlib and e.object_file = any(objects)
               and (member in ('*FIRST', '*ALL') or member = e.object_file)))
    order by e.position;
end
$$;
revoke all on function "QSYS2"."DISPLAY_JOURNAL" from public;
"""

CATALOG_DDL = f"""
drop view if exists "QSYS2"."JOURNALED_OBJECTS";
create view "QSYS2"."JOURNALED_OBJECTS" as  -- [JO], a subset of its columns
select f.journal_library::varchar(10) as "JOURNAL_LIBRARY", f.journal_name::varchar(10) as "JOURNAL_NAME",
       1::integer as "IASP_NUMBER", '*SYSBAS'::varchar(10) as "IASP_NAME", '*FILE'::varchar(7) as "OBJECT_TYPE",
       f.library::varchar(10) as "OBJECT_LIBRARY", f.file::varchar(10) as "OBJECT_NAME",
       'PHYSICAL'::varchar(8) as "FILE_TYPE", f.images::varchar(6) as "JOURNAL_IMAGES",
       '*OPNCLO'::varchar(15) as "OMIT_JOURNAL_ENTRY", f.started as "JOURNAL_START_TIMESTAMP"
from {SCHEMA}.journaled_file f;
create or replace view "QSYS2"."JOURNAL_INFO" as  -- [JI], a subset of its columns
select j.name::varchar(10) as "JOURNAL_NAME", j.library::varchar(10) as "JOURNAL_LIBRARY",
       1::integer as "ASP_NUMBER", '*SYSBAS'::varchar(10) as "JOURNAL_ASPGRP",
       a.name::varchar(10) as "ATTACHED_JOURNAL_RECEIVER_NAME",
       a.library::varchar(10) as "ATTACHED_JOURNAL_RECEIVER_LIBRARY",
       'QSYSOPR'::varchar(10) as "MESSAGE_QUEUE", 'QSYS'::varchar(10) as "MESSAGE_QUEUE_LIBRARY",
       'NO'::varchar(3) as "DELETE_RECEIVER_OPTION", 'LOCAL'::varchar(6) as "JOURNAL_TYPE",
       'ACTIVE'::varchar(8) as "JOURNAL_STATE",
       (select count(*) from {SCHEMA}.receiver r where r.journal_library = j.library
         and r.journal_name = j.name)::integer as "NUMBER_JOURNAL_RECEIVERS",
       (select count(*) from {SCHEMA}.journaled_file f where f.journal_library = j.library
         and f.journal_name = j.name)::integer as "JOURNALED_OBJECTS"
from {SCHEMA}.journal j
left join {SCHEMA}.receiver a on a.journal_library = j.library and a.journal_name = j.name and a.detached is null;
create or replace view "QSYS2"."JOURNAL_RECEIVER_INFO" as  -- [JRI], a subset of its columns
select r.library::varchar(10) as "JOURNAL_RECEIVER_LIBRARY", r.name::varchar(10) as "JOURNAL_RECEIVER_NAME",
       'COLLECTION - created by SQL'::varchar(50) as "DESCRIPTIVE_TEXT",
       1::integer as "JOURNAL_RECEIVER_ASP_NUMBER", '*SYSBAS'::varchar(10) as "JOURNAL_RECEIVER_ASP_NAME",
       r.journal_library::varchar(10) as "JOURNAL_LIBRARY", r.journal_name::varchar(10) as "JOURNAL_NAME",
       -- WRKJRNA's receiver directory: ATTACHED while attached, ONLINE once detached and not saved.
       (case when r.detached is null then 'ATTACHED' else 'ONLINE' end)::varchar(8) as "STATUS",
       coalesce(s.entries, 0)::bigint as "NUMBER_OF_JOURNAL_ENTRIES",
       s.first_sequence::numeric(21, 0) as "FIRST_SEQUENCE_NUMBER",
       s.last_sequence::numeric(21, 0) as "LAST_SEQUENCE_NUMBER",
       r.attached as "ATTACH_TIMESTAMP", r.detached as "DETACH_TIMESTAMP", null::timestamp as "SAVE_TIMESTAMP",
       r.previous_library::varchar(10) as "PREVIOUS_JOURNAL_RECEIVER_LIBRARY",
       r.previous_name::varchar(10) as "PREVIOUS_JOURNAL_RECEIVER",
       n.library::varchar(10) as "NEXT_JOURNAL_RECEIVER_LIBRARY", n.name::varchar(10) as "NEXT_JOURNAL_RECEIVER"
from {SCHEMA}.receiver r
left join {SCHEMA}.receiver n on n.journal_library = r.journal_library and n.journal_name = r.journal_name
                             and n.chain_position = r.chain_position + 1
left join lateral (
    select count(*) as entries,
           (select e.sequence from {SCHEMA}.entry e where e.receiver_library = r.library
              and e.receiver_name = r.name order by e.position limit 1) as first_sequence,
           (select e.sequence from {SCHEMA}.entry e where e.receiver_library = r.library
              and e.receiver_name = r.name order by e.position desc limit 1) as last_sequence
    from {SCHEMA}.entry e where e.receiver_library = r.library and e.receiver_name = r.name
) s on true;
"""


def grants_sql(reader: str = READER) -> str:
    return (
        f'grant execute on function "QSYS2"."DISPLAY_JOURNAL" to {reader};'
        f'grant select on "QSYS2"."JOURNALED_OBJECTS", "QSYS2"."JOURNAL_INFO", "QSYS2"."JOURNAL_RECEIVER_INFO" '
        f"to {reader};"
        # The catalog views are the owner's, so they read the journal's storage with the owner's rights.
    )


def install(cursor: psycopg2.extensions.cursor) -> None:
    """Installs the journal machinery and journals the sandbox's journaled files (idempotent; called by
    `schema.create_schema`, so `scripts/setup` and every seed install it)."""
    cursor.execute("select pg_advisory_xact_lock(hashtext('as400_journal install'))")
    for ddl in (STORAGE_DDL, ENCODING_DDL, GENERATOR_DDL, CAPTURE_DDL, CONTROL_DDL, DISPLAY_JOURNAL_DDL, CATALOG_DDL):
        cursor.execute(ddl)
    for table, images in JOURNALED_FILES.items():
        cursor.execute(
            f"select {SCHEMA}.start_journaling(%s::regclass, %s) "
            f"where not exists (select 1 from {SCHEMA}.journaled_file where relid = %s::regclass)",
            (_quoted(table), images, _quoted(table)),
        )
    cursor.execute(grants_sql())


def _quoted(table: str) -> str:
    library, name = table.split(".")
    return f'"{library}"."{name}"'


def _call(owner_url: str, statement: str, parameters: tuple[object, ...]) -> object:
    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        cursor.execute(statement, parameters)
        result = cursor.fetchone()
    connection.close()
    return result[0] if result else None


def start_journaling(owner_url: str, table: str, images: str = "*BOTH") -> None:
    """STRJRNPF for a stand-in file ('LIBRARY.FILE', SQL names) with JOURNAL_IMAGES *AFTER or *BOTH; calling it
    on a journaled file changes its images."""
    _call(owner_url, f"select {SCHEMA}.start_journaling(%s::regclass, %s)", (_quoted(table), images))


def end_journaling(owner_url: str, table: str) -> None:
    """ENDJRNPF: the file's changes are no longer journaled."""
    _call(owner_url, f"select {SCHEMA}.end_journaling(%s::regclass)", (_quoted(table),))


def change_receiver(owner_url: str, journal_library: str, reset_sequence: bool = False,
                    journal_name: str = "QSQJRN") -> str:
    """CHGJRN JRNRCV(*GEN): attaches a new receiver (QSQJRN0002, ...) and returns its name; `reset_sequence`
    restarts the sequence numbers at 1 (SEQOPT(*RESET))."""
    return str(_call(owner_url, f"select {SCHEMA}.change_receiver(%s, %s, %s)",
                     (journal_library, journal_name, reset_sequence)))


def delete_receiver(owner_url: str, receiver_library: str, receiver_name: str) -> None:
    """DLTJRNRCV: removes a detached receiver and its entries (the oldest first, as IBM i requires)."""
    _call(owner_url, f"select {SCHEMA}.delete_receiver(%s, %s)", (receiver_library, receiver_name))


def add_column(owner_url: str, table: str, column: str, sql_type: str, zoned: bool = False) -> None:
    """Changes a file's layout (e.g. `add_column(url, "PRODUCTLIB.PRODUCTS", "NOTE", "numeric(5, 0)", zoned=True)`);
    images written afterwards have the new field. `zoned` makes a numeric field zoned (NUMERIC) in the catalog."""
    statements = f'alter table {_quoted(table)} add column "{column}" {sql_type};'
    if zoned:
        statements += f"comment on column {_quoted(table)}.\"{column}\" is 'ZONED';"
    _call(owner_url, f"select {SCHEMA}.change_layout(%s::regclass, %s)", (_quoted(table), statements))


def drop_column(owner_url: str, table: str, column: str) -> None:
    """Undoes `add_column`."""
    _call(owner_url, f"select {SCHEMA}.change_layout(%s::regclass, %s)",
          (_quoted(table), f'alter table {_quoted(table)} drop column "{column}"'))


def journal_rolled_back(owner_url: str, statements: str) -> None:
    """Runs `statements` and rolls them back, leaving in the journal what IBM i leaves after a rollback: the R
    entries, their rollback images (DR, BR, UR) and C RB; the data is unchanged."""
    _call(owner_url, f"select {SCHEMA}.journal_rolled_back(%s)", (statements,))
