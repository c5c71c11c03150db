"""Regression tests of issue 11, one per finding, end to end on the AS400 stand-in through psqlODBC and the
real application database: exact record identity, batch boundaries, moving unique values, future stamps,
orphans, rejected share, reconciliation by keys. Each failed on the engine before the fix."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.engine.audit import Audit, canonical_record
from erp_pipelines.engine.reconcile import reconcile
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.sources.as400.adapter import to_cyymmdd_hhmmss
from erp_pipelines.sources.as400.resource import As400Resource, as400_resource
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration

PRODUCT, STOCK, PRICING = get_spec("product"), get_spec("product_stock"), get_spec("product_pricing")
Sql = Callable[[str], None]


def _stamp(delta: dt.timedelta = dt.timedelta()) -> str:
    date, time = to_cyymmdd_hhmmss((dt.datetime.now() + delta).replace(microsecond=0))
    return f'"CHGDAT" = {date}, "CHGTIM" = {time}'


def _product(item: str, sku: str, description: str = "GOOD", delta: dt.timedelta = dt.timedelta()) -> str:
    date, time = to_cyymmdd_hhmmss((dt.datetime.now() + delta).replace(microsecond=0))
    return (f'insert into "PRODUCTLIB"."PRODUCTS" ("ITEMNO", "ITEMDESC", "SKU", "ITEMSTS", "CRTDAT", "CHGDAT", '
            f"\"CHGTIM\") values ('{item}', '{description}', '{sku}', 'A', 1250101, {date}, {time})")


def _rows(app_db: sa.Engine, sql: str, **params: object) -> list[tuple]:
    with app_db.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(sql), params)]


def _open(app_db: sa.Engine, entity: str) -> list[list]:
    return sorted(key for (key,) in _rows(
        app_db, "select source_key from sync_error where entity = :e and resolved_at is null", e=entity))


def _adds_up(report: SyncReport) -> None:
    assert report.processed == report.created + report.updated + report.unchanged + report.rejected, report


def _batches_of_three(tracking: str) -> As400Resource:
    return as400_resource(dict(os.environ, AS400_DATABASE=os.environ["TEST_AS400_DATABASE"], AS400_BATCH_ROWS="3",
                               AS400_CHANGE_TRACKING=tracking), secrets_from_env_var=False)


@pytest.fixture(params=["stamps", "auto"], ids=["change stamps", "journal"])
def small_batches(request: pytest.FixtureRequest) -> As400Resource:
    """Batches of three rows, so any pair of rows may straddle a batch boundary; every case runs with the
    products' changes read by change stamps and through their journal."""
    return _batches_of_three(request.param)


@pytest.fixture
def stamp_batches() -> As400Resource:
    return _batches_of_three("stamps")


@pytest.fixture
def empty_source(seed: Callable[..., SeedManifest], as400_source_sql: Sql) -> Sql:
    seed(products=6, warehouses=1, bad_share=0.0)
    return as400_source_sql


def test_keys_differing_only_in_leading_blanks_are_two_records(
    empty_source: Sql, small_batches: As400Resource, app_db: sa.Engine
) -> None:
    empty_source(_product(" 777", "SKU-A", description=""))  # RPG right-adjusted into CHAR; still bad
    empty_source(_product("777", "SKU-B"))
    run_sync(PRODUCT, small_batches.source(), app_db)
    assert _open(app_db, "product") == [[" 777"]]
    empty_source(f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'EDITED', {_stamp()} where "ITEMNO" = '777'""")
    _adds_up(run_sync(PRODUCT, small_batches.source(), app_db))
    _adds_up(run_sync(PRODUCT, small_batches.source(), app_db, mode="full"))
    assert _open(app_db, "product") == [[" 777"]]  # editing '777' or re-reading never closes ' 777'
    empty_source("""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'FIXED' where "ITEMNO" = ' 777'""")
    replay = run_sync(PRODUCT, small_batches.source(), app_db, mode="replay")
    assert (replay.processed, replay.created, replay.resolved) == (1, 1, 1)
    assert _open(app_db, "product") == []
    assert _rows(app_db, "select item_number, description from product where item_number like '%777' order by 1") == [
        (" 777", "FIXED"), ("777", "EDITED")]


def test_separators_inside_key_values_do_not_merge_records(
    empty_source: Sql, small_batches: As400Resource, app_db: sa.Engine
) -> None:
    for item, price_list in (("A|B", "X"), ("A", "B|X")):
        empty_source(f'insert into "PRODUCTLIB"."PRICING" ("ITEMNO", "PRCLST", "EFFDAT", "UNITPRC", "CURCDE", '
                     f"\"CHGDAT\", \"CHGTIM\") values ('{item}', '{price_list}', 1250101, 1, 'EUR', 1250101, 0)")
    run_sync(PRODUCT, small_batches.source(), app_db)
    first = run_sync(PRICING, small_batches.source(), app_db)
    assert first.rejected == 2  # no parent product 'A' or 'A|B' yet
    assert _open(app_db, "product_pricing") == [["A", "B|X", "1250101"], ["A|B", "X", "1250101"]]
    empty_source(_product("A", "SKU-PARENT"))
    run_sync(PRODUCT, small_batches.source(), app_db)
    replay = run_sync(PRICING, small_batches.source(), app_db, mode="replay")
    assert (replay.processed, replay.created, replay.rejected) == (2, 1, 1)
    assert _open(app_db, "product_pricing") == [["A|B", "X", "1250101"]]


@pytest.fixture
def keyless_inventory(empty_source: Sql) -> Iterator[Sql]:
    """A DDS physical file without UNIQUE keys: duplicates exist on a real IBM i."""
    empty_source('alter table "INVENTORYLIB"."INVENTORY" drop constraint if exists "INVENTORY_PK"')
    try:
        yield empty_source
    finally:
        empty_source('delete from "INVENTORYLIB"."INVENTORY"')
        empty_source('alter table "INVENTORYLIB"."INVENTORY" add constraint "INVENTORY_PK" '
                     'primary key ("ITEMNO", "WHSE")')


@pytest.mark.parametrize("copies_at", [(0, 1), (2, 3), (1, 5)], ids=["same-batch", "across-boundary", "far-apart"])
def test_a_key_read_twice_quarantines_every_copy_wherever_they_fall(
    keyless_inventory: Sql, small_batches: As400Resource, app_db: sa.Engine, copies_at: tuple[int, int]
) -> None:
    run_sync(PRODUCT, small_batches.source(), app_db)
    items = [f"ITM{n:09d}" for n in range(1, 7)]  # the read is ordered by key: position = index in this list
    keyless_inventory('delete from "INVENTORYLIB"."INVENTORY"')
    for position, item in enumerate(items):
        on_hand = 7 if position == copies_at[1] else 5
        keyless_inventory(f'insert into "INVENTORYLIB"."INVENTORY" ("ITEMNO", "WHSE", "ONHAND", "UOM", "CHGDAT", '
                          f"\"CHGTIM\") values ('{items[copies_at[0]] if position == copies_at[1] else item}', '001', "
                          f"{on_hand}, 'EA', 1250101, 0)")
    first = run_sync(STOCK, small_batches.source(), app_db)
    _adds_up(first)
    assert (first.processed, first.created, first.rejected) == (6, 4, 2)
    duplicate = items[copies_at[0]]
    assert _rows(app_db, "select count(*) from product_stock where item_number = :i", i=duplicate) == [(0,)]
    again = run_sync(STOCK, small_batches.source(), app_db, mode="full")
    assert (again.updated, again.created, again.rejected, again.rejected_new) == (0, 0, 2, 0)
    replay = run_sync(STOCK, small_batches.source(), app_db, mode="replay")
    assert (replay.created, replay.updated, replay.rejected) == (0, 0, 2)
    assert _open(app_db, "product_stock") == [[duplicate, "001"]] * 2


def test_swapped_skus_converge_on_the_next_run(
    empty_source: Sql, small_batches: As400Resource, app_db: sa.Engine
) -> None:
    run_sync(PRODUCT, small_batches.source(), app_db)
    first, last = "ITM000000001", "ITM000000006"  # two different batches of three
    (sku_first,), (sku_last,) = (_rows(app_db, "select sku from product where item_number = :i", i=i)[0]
                                 for i in (first, last))
    empty_source(f"""update "PRODUCTLIB"."PRODUCTS" set "SKU" = case "ITEMNO" when '{first}' then '{sku_last}'
                     else '{sku_first}' end, {_stamp()} where "ITEMNO" in ('{first}', '{last}')""")
    swap = run_sync(PRODUCT, small_batches.source(), app_db)
    _adds_up(swap)
    assert (swap.updated, swap.rejected) == (2, 0)
    assert _rows(app_db, "select item_number, sku from product where item_number in (:a, :b) order by 1",
                 a=first, b=last) == [(first, sku_last), (last, sku_first)]


def test_a_future_stamp_never_moves_the_watermark_past_the_source_clock(
    empty_source: Sql, stamp_batches: As400Resource, app_db: sa.Engine
) -> None:
    small_batches = stamp_batches
    run_sync(PRODUCT, small_batches.source(), app_db)
    empty_source(f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'TOMORROW', {_stamp(dt.timedelta(hours=3))}
                     where "ITEMNO" = 'ITM000000002'""")
    ahead = run_sync(PRODUCT, small_batches.source(), app_db)
    assert ahead.notes["future_stamped_rows"] == 1
    clock = dt.datetime.fromisoformat(ahead.notes["source_clock"])
    assert dt.datetime.fromisoformat(ahead.watermark_after["changed_at"]) <= clock
    empty_source(f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'REAL CHANGE', {_stamp()}
                     where "ITEMNO" = 'ITM000000004'""")
    after = run_sync(PRODUCT, small_batches.source(), app_db)
    assert after.updated == 1 and after.notes["future_stamped_rows"] == 1  # the future row is read again
    assert _rows(app_db, "select description from product where item_number = 'ITM000000004'") == [("REAL CHANGE",)]


def test_a_full_sync_quarantines_the_unchanged_children_of_a_deleted_parent(
    empty_source: Sql, small_batches: As400Resource, app_db: sa.Engine
) -> None:
    run_sync(PRODUCT, small_batches.source(), app_db)
    run_sync(STOCK, small_batches.source(), app_db)
    empty_source("""delete from "PRODUCTLIB"."PRODUCTS" where "ITEMNO" = 'ITM000000003'""")
    assert run_sync(PRODUCT, small_batches.source(), app_db, mode="full").deleted == 1
    children = run_sync(STOCK, small_batches.source(), app_db, mode="full")
    _adds_up(children)
    assert (children.rejected, children.deleted, children.withdrawn) == (1, 1, 1)
    assert _open(app_db, "product_stock") == [["ITM000000003", "001"]]
    assert _rows(app_db, "select count(*) from product_stock where item_number = 'ITM000000003' "
                         "and deleted_at is null") == [(0,)]


def test_one_bad_record_in_a_tiny_run_is_reported_not_fatal(
    empty_source: Sql, small_batches: As400Resource, app_db: sa.Engine
) -> None:
    for n in range(20):
        empty_source(_product(f"MORE{n:02d}", f"SKU-MORE{n:02d}"))
    run_sync(PRODUCT, small_batches.source(), app_db)
    empty_source(_product("NEWBAD", "SKU-NB", description=""))
    empty_source(_product("NEWGOOD", "SKU-NG"))
    tiny = run_sync(PRODUCT, small_batches.source(), app_db)  # 1 of the 2 rows read is bad: 50 % of the run
    assert (tiny.created, tiny.rejected, tiny.status) == (1, 1, "PARTIALLY_COMPLETED")
    assert not tiny.rejected_share_exceeded  # 1 open record of 28: the share of the table counts
    strict = run_sync(PRODUCT, small_batches.source(), app_db, mode="full", max_rejected_share=0.02)
    assert strict.rejected_share_exceeded and strict.status == "PARTIALLY_COMPLETED"


def test_reconciliation_compares_keys_so_losses_and_orphans_do_not_cancel(
    empty_source: Sql, small_batches: As400Resource, app_db: sa.Engine
) -> None:
    run_sync(PRODUCT, small_batches.source(), app_db)
    assert reconcile(PRODUCT, small_batches.source(), app_db).passed
    with app_db.begin() as connection:  # one row lost, one live row the source never had: counts still match
        connection.execute(sa.text("delete from product where item_number = 'ITM000000005'"))
        connection.execute(sa.text("insert into product (item_number, description, sku, is_active, "
                                   "source_changed_at) values ('GHOST', 'x', 'SKU-GHOST', true, now())"))
    result = reconcile(PRODUCT, small_batches.source(), app_db)
    assert (result.passed, result.unaccounted, result.live_not_in_source) == (False, 1, 1)
    assert result.unaccounted_sample == ['["ITM000000005"]'] and result.live_not_in_source_sample == ["'GHOST'"]


def test_quarantine_deduplication_ignores_the_types_a_batch_inferred(app_db: sa.Engine) -> None:
    assert canonical_record({"IsActive": True, "Price": 12.5}) == canonical_record({"IsActive": "True",
                                                                                     "Price": "12.5"})
    spec = get_spec("erp_product")
    with app_db.connect() as connection:
        audit = Audit(connection, spec)
        run = audit.start("full", None, None)
        rule = {"is_active:decode": "bad"}
        assert audit.record_errors(run, [(7,)], [{"ProductID": 7, "IsActive": True}], [rule]) == 1
        assert audit.record_errors(run, [(7,)], [{"ProductID": 7, "IsActive": "True"}], [rule]) == 0
        connection.commit()
