"""Backfill on real components: the AS400 stand-in through psqlODBC, the 4D emulator over HTTP, PostgreSQL.

Each case changes rows at the source with change markers older than the watermark (what an incremental run
cannot see), backfills a range, and checks what was re-read, what was left alone and that the watermark stayed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import psycopg2
import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.core.source import ChangeRange
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.sources.as400.adapter import to_cyymmdd_hhmmss
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines.sources.legacy_4d.resource import Legacy4DResource
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME
from erp_sandbox.as400.seed import SeedManifest
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration


def _one(app_db: sa.Engine, sql: str, **params: object) -> sa.Row:
    with app_db.connect() as connection:
        return connection.execute(sa.text(sql), params).one()


def _stored_watermark(app_db: sa.Engine, entity: str) -> sa.Row:
    return _one(app_db, "select value, sync_run_id from sync_watermark where entity = :e", e=entity)


def _assert_accounted(report: SyncReport) -> None:
    assert report.processed == report.created + report.updated + report.unchanged + report.rejected


def _source_keys(owner_url: str, count: int) -> list[tuple[str, str, int]]:
    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        cursor.execute('select "ITEMNO", "PRCLST", "EFFDAT" from "PRODUCTLIB"."PRICING" order by 1, 2, 3 limit %s',
                       (count,))
        return [(item.strip(), price_list.strip(), int(effective)) for item, price_list, effective in cursor]


def _where(key: tuple[str, str, int]) -> str:
    return f""""ITEMNO" = '{key[0]}' and "PRCLST" = '{key[1]}' and "EFFDAT" = {key[2]}"""


def _price(app_db: sa.Engine, key: tuple[str, str, int]) -> sa.Row:
    return _one(app_db, "select unit_price, deleted_at, sync_run_id from product_pricing "
                        "where item_number = :i and price_list = :p order by effective_on limit 1", i=key[0], p=key[1])


def test_as400_backfill_rereads_the_range_keeps_the_watermark_and_deletes_nothing(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine,
    as400_source_sql: Callable[[str], None], as400_owner_url: str,
) -> None:
    seed(products=40, warehouses=1, bad_share=0.0)
    stamps = as400.replaced(change_tracking="stamps")
    spec = get_spec("product_pricing")
    run_sync(get_spec("product"), stamps.source(), app_db)
    loaded = run_sync(spec, stamps.source(), app_db)
    assert loaded.mode == "full" and loaded.rejected == 0
    keys = _source_keys(as400_owner_url, 6)
    assert len({key[:2] for key in keys}) == 6  # one price per item and list: `_price` finds the row
    now_date, now_time = to_cyymmdd_hhmmss(dt.datetime.now().replace(microsecond=0))
    as400_source_sql(f"""update "PRODUCTLIB"."PRICING" set "UNITPRC" = "UNITPRC" + 1, "CHGDAT" = {now_date},
                         "CHGTIM" = {now_time} where {_where(keys[5])}""")
    moved = run_sync(spec, stamps.source(), app_db)
    assert moved.mode == "incremental" and moved.updated == 1
    watermark = moved.watermark_after
    before = {key: _price(app_db, key) for key in keys}

    # Changes stamped 2026-11-05 .. 2026-11-10, long before the watermark: no incremental run reads them.
    as400_source_sql(f"""
        update "PRODUCTLIB"."PRICING" set "UNITPRC" = 777.5, "CHGDAT" = 1261105, "CHGTIM" = 101500
            where {_where(keys[0])} or {_where(keys[1])};
        update "PRODUCTLIB"."PRICING" set "UNITPRC" = -1, "CHGDAT" = 1261109, "CHGTIM" = 235959 where {_where(keys[2])};
        update "PRODUCTLIB"."PRICING" set "UNITPRC" = 888, "CHGDAT" = 1261110, "CHGTIM" = 0 where {_where(keys[3])};
        delete from "PRODUCTLIB"."PRICING" where {_where(keys[4])};""")
    missed = run_sync(spec, stamps.source(), app_db)
    assert missed.updated == 0 and missed.rejected == 0 and missed.deleted == 0
    assert _price(app_db, keys[0]).unit_price == before[keys[0]].unit_price

    report = run_sync(spec, stamps.source(), app_db, mode="backfill",
                      changes=ChangeRange("2026-11-01", "2026-11-10"))
    assert (report.mode, report.status) == ("backfill", "PARTIALLY_COMPLETED")
    assert (report.processed, report.updated, report.rejected, report.created, report.deleted) == (3, 2, 1, 0, 0)
    _assert_accounted(report)
    for changed in keys[:2]:
        assert float(_price(app_db, changed).unit_price) == 777.5
    for untouched in keys[2:]:  # rejected; stamped at the range's end (excluded); gone at the source; outside
        assert _price(app_db, untouched) == before[untouched]
    assert _price(app_db, keys[4]).deleted_at is None  # a backfill concludes nothing about rows it did not read
    assert report.watermark_before == report.watermark_after == watermark
    assert _stored_watermark(app_db, spec.entity) == (watermark, missed.sync_run_id)  # the last incremental's
    audited = _one(app_db, "select mode, watermark_before, watermark_after, processed, rejected from sync_run "
                           "where id = :id", id=report.sync_run_id)
    assert tuple(audited) == ("backfill", watermark, watermark, 3, 1)
    quarantined = _one(app_db, "select source_key, error_message from sync_error where sync_run_id = :id",
                       id=report.sync_run_id)
    assert quarantined.source_key[:2] == list(keys[2][:2]) and "unit_price" in quarantined.error_message


def test_as400_backfill_of_a_journaled_file_reads_its_stamps_and_keeps_the_journal_position(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine,
    as400_source_sql: Callable[[str], None],
) -> None:
    seed(products=30, warehouses=1, bad_share=0.0)
    spec = get_spec("product")
    first = run_sync(spec, as400.source(), app_db)
    position = first.watermark_after
    assert position is not None and "sequence" in str(position)  # a journal position, not a stamp
    item = _one(app_db, "select item_number from product order by item_number limit 1").item_number
    as400_source_sql(f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'BACKFILLED', "CHGDAT" = 1261105
                         where "ITEMNO" = '{item}'""")
    report = run_sync(spec, as400.source(), app_db, mode="backfill", changes=ChangeRange("2026-11-01"))
    assert (report.mode, report.processed, report.updated) == ("backfill", 1, 1)
    assert report.watermark_after == position and _stored_watermark(app_db, "product").value == position
    assert _one(app_db, "select description from product where item_number = :i", i=item).description == "BACKFILLED"
    following = run_sync(spec, as400.source(), app_db)  # the journal, from the kept position: the change again
    assert following.mode == "incremental" and following.unchanged == 1 and following.updated == 0


def test_4d_backfill_rereads_a_global_stamp_range_and_keeps_the_watermark(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore, app_db: sa.Engine
) -> None:
    resource = Legacy4DResource(host="127.0.0.1", port=legacy4d_server.port, username=USERNAME, password=PASSWORD,
                                page_size=100, overlap_stamps=0)
    spec = get_spec("erp_customer")
    loaded = run_sync(spec, resource.source(), app_db, max_rejected_share=0.5)
    watermark = loaded.watermark_after
    assert watermark is not None
    customers = [row.legacy_id for row in _rows(app_db, "select legacy_id from erp_customer order by legacy_id")][:4]

    # Two saves committed with old stamps (a 4D transaction still open when the watermark was read), then
    # the datastore's stamp back where it was.
    current = legacy4d_store.global_stamp()
    old = watermark["global_stamp"] - 500
    legacy4d_store.set_global_stamp(old)
    for customer in customers[:2]:
        legacy4d_store.update("Customers", customer, {"CustomerName": f"Backfilled {customer}"})
    legacy4d_store.set_global_stamp(current)
    missed = run_sync(spec, resource.source(), app_db, max_rejected_share=0.5)
    assert missed.processed == 0
    legacy4d_store.update("Customers", customers[2], {"CustomerName": "Changed after the range"})
    legacy4d_store.delete("Customers", [customers[3]])

    report = run_sync(spec, resource.source(), app_db, mode="backfill", max_rejected_share=0.5,
                      changes=ChangeRange(str(old), str(old + 2)))
    assert report.mode == "backfill" and report.updated == 2 and report.deleted == 0 and report.created == 0
    _assert_accounted(report)
    names = dict(_rows(app_db, "select legacy_id, name from erp_customer where legacy_id = any(:ids)",
                       ids=customers[:3]))
    assert [names[customer] for customer in customers[:2]] == [f"Backfilled {c}" for c in customers[:2]]
    assert names[customers[2]] != "Changed after the range"
    assert _one(app_db, "select deleted_at from erp_customer where legacy_id = :i", i=customers[3]).deleted_at is None
    assert report.watermark_after == report.watermark_before == missed.watermark_after
    assert _stored_watermark(app_db, spec.entity) == (missed.watermark_after, missed.sync_run_id)
    assert _one(app_db, "select mode from sync_run where id = :id", id=report.sync_run_id).mode == "backfill"


def _rows(app_db: sa.Engine, sql: str, **params: object) -> list[sa.Row]:
    with app_db.connect() as connection:
        return list(connection.execute(sa.text(sql), params))
