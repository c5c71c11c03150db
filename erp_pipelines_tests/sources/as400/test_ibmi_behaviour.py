"""The stand-in says no where IBM i would, and the connector copes: a client code page that is not UTF-8, CCSID
65535 columns, DDS fields with alias names, multi-member files, fields Db2 for i cannot deliver (SQL0802),
names with $ # @, sentinel change stamps and files without a change-stamp index.

Each stand-in behaviour is documented IBM i behaviour (cited in erp_sandbox/as400 and next to the connector
code); each test here failed against the connector before it handled it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.core.source import PermanentSourceError, SchemaDriftError
from erp_pipelines.core.spec import Column
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sources.as400.adapter import As400Source, to_cyymmdd_hhmmss
from erp_pipelines.sources.as400.connection import As400Settings
from erp_pipelines.sources.as400.resource import As400Resource
from erp_sandbox.as400 import dds
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration

PRODUCT, MEASUREMENT, PRICING = get_spec("product"), get_spec("product_measurement"), get_spec("product_pricing")
BLANKS = b"\x40" * 6  # a packed DECIMAL(11, 4) field left blank by CPYF FMTOPT(*NOCHK)


def _rows(engine: sa.Engine, statement: str) -> list:
    with engine.connect() as connection:
        return connection.execute(sa.text(statement)).all()


def _stand_in(as400: As400Resource, **changes: object) -> As400Settings:
    return as400.replaced(**changes)  # type: ignore[arg-type]


def test_text_does_not_depend_on_the_client_code_page(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine,
    as400_source_sql: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """psqlODBC's ANSI driver delivers text in the client encoding (here Windows-1252, as the IBM i driver
    delivers narrow text in the client's code page, e.g. 819); arrow-odbc expects UTF-8. The profile pins the
    encoding (CCSID=1208 on IBM i, client_encoding UTF8 on the stand-in), so accented text loads intact."""
    seed(products=5, bad_share=0.0)
    as400_source_sql("""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'MÜLLER GRÖSSE ½ € ÇA'
                        where "ITEMNO" = 'ITM000000001'""")
    monkeypatch.setenv("PGCLIENTENCODING", "WIN1252")
    settings = _stand_in(as400, dsn=None, odbc_driver="PostgreSQL ANSI")
    report = run_sync(PRODUCT, As400Source(settings), app_db, mode="full")
    assert (report.status, report.created) == ("COMPLETED", 5)
    assert _rows(app_db, "select description from product where item_number = 'ITM000000001'") == [
        ("MÜLLER GRÖSSE ½ € ÇA",)]


@pytest.fixture
def description_as(as400_source_sql: Callable[[str], None]) -> Iterator[Callable[[str], None]]:
    """Changes PRODUCTS.ITEMDESC for one test (DDL given as `alter table ... <ddl>`); restored afterwards."""
    undo: list[str] = []

    def _change(ddl: str, restore: str) -> None:
        as400_source_sql(f'alter table "PRODUCTLIB"."PRODUCTS" {ddl}')
        undo.append(restore)

    yield _change
    for statement in reversed(undo):
        as400_source_sql(statement)


def test_a_dds_field_is_found_by_its_system_name_or_its_alias(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine,
    as400_source_sql: Callable[[str], None], description_as: Callable[[str, str], None],
) -> None:
    """A DDS field ITEMDESC with ALIAS(ITEM_DESCRIPTION): SYSCOLUMNS2 shows COLUMN_NAME ITEM_DESCRIPTION and
    SYSTEM_COLUMN_NAME ITEMDESC. It is one column, not a missing one plus a new one (schema drift)."""
    seed(products=5, bad_share=0.0)
    description_as('rename column "ITEMDESC" to "ITEM_DESCRIPTION"',
                   'alter table "PRODUCTLIB"."PRODUCTS" rename column "ITEM_DESCRIPTION" to "ITEMDESC"')
    as400_source_sql("""comment on column "PRODUCTLIB"."PRODUCTS"."ITEM_DESCRIPTION" is 'SYSTEM_NAME=ITEMDESC'""")
    by_system_name = run_sync(PRODUCT, as400.source(), app_db, mode="full")
    assert (by_system_name.status, by_system_name.created) == ("COMPLETED", 5)
    by_alias = dataclasses.replace(PRODUCT, columns=tuple(
        Column.of("description", "ITEM_DESCRIPTION", column.decoder, column.sql_type, nullable=False)
        if column.target == "description" else column for column in PRODUCT.columns))
    as400_source_sql("""update "PRODUCTLIB"."PRODUCTS" set "ITEM_DESCRIPTION" = 'RENAMED'
                        where "ITEMNO" = 'ITM000000002'""")
    assert run_sync(by_alias, as400.source(), app_db, mode="full").updated == 1
    assert _rows(app_db, "select description from product where item_number = 'ITM000000002'") == [("RENAMED",)]


def test_a_for_bit_data_column_read_as_text_stops_before_reading_naming_it(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine,
    description_as: Callable[[str, str], None],
) -> None:
    """CCSID 65535: the driver hands over EBCDIC bytes (TRANSLATE=0). Read with TrimmedText they used to load
    as whatever the bytes cast to; now the catalog's CCSID stops the spec before the first batch."""
    seed(products=5, bad_share=0.0)
    description_as('alter column "ITEMDESC" drop default, alter column "ITEMDESC" type bytea '
                   "using convert_to(rtrim(\"ITEMDESC\"), 'UTF8')",
                   'alter table "PRODUCTLIB"."PRODUCTS" alter column "ITEMDESC" type char(40) using \'\', '
                   "alter column \"ITEMDESC\" set default ''")
    with pytest.raises(SchemaDriftError, match=r"ITEMDESC \(read into description with TrimmedText\) are CCSID 65535"):
        run_sync(PRODUCT, as400.source(), app_db, mode="full")
    assert _rows(app_db, "select count(*) from product") == [(0,)]


def test_a_multi_member_file_is_refused_naming_the_alias_to_create(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine,
    as400_source_sql: Callable[[str], None],
) -> None:
    """SQL reads only the first member of a multi-member file; QSYS2.SYSTABLESTAT counts the members."""
    seed(products=5, bad_share=0.0)
    as400_source_sql("""comment on table "PRODUCTLIB"."PRODUCTS" is 'MEMBERS=3'""")
    try:
        with pytest.raises(SchemaDriftError, match=r"PRODUCTLIB.PRODUCTS has 3 members.*CREATE ALIAS"):
            run_sync(PRODUCT, as400.source(), app_db, mode="full")
    finally:
        as400_source_sql("""comment on table "PRODUCTLIB"."PRODUCTS" is null""")


@pytest.fixture
def packed_measurements(as400_owner_url: str, seed: Callable[..., SeedManifest]) -> Iterator[None]:
    """MEASUREMENTS with DDS packed storage for MEASVAL and CHGDAT (see erp_sandbox/as400/dds.py)."""
    seed(products=60, warehouses=1, bad_share=0.0)
    dds.store_packed(as400_owner_url, "PRODUCTLIB.MEASUREMENTS", {"MEASVAL": (11, 4), "CHGDAT": (7, 0)})
    try:
        yield
    finally:
        dds.restore(as400_owner_url, "PRODUCTLIB.MEASUREMENTS")


def test_rows_the_driver_cannot_deliver_are_quarantined_with_their_bytes_and_the_rest_loads(
    packed_measurements: None, as400: As400Resource, app_db: sa.Engine, as400_owner_url: str,
) -> None:
    """SQL0802 at fetch: the read is narrowed by key until the two bad rows are alone; each is quarantined
    with its key and the HEX of the bad field, the other 238 rows load, and replay keeps them quarantined
    until the bytes are fixed. Before, the whole table failed as a retryable connection error."""
    small_batches = as400.model_copy(update={"batch_rows": 25})
    run_sync(PRODUCT, small_batches.source(), app_db, mode="full")
    dds.plant_bytes(as400_owner_url, "PRODUCTLIB.MEASUREMENTS", "MEASVAL",
                    {"ITEMNO": "ITM000000009", "MEASTYP": "WGT"}, BLANKS)
    dds.plant_bytes(as400_owner_url, "PRODUCTLIB.MEASUREMENTS", "CHGDAT",
                    {"ITEMNO": "ITM000000050", "MEASTYP": "LEN"}, b"\x00\x00\x00\x00")
    report = run_sync(MEASUREMENT, small_batches.source(), app_db, mode="full")
    assert (report.status, report.processed, report.created, report.rejected) == ("PARTIALLY_COMPLETED", 240, 238, 2)
    assert _rows(app_db, "select count(distinct (item_number, measure_type)) from product_measurement") == [(238,)]
    quarantined = {"|".join(row.source_key): row for row in _rows(
        app_db, "select source_key, rules, error_message, raw_record from sync_error where resolved_at is null")}
    assert sorted(quarantined) == ["ITM000000009|WGT", "ITM000000050|LEN"]
    bad_value, bad_stamp = quarantined["ITM000000009|WGT"], quarantined["ITM000000050|LEN"]
    assert bad_value.rules == ["value:decode"] and bad_stamp.rules == ["source_changed_at:decode"]
    assert "MEASVAL=404040404040 could not be delivered by the driver (SQL0802" in bad_value.error_message
    assert bad_value.raw_record["MEASVAL"] == "404040404040" and bad_value.raw_record["MEASUOM"].strip() == "KG"
    assert bad_stamp.raw_record["CHGDAT"] == "00000000"

    replay = run_sync(MEASUREMENT, small_batches.source(), app_db, mode="replay")
    assert (replay.processed, replay.rejected) == (2, 2)  # still undeliverable: not closed as "gone"
    dds.plant_bytes(as400_owner_url, "PRODUCTLIB.MEASUREMENTS", "MEASVAL",
                    {"ITEMNO": "ITM000000009", "MEASTYP": "WGT"}, bytes.fromhex("00000012345F"))
    fixed = run_sync(MEASUREMENT, small_batches.source(), app_db, mode="replay")
    assert (fixed.created, fixed.rejected) == (1, 1)
    assert _rows(app_db, "select value from product_measurement where item_number = 'ITM000000009' "
                         "and measure_type = 'WGT'") == [(decimal.Decimal("1.2345"),)]


def test_an_undeliverable_key_is_a_permanent_error_naming_the_table(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine, as400_owner_url: str,
) -> None:
    """When the key itself cannot be delivered (EFFDAT, packed, part of PRICING's key) the rows cannot be set
    apart: the run fails at once, permanently (a retry reads the same bytes), naming the file."""
    from erp_pipelines.sources.as400.adapter import As400DataMappingError

    seed(products=10, warehouses=1, bad_share=0.0)
    dds.store_packed(as400_owner_url, "PRODUCTLIB.PRICING", {"EFFDAT": (7, 0)})
    try:
        dds.plant_bytes(as400_owner_url, "PRODUCTLIB.PRICING", "EFFDAT",
                        {"ITEMNO": "ITM000000004", "PRCLST": "WHSL"}, b"\x40\x40\x40\x40")
        with pytest.raises(As400DataMappingError, match=r"(?s)PRODUCTLIB\.PRICING.*SQL0802") as failure:
            run_sync(PRICING, as400.source(), app_db, mode="full")
        assert isinstance(failure.value, PermanentSourceError)
        assert as400.password not in str(failure.value)
    finally:
        dds.restore(as400_owner_url, "PRODUCTLIB.PRICING")


def test_names_beginning_with_dollar_hash_or_at_are_read(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine,
    as400_source_sql: Callable[[str], None],
) -> None:
    """IBM i system names may begin with $, # or @ (file #ITEMS, field $SKU); the connector refused them."""
    seed(products=4, bad_share=0.0)
    as400_source_sql('drop table if exists "PRODUCTLIB"."#ITEMS"')
    as400_source_sql('create table "PRODUCTLIB"."#ITEMS" as select * from "PRODUCTLIB"."PRODUCTS"')
    as400_source_sql('alter table "PRODUCTLIB"."#ITEMS" rename column "SKU" to "$SKU"')
    as400_source_sql('grant select on "PRODUCTLIB"."#ITEMS" to as400_reader')
    try:
        spec = dataclasses.replace(PRODUCT, source_table="PRODUCTLIB.#ITEMS", columns=tuple(
            Column.of("sku", "$SKU", column.decoder, column.sql_type, nullable=False)
            if column.target == "sku" else column for column in PRODUCT.columns))
        allowed = f"{as400.allowed_tables},PRODUCTLIB.#ITEMS"
        source = As400Source(_stand_in(as400, allowed_tables=allowed))
        report = run_sync(spec, source, app_db, mode="full")
        assert (report.status, report.created) == ("COMPLETED", 4)
    finally:
        as400_source_sql('drop table "PRODUCTLIB"."#ITEMS"')


def test_a_sentinel_change_stamp_does_not_freeze_the_sensor_marker(
    seed: Callable[..., SeedManifest], as400: As400Resource, as400_source_sql: Callable[[str], None],
) -> None:
    """One row stamped 9991231 ("never") was the newest stamp for ever, so updates stopped moving the marker."""
    as400 = as400.replaced(change_tracking="stamps")  # the stamp marker; a journaled file's is the journal's
    seed(products=10, bad_share=0.0)
    as400_source_sql("""update "PRODUCTLIB"."PRODUCTS" set "CHGDAT" = 9991231 where "ITEMNO" = 'ITM000000001'""")
    before = as400.source().change_markers([PRODUCT])["product"]
    date, time = to_cyymmdd_hhmmss(dt.datetime.now().replace(microsecond=0))
    as400_source_sql(f"""update "PRODUCTLIB"."PRODUCTS" set "CHGDAT" = {date}, "CHGTIM" = {time}
                         where "ITEMNO" = 'ITM000000002'""")
    after = as400.source().change_markers([PRODUCT])["product"]
    assert after != before and after.startswith(f"{date}.{time}/")


def test_a_sensor_on_a_file_without_a_stamp_index_fails_naming_the_index_to_create(
    seed: Callable[..., SeedManifest], as400: As400Resource, as400_source_sql: Callable[[str], None],
) -> None:
    """Without an index led by CHGDAT, CHGTIM every tick sorts the file on IBM i (Ordering optimization)."""
    as400 = as400.replaced(change_tracking="stamps")  # the stamp marker; a journaled file's is the journal's
    seed(products=3, bad_share=0.0)
    as400_source_sql('drop index "PRODUCTLIB"."PRODUCTS_CHG"')
    try:
        with pytest.raises(PermanentSourceError, match=r"PRODUCTLIB.PRODUCTS has no index led by CHGDAT, CHGTIM.*"
                                                       r"CREATE INDEX"):
            as400.source().change_markers([PRODUCT])
        report = "\n".join(as400.source().connection_report([PRODUCT]))
        assert "sensor: PRODUCTLIB.PRODUCTS has no index led by CHGDAT, CHGTIM" in report
    finally:
        as400_source_sql('create index if not exists "PRODUCTS_CHG" on "PRODUCTLIB"."PRODUCTS" ("CHGDAT", "CHGTIM")')


@pytest.fixture
def measurements_without_unique_key(as400_source_sql: Callable[[str], None]) -> Iterator[None]:
    """MEASUREMENTS as a DDS file keyed but not UNIQUE: duplicates exist on real IBM i."""
    as400_source_sql('alter table "PRODUCTLIB"."MEASUREMENTS" drop constraint "MEASUREMENTS_PK"')
    as400_source_sql('create index "MEASUREMENTS_KEY" on "PRODUCTLIB"."MEASUREMENTS" ("ITEMNO", "MEASTYP")')
    try:
        yield
    finally:
        as400_source_sql('drop index "PRODUCTLIB"."MEASUREMENTS_KEY"')
        as400_source_sql('delete from "PRODUCTLIB"."MEASUREMENTS"')
        as400_source_sql('alter table "PRODUCTLIB"."MEASUREMENTS" add constraint "MEASUREMENTS_PK" '
                         'primary key ("ITEMNO", "MEASTYP")')


def test_a_read_failing_mid_stream_resumes_with_every_row_delivered_exactly_once(
    seed: Callable[..., SeedManifest], as400: As400Resource, as400_owner_url: str,
    as400_source_sql: Callable[[str], None], measurements_without_unique_key: None,
) -> None:
    """12,000 rows read in key order through a cursor (psqlODBC fetches 10,000 rows per round trip): the bad
    row is in the second round trip, so 10,000 rows are delivered before SQL0802. The key at rows 10,000 and
    10,001 is held by two rows (no unique key), straddling the failure. The resumed read delivers the rest:
    every row exactly once, the bad one as its stored bytes."""
    seed(products=3000, warehouses=1, bad_share=0.0)
    as400_source_sql("""insert into "PRODUCTLIB"."MEASUREMENTS" select * from "PRODUCTLIB"."MEASUREMENTS"
                        where "ITEMNO" = 'ITM000002500' and "MEASTYP" = 'WID'""")  # sorted position 10,000
    as400_source_sql('analyze "PRODUCTLIB"."MEASUREMENTS"')
    dds.store_packed(as400_owner_url, "PRODUCTLIB.MEASUREMENTS", {"MEASVAL": (11, 4)})
    try:
        dds.plant_bytes(as400_owner_url, "PRODUCTLIB.MEASUREMENTS", "MEASVAL",
                        {"ITEMNO": "ITM000002900", "MEASTYP": "WGT"}, BLANKS)
        source = As400Source(_stand_in(as400, batch_rows=500))
        copies: dict[tuple[str, str], int] = {}
        undeliverable = []
        with source.extract(MEASUREMENT, None) as extraction:
            for batch in extraction.batches():
                for row in batch.to_pylist():
                    key = (row["ITEMNO"].rstrip(), row["MEASTYP"])
                    copies[key] = copies.get(key, 0) + 1
                    if isinstance(row["MEASVAL"], bytes):
                        undeliverable.append((key, row["MEASVAL"]))
    finally:
        dds.restore(as400_owner_url, "PRODUCTLIB.MEASUREMENTS")
    assert sum(copies.values()) == 12_001 and len(copies) == 12_000
    assert {key for key, count in copies.items() if count != 1} == {("ITM000002500", "WID")}
    assert copies[("ITM000002500", "WID")] == 2
    assert undeliverable == [(("ITM000002900", "WGT"), BLANKS)]
