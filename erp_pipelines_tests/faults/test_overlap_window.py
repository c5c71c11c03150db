"""AS400 rows that change between an incremental run's read and its commit, or whose change stamp lands
slightly in the past (clocks, long ERP transactions stamped at their start): the watermark is the newest
stamp the run read, so such rows sit at or below it, and only the overlap window (the next run reads from
watermark - 5 minutes) brings them in. After the next run the target equals the source, every column of
every row, with no duplicates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.sources.as400.adapter import to_cyymmdd_hhmmss
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines_tests.support.faults import small_batch_source, source_checksum, target_checksum, watermark
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration

STOCK = get_spec("product_stock")

OVERLAP = dt.timedelta(seconds=STOCK.change_tracking.overlap_seconds if STOCK.change_tracking else 0)
# Newer than every seeded stamp (2024-2025), not in the future: the newest stamp the runs below read.
NEWEST = dt.datetime.now().replace(microsecond=0) - dt.timedelta(hours=1)
FIRST_ITEMS = "\"ITEMNO\" <= 'ITM000000100'"  # 100 items: read in the first batch


def _stamp(moment: dt.datetime) -> str:
    date, time = to_cyymmdd_hhmmss(moment)
    return f'"CHGDAT" = {date}, "CHGTIM" = {time}'


def _change(where: str, moment: dt.datetime, add: int = 1) -> str:
    """An ERP write: new quantities, stamped `moment`."""
    return (f'update "INVENTORYLIB"."INVENTORY" set "ONHAND" = "ONHAND" + {add}, "ONORD" = "ONORD" + {add}, '
            f'"BIN" = \'CHG{add:05d}\', {_stamp(moment)} where {where}')


def _insert(warehouse: str, moment: dt.datetime) -> str:
    """An ERP insert: stock of the first 100 items in a new warehouse, stamped `moment`."""
    date, time = to_cyymmdd_hhmmss(moment)
    return ('insert into "INVENTORYLIB"."INVENTORY" ("ITEMNO", "WHSE", "ONHAND", "ALLOC", "ONORD", "UOM", "BIN", '
            f'"LOTCTL", "CHGDAT", "CHGTIM") select "ITEMNO", \'{warehouse}\', 5, 1, 2, \'EA\', \'NEW\', \'Y\', '
            f'{date}, {time} from "PRODUCTLIB"."PRODUCTS" where {FIRST_ITEMS}')


@pytest.fixture
def as400(as400: As400Resource) -> As400Resource:
    """Change stamps: this module tests stamp tracking's overlap window (a journaled file needs none: its
    position is the last journal entry read, not a time)."""
    return as400.replaced(change_tracking="stamps")


@pytest.fixture
def loaded(seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine) -> None:
    """1,500 products with stock in warehouses 001, 002 and 010 (4,500 rows), fully loaded once."""
    seed(products=1_500, warehouses=3, bad_share=0.0)
    run_sync(get_spec("product"), as400.source(), app_db, mode="full")
    run_sync(STOCK, small_batch_source(as400), app_db, mode="full")


def _in_sync(as400_owner_url: str, app_db: sa.Engine) -> None:
    assert target_checksum(app_db, STOCK) == source_checksum(as400_owner_url, STOCK)


def _newest_committed(app_db: sa.Engine) -> dt.datetime:
    with app_db.connect() as connection:
        return connection.execute(sa.text("select max(source_changed_at) from product_stock")).scalar_one()


def test_rows_changed_between_read_and_commit_are_picked_up_by_the_next_run(
    loaded: None, as400: As400Resource, app_db: sa.Engine, as400_owner_url: str,
    as400_source_sql: Callable[[str], None],
) -> None:
    as400_source_sql(_change("\"WHSE\" in ('001', '002')", NEWEST))  # 3,000 rows: two batches of 2,000

    def change_after_read(report: SyncReport) -> None:
        """The first batch is committed, the run's query has read its snapshot; the watermark is not saved."""
        if report.batches == 1:
            as400_source_sql(_change(f"\"WHSE\" = '001' and {FIRST_ITEMS}", NEWEST, add=7))  # same second
            as400_source_sql(_change(f"\"WHSE\" = '002' and {FIRST_ITEMS}", NEWEST - dt.timedelta(minutes=2), 8))
            as400_source_sql(_change(f"\"WHSE\" = '010' and {FIRST_ITEMS}", NEWEST - dt.timedelta(minutes=4), 9))
            as400_source_sql(_insert("020", NEWEST - dt.timedelta(minutes=1)))

    first = run_sync(STOCK, small_batch_source(as400), app_db, on_batch=change_after_read)
    assert (first.mode, first.status, first.updated, first.batches) == ("incremental", "COMPLETED", 3_000, 2)
    assert watermark(app_db, "product_stock") == {"changed_at": NEWEST.isoformat()}
    assert _newest_committed(app_db) == NEWEST  # the watermark is exactly the newest committed stamp
    assert target_checksum(app_db, STOCK) != source_checksum(as400_owner_url, STOCK)  # 400 rows not read

    second = run_sync(STOCK, small_batch_source(as400), app_db)
    assert second.status == "COMPLETED"
    # everything stamped since NEWEST - 5 min: the 3,000 rows, the 100 of warehouse 010 and the 100 new ones
    assert (second.processed, second.created, second.updated) == (3_200, 100, 300)
    _in_sync(as400_owner_url, app_db)

    third = run_sync(STOCK, small_batch_source(as400), app_db)  # the overlap is read again and changes nothing
    assert (third.processed, third.created, third.updated, third.unchanged) == (3_200, 0, 0, 3_200)
    _in_sync(as400_owner_url, app_db)


def test_change_stamped_slightly_in_the_past_is_picked_up_within_the_overlap(
    loaded: None, as400: As400Resource, app_db: sa.Engine, as400_owner_url: str,
    as400_source_sql: Callable[[str], None],
) -> None:
    as400_source_sql(_change("\"WHSE\" = '001'", NEWEST))
    assert run_sync(STOCK, small_batch_source(as400), app_db).updated == 1_500
    assert watermark(app_db, "product_stock") == {"changed_at": NEWEST.isoformat()}
    second = dt.timedelta(seconds=1)
    late = {  # item → how far before the watermark its change is stamped
        "ITM000000010": dt.timedelta(minutes=1), "ITM000000011": OVERLAP - second, "ITM000000012": OVERLAP,
        "ITM000000013": OVERLAP + second,
    }
    for number, (item, age) in enumerate(late.items(), start=1):
        as400_source_sql(_change(f"\"WHSE\" = '002' and \"ITEMNO\" = '{item}'", NEWEST - age, add=100 + number))

    report = run_sync(STOCK, small_batch_source(as400), app_db)
    assert (report.status, report.updated) == ("COMPLETED", 3)
    with app_db.connect() as connection:
        changed = connection.execute(sa.text(
            "select item_number from product_stock where warehouse = '002' and bin_location like 'CHG%' "
            "order by 1")).scalars().all()
    assert changed == ["ITM000000010", "ITM000000011", "ITM000000012"]  # the window includes its start
    assert target_checksum(app_db, STOCK) != source_checksum(as400_owner_url, STOCK)  # older than the window
    assert run_sync(STOCK, small_batch_source(as400), app_db, mode="full").updated == 1  # which a full sync catches
    _in_sync(as400_owner_url, app_db)
