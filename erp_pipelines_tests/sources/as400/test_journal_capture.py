"""Incremental syncs through the IBM i journal, end to end against the stand-in's QSYS2.DISPLAY_JOURNAL.

After every scenario the target equals the source row for row (md5 over every mapped column), and every run's
counts add up. The stand-in journals PRODUCTLIB.PRODUCTS with *BOTH images; the ERP's writes are the owner's.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from erp_pipelines.commands.cli import main
from erp_pipelines.core.source import SchemaDriftError
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines.sources.as400.tables import PRODUCT
from erp_pipelines.sources.as400.tables import PRODUCT_STOCK as STOCK
from erp_pipelines_tests.support.faults import source_checksum, sync_runs, target_checksum, watermark
from erp_sandbox.as400 import journal
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration

STAMP = '"CHGDAT" = 1261201, "CHGTIM" = 120000'


@pytest.fixture
def synced(seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine) -> SyncReport:
    """A clean product file, loaded by a full sync: the watermark is now a journal position."""
    seed(products=40, bad_share=0.0)
    report = run_sync(PRODUCT, as400.source(), app_db, mode="full")
    assert report.created == 40
    assert set(watermark(app_db, "product")) == {"journal", "receiver", "sequence"}
    return report


def _agrees(as400_owner_url: str, app_db: sa.Engine) -> None:
    assert target_checksum(app_db, PRODUCT) == source_checksum(as400_owner_url, PRODUCT)


def _counts_add_up(report: SyncReport) -> None:
    assert report.processed == report.created + report.updated + report.unchanged + report.rejected


def _incremental(as400: As400Resource, app_db: sa.Engine) -> SyncReport:
    report = run_sync(PRODUCT, as400.source(), app_db, mode="incremental")
    _counts_add_up(report)
    return report


def test_inserts_updates_and_deletes_arrive_through_the_journal(
    synced: SyncReport, as400: As400Resource, app_db: sa.Engine, as400_source_sql: Callable[[str], None],
    as400_owner_url: str,
) -> None:
    as400_source_sql(
        'insert into "PRODUCTLIB"."PRODUCTS" ("ITEMNO", "ITEMDESC", "SKU", "ITEMSTS", "CHGDAT", "CHGTIM") '
        "values ('NEW0001', 'NEW ITEM', 'SKU-NEW-1', 'A', 1261201, 120000)")
    as400_source_sql(f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'CHANGED', {STAMP}
                         where "ITEMNO" = 'ITM000000002'""")
    as400_source_sql("""delete from "PRODUCTLIB"."PRODUCTS" where "ITEMNO" = 'ITM000000003'""")
    report = _incremental(as400, app_db)
    assert (report.mode, report.created, report.updated, report.deleted) == ("incremental", 1, 1, 1)
    assert report.processed == 2
    assert report.notes["journal_entries"] >= 4  # PT, UB, UP, DL
    _agrees(as400_owner_url, app_db)
    again = _incremental(as400, app_db)
    assert (again.processed, again.deleted) == (0, 0)


def test_a_key_change_deletes_the_old_key(
    synced: SyncReport, as400: As400Resource, app_db: sa.Engine, as400_source_sql: Callable[[str], None],
    as400_owner_url: str,
) -> None:
    as400_source_sql("""update "PRODUCTLIB"."PRODUCTS" set "ITEMNO" = 'RENUMBERED1' where "ITEMNO" = 'ITM000000004'""")
    report = _incremental(as400, app_db)
    assert (report.created, report.deleted) == (1, 1)
    _agrees(as400_owner_url, app_db)


def test_the_last_image_of_a_key_wins_within_a_window(
    synced: SyncReport, as400: As400Resource, app_db: sa.Engine, as400_source_sql: Callable[[str], None],
    as400_owner_url: str,
) -> None:
    for text in ("FIRST", "SECOND", "THIRD"):
        as400_source_sql(f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = '{text}', {STAMP}
                             where "ITEMNO" = 'ITM000000005'""")
    as400_source_sql("""delete from "PRODUCTLIB"."PRODUCTS" where "ITEMNO" = 'ITM000000006'""")
    as400_source_sql(
        'insert into "PRODUCTLIB"."PRODUCTS" ("ITEMNO", "ITEMDESC", "SKU", "ITEMSTS", "CHGDAT", "CHGTIM") '
        "values ('ITM000000006', 'BACK AGAIN', 'SKU-BACK', 'A', 1261201, 120000)")
    report = _incremental(as400, app_db)
    assert (report.processed, report.updated, report.deleted) == (2, 2, 0)
    _agrees(as400_owner_url, app_db)


def test_a_rolled_back_transaction_changes_nothing(
    synced: SyncReport, as400: As400Resource, app_db: sa.Engine, as400_owner_url: str,
) -> None:
    before = target_checksum(app_db, PRODUCT)
    journal.journal_rolled_back(as400_owner_url, """
        update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'ROLLED BACK' where "ITEMNO" = 'ITM000000007';
        delete from "PRODUCTLIB"."PRODUCTS" where "ITEMNO" = 'ITM000000008';
        insert into "PRODUCTLIB"."PRODUCTS" ("ITEMNO", "ITEMDESC", "SKU", "ITEMSTS", "CHGDAT", "CHGTIM")
        values ('GHOST01', 'NEVER COMMITTED', 'SKU-GHOST', 'A', 1261201, 120000);""")
    report = _incremental(as400, app_db)
    assert (report.created, report.deleted) == (0, 0)
    assert target_checksum(app_db, PRODUCT) == before
    _agrees(as400_owner_url, app_db)


@pytest.mark.parametrize("reset", [False, True], ids=["new receiver", "new receiver with sequence reset"])
def test_a_receiver_change_is_followed(
    reset: bool, synced: SyncReport, as400: As400Resource, app_db: sa.Engine,
    as400_source_sql: Callable[[str], None], as400_owner_url: str,
) -> None:
    as400_source_sql(f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'BEFORE CHANGE', {STAMP}
                         where "ITEMNO" = 'ITM000000009'""")
    attached = journal.change_receiver(as400_owner_url, "PRODUCTLIB", reset_sequence=reset)
    as400_source_sql(f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'AFTER CHANGE', {STAMP}
                         where "ITEMNO" = 'ITM000000010'""")
    report = _incremental(as400, app_db)
    assert (report.mode, report.updated) == ("incremental", 2)
    assert report.notes["journal_receivers_read"] == 2
    _agrees(as400_owner_url, app_db)
    assert watermark(app_db, "product")["receiver"] == f"PRODUCTLIB/{attached}"


def test_a_receiver_deleted_under_us_forces_a_full_sync_with_the_reason(
    synced: SyncReport, as400: As400Resource, app_db: sa.Engine, as400_source_sql: Callable[[str], None],
    as400_owner_url: str,
) -> None:
    held = watermark(app_db, "product")["receiver"].split("/")
    journal.change_receiver(as400_owner_url, "PRODUCTLIB")
    as400_source_sql("""delete from "PRODUCTLIB"."PRODUCTS" where "ITEMNO" = 'ITM000000011'""")
    for receiver in _receivers_up_to(as400_owner_url, held[1]):
        journal.delete_receiver(as400_owner_url, "PRODUCTLIB", receiver)
    report = _incremental(as400, app_db)
    assert report.mode == "full"
    assert report.deleted == 1
    assert f"journal receiver {held[0]}/{held[1]}" in (report.forced_full_reason or "")
    _agrees(as400_owner_url, app_db)
    with app_db.connect() as connection:
        alert = connection.execute(sa.text(
            "select message from sync_alert where kind = 'full_sync_forced' and entity = 'product'")).scalar_one()
    assert "is gone" in alert
    assert _incremental(as400, app_db).mode == "incremental"


def _receivers_up_to(owner_url: str, name: str) -> list[str]:
    """The chain's receivers from the oldest up to `name`, oldest first (only the oldest may be deleted)."""
    import psycopg2

    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        cursor.execute('select "JOURNAL_RECEIVER_NAME" from "QSYS2"."JOURNAL_RECEIVER_INFO" '
                       """where "JOURNAL_LIBRARY" = 'PRODUCTLIB' order by "ATTACH_TIMESTAMP" """)
        names = [row[0].strip() for row in cursor.fetchall()]
    connection.close()
    return names[: names.index(name) + 1]


def test_a_long_outage_is_read_in_bounded_windows(
    synced: SyncReport, as400: As400Resource, app_db: sa.Engine, as400_source_sql: Callable[[str], None],
    as400_owner_url: str,
) -> None:
    as400_source_sql(f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'BULK ' || "ITEMNO", {STAMP}""")
    as400_source_sql(f"""update "PRODUCTLIB"."PRODUCTS" set "UOM" = 'KG', {STAMP} where "ITEMNO" > 'ITM000000020'""")
    narrow = as400.replaced(journal_window=7)
    report = run_sync(PRODUCT, narrow.source(), app_db, mode="incremental")
    _counts_add_up(report)
    assert report.updated == 40
    assert report.notes["journal_entries"] >= 2 * (40 + 20)
    _agrees(as400_owner_url, app_db)


def test_a_layout_change_stops_with_schema_drift_naming_the_column(
    synced: SyncReport, as400: As400Resource, app_db: sa.Engine, as400_owner_url: str,
) -> None:
    journal.add_column(as400_owner_url, "PRODUCTLIB.PRODUCTS", "NEWFLD", "char(5)")
    try:
        with pytest.raises(SchemaDriftError, match="NEWFLD"):
            run_sync(PRODUCT, as400.source(), app_db, mode="incremental")
    finally:
        journal.drop_column(as400_owner_url, "PRODUCTLIB.PRODUCTS", "NEWFLD")
    assert sync_runs(app_db, "product")[-1].status == "FAILED"


def test_after_images_only_still_carry_inserts_and_updates(
    synced: SyncReport, as400: As400Resource, app_db: sa.Engine, as400_source_sql: Callable[[str], None],
    as400_owner_url: str,
) -> None:
    """With JOURNAL_IMAGES(*AFTER) a delete carries no record: unless the same record was seen earlier in the
    read, the deleted key stays live until a full sync, and the run says how many entries it could not place."""
    journal.end_journaling(as400_owner_url, "PRODUCTLIB.PRODUCTS")
    journal.start_journaling(as400_owner_url, "PRODUCTLIB.PRODUCTS", "*AFTER")
    try:
        as400_source_sql(f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'AFTER ONLY', {STAMP}
                             where "ITEMNO" = 'ITM000000012'""")
        as400_source_sql("""delete from "PRODUCTLIB"."PRODUCTS" where "ITEMNO" = 'ITM000000013'""")
        report = _incremental(as400, app_db)
    finally:
        journal.end_journaling(as400_owner_url, "PRODUCTLIB.PRODUCTS")
        journal.start_journaling(as400_owner_url, "PRODUCTLIB.PRODUCTS", "*BOTH")
    assert (report.updated, report.deleted) == (1, 0)
    assert report.notes["journal_images"] == "*AFTER"
    assert report.notes["journal_entries_without_key"] == 1
    full = run_sync(PRODUCT, as400.source(), app_db, mode="full")
    assert full.deleted == 1
    _agrees(as400_owner_url, app_db)


def test_a_key_held_by_two_records_of_a_file_without_unique_key_is_rejected_not_overwritten(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine,
    as400_source_sql: Callable[[str], None],
) -> None:
    """A file without unique key (a DDS physical file with no UNIQUE keyword): a second record with an existing
    key, added after the last sync, reaches the engine together with the older one (the journal names the
    changed keys, their rows are read again from the file), and both are quarantined, never one overwritten."""
    seed(products=5, warehouses=1, bad_share=0.0)
    inventory = '"INVENTORYLIB"."INVENTORY"'
    as400_source_sql(f'alter table {inventory} drop constraint "INVENTORY_PK"')
    try:
        run_sync(PRODUCT, as400.source(), app_db, mode="full")
        run_sync(STOCK, as400.source(), app_db, mode="full")
        as400_source_sql(f"""insert into {inventory} select * from {inventory} where "ITEMNO" = 'ITM000000002'""")
        as400_source_sql(f"""update {inventory} set "ONHAND" = 999 where ctid = (
                             select max(ctid) from {inventory} where "ITEMNO" = 'ITM000000002')""")
        query = sa.text("select on_hand from product_stock where item_number = 'ITM000000002'")
        with app_db.connect() as connection:
            before = connection.execute(query).scalar_one()
        report = run_sync(STOCK, as400.source(), app_db, mode="incremental")
    finally:
        as400_source_sql(f"""delete from {inventory} where ctid = (
                             select max(ctid) from {inventory} where "ITEMNO" = 'ITM000000002')""")
        as400_source_sql(f'alter table {inventory} add constraint "INVENTORY_PK" primary key ("ITEMNO", "WHSE")')
    _counts_add_up(report)
    assert (report.processed, report.rejected) == (2, 2)
    assert report.notes["journal_keys_reread"]
    with app_db.connect() as connection:
        assert connection.execute(query).scalar_one() == before
        assert connection.execute(sa.text("select count(*) from sync_error where entity = 'product_stock' "
                                          "and resolved_at is null")).scalar_one() == 2


def test_a_position_in_the_oldest_receiver_warns_until_the_next_sync_moves_it(
    synced: SyncReport, as400: As400Resource, app_db: sa.Engine, as400_owner_url: str,
) -> None:
    source = as400.source()
    assert source.position_warning(PRODUCT, watermark(app_db, "product")) is None
    for _ in range(2):
        journal.change_receiver(as400_owner_url, "PRODUCTLIB")
    for receiver in _receivers_up_to(as400_owner_url, watermark(app_db, "product")["receiver"].split("/")[1])[:-1]:
        journal.delete_receiver(as400_owner_url, "PRODUCTLIB", receiver)
    warning = source.position_warning(PRODUCT, watermark(app_db, "product"))
    assert warning is not None and "oldest retained receivers" in warning
    _incremental(as400, app_db)
    assert source.position_warning(PRODUCT, watermark(app_db, "product")) is None


def test_who_changed_a_record_is_kept_and_shown_for_a_quarantined_one(
    synced: SyncReport, as400: As400Resource, app_db: sa.Engine, app_url: str,
    as400_source_sql: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
) -> None:
    as400_source_sql(f"""begin; set local as400.user_name = 'CLERK7'; set local as400.program_name = 'ITEMMAINT';
                         set local as400.program_library = 'ERPLIB';
                         update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = '   ', {STAMP}
                         where "ITEMNO" = 'ITM000000014'; commit;""")
    report = _incremental(as400, app_db)
    assert report.rejected == 1
    with app_db.connect() as connection:
        change = connection.execute(sa.text(
            "select changed_by, program, position from source_change where entity = 'product' "
            """and source_key = '["ITM000000014"]'""")).one()
    assert change.changed_by == "CLERK7" and change.program == "ERPLIB/ITEMMAINT"
    assert change.position.startswith("PRODUCTLIB/QSQJRN sequence ")
    monkeypatch.setenv("APP_DATABASE_URL", app_url)
    shown = CliRunner().invoke(main, ["errors", "--entity", "product"])
    assert shown.exit_code == 0, shown.output
    assert "ITM000000014" in shown.output
    assert "by CLERK7 (job " in shown.output and "program ERPLIB/ITEMMAINT)" in shown.output
