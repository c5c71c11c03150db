"""The engine end to end on real components: the stand-in through psqlODBC, the app database on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec, specs_for
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sources.as400.adapter import to_cyymmdd_hhmmss
from erp_pipelines.sources.as400.resource import As400Resource
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration

AS400_SPECS = specs_for("as400")


def _sync_all(as400: As400Resource, app_db: sa.Engine, mode: str = "incremental") -> dict:
    return {spec.entity: run_sync(spec, as400.source(), app_db, mode=mode) for spec in AS400_SPECS}


def _scalar(app_db: sa.Engine, sql: str, **params: object) -> object:
    with app_db.connect() as connection:
        return connection.execute(sa.text(sql), params).scalar_one()


def _now_stamp() -> tuple[int, int]:
    return to_cyymmdd_hhmmss(dt.datetime.now().replace(microsecond=0))



@pytest.fixture
def as400(as400: As400Resource) -> As400Resource:
    """Change stamps: these cases are stamp tracking's (sources/as400/test_journal_capture.py has the journal's)."""
    return as400.replaced(change_tracking="stamps")

def test_full_sync_loads_good_rows_and_quarantines_exactly_the_bad_ones(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine
) -> None:
    manifest = seed(products=300, warehouses=3, bad_share=0.04)
    reports = _sync_all(as400, app_db)
    for spec in AS400_SPECS:
        report = reports[spec.entity]
        expected_bad = manifest.bad_keys(spec.source_table)
        assert report.mode == "full"  # no watermark yet
        assert report.processed == manifest.rows[spec.source_table]
        assert report.rejected == len(expected_bad), spec.entity
        assert report.created == report.processed - report.rejected
        assert report.status == "PARTIALLY_COMPLETED"
        with app_db.connect() as connection:
            quarantined = {
                tuple(key)
                for key in connection.execute(
                    sa.text("select source_key from sync_error where entity = :e"), {"e": spec.entity}
                ).scalars()
            }
            live = connection.execute(
                sa.text(f"select count(*) from {spec.target_table} where deleted_at is null")
            ).scalar_one()
        assert quarantined == {tuple(str(part).rstrip(" ") for part in key) for key in expected_bad}, spec.entity
        assert live == report.created


def test_quarantine_keeps_reason_rules_and_raw_record(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine
) -> None:
    manifest = seed(products=200, bad_share=0.04)
    run_sync(get_spec("product"), as400.source(), app_db)
    (blank,) = manifest.bad["PRODUCTLIB.PRODUCTS"]["blank_description"][:1]
    (bad_date,) = manifest.bad["PRODUCTLIB.PRODUCTS"]["impossible_date"][:1]
    with app_db.connect() as connection:
        rows = {
            row.source_key[0]: row
            for row in connection.execute(sa.text("select * from sync_error where entity = 'product'"))
        }
    assert "not_blank" in rows[blank[0]].error_message
    assert rows[blank[0]].raw_record["ITEMNO"].strip() == blank[0]
    assert rows[bad_date[0]].rules == ["created_on:decode"]
    assert "1251341 is not a valid CYYMMDD date" in rows[bad_date[0]].error_message
    assert rows[bad_date[0]].raw_record["CRTDAT"] == "1251341"


def test_unchanged_rerun_writes_nothing(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine
) -> None:
    seed(products=150, bad_share=0.0)
    first = _sync_all(as400, app_db, mode="full")
    second = _sync_all(as400, app_db, mode="full")
    for spec in AS400_SPECS:
        assert second[spec.entity].created == second[spec.entity].updated == 0
        assert second[spec.entity].unchanged == first[spec.entity].processed
        assert second[spec.entity].deleted == 0
        rewritten = _scalar(
            app_db, f"select count(*) from {spec.target_table} where sync_run_id <> :first",
            first=first[spec.entity].sync_run_id,
        )
        assert rewritten == 0, spec.entity


def test_incremental_picks_up_exactly_the_changed_rows(
    seed: Callable[..., SeedManifest],
    as400: As400Resource,
    app_db: sa.Engine,
    as400_source_sql: Callable[[str], None],
) -> None:
    seed(products=120, warehouses=2, bad_share=0.0)
    _sync_all(as400, app_db)
    date, time = _now_stamp()
    as400_source_sql(
        f"""update "INVENTORYLIB"."INVENTORY" set "ONHAND" = "ONHAND" + 1, "CHGDAT" = {date}, "CHGTIM" = {time}
            where "ITEMNO" in ('ITM000000003', 'ITM000000007') and "WHSE" = '001';
            insert into "INVENTORYLIB"."INVENTORY" ("ITEMNO", "WHSE", "ONHAND", "UOM", "CHGDAT", "CHGTIM")
            values ('ITM000000005', '300', 12.5, 'EA', {date}, {time});
            delete from "INVENTORYLIB"."INVENTORY" where "ITEMNO" = 'ITM000000009' and "WHSE" = '002';"""
    )
    spec = get_spec("product_stock")
    incremental = run_sync(spec, as400.source(), app_db)
    assert incremental.mode == "incremental"
    assert (incremental.created, incremental.updated, incremental.rejected) == (1, 2, 0)
    assert incremental.processed < 10  # only the changed rows and the overlap window were read
    with app_db.connect() as connection:
        touched = {
            tuple(row)
            for row in connection.execute(
                sa.text("select item_number, warehouse from product_stock where sync_run_id = :run"),
                {"run": incremental.sync_run_id},
            )
        }
        on_hand = connection.execute(
            sa.text("select on_hand from product_stock where item_number = 'ITM000000005' and warehouse = '300'")
        ).scalar_one()
    assert touched == {("ITM000000003", "001"), ("ITM000000007", "001"), ("ITM000000005", "300")}
    assert str(on_hand) == "12.500"
    # A journal-less IBM i table cannot report the delete: the next full sync soft-deletes it.
    full = run_sync(spec, as400.source(), app_db, mode="full")
    assert (full.created, full.updated, full.deleted) == (0, 0, 1)
    deleted_at = _scalar(
        app_db,
        "select deleted_at from product_stock where item_number = 'ITM000000009' and warehouse = '002'",
    )
    assert deleted_at is not None


def test_fixed_bad_record_loads_once_and_closes_its_quarantine_entry(
    seed: Callable[..., SeedManifest],
    as400: As400Resource,
    app_db: sa.Engine,
    as400_source_sql: Callable[[str], None],
) -> None:
    manifest = seed(products=100, bad_share=0.04)
    spec = get_spec("product")
    run_sync(spec, as400.source(), app_db)
    (item,) = manifest.bad["PRODUCTLIB.PRODUCTS"]["blank_description"][0]
    again = run_sync(spec, as400.source(), app_db, mode="full")
    assert again.rejected == len(manifest.bad_keys(spec.source_table))
    assert again.rejected_new == 0  # known rejects are not quarantined twice
    date, time = _now_stamp()
    as400_source_sql(
        f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'FIXED DESCRIPTION', "CHGDAT" = {date},
            "CHGTIM" = {time} where "ITEMNO" = '{item}'"""
    )
    fixed = run_sync(spec, as400.source(), app_db)
    assert fixed.created == 1
    open_entries = _scalar(
        app_db, "select count(*) from sync_error where source_key = jsonb_build_array(cast(:k as text)) "
        "and resolved_at is null", k=item
    )
    entries = _scalar(app_db, "select count(*) from sync_error where source_key = jsonb_build_array(cast(:k as text))",
                      k=item)
    assert (open_entries, entries) == (0, 1)
    assert _scalar(app_db, "select description from product where item_number = :k", k=item) == "FIXED DESCRIPTION"


def test_too_many_rejects_are_reported_but_never_stop_the_good_rows(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine
) -> None:
    seed(products=100, bad_share=0.4)
    report = run_sync(get_spec("product"), as400.source(), app_db)
    assert report.rejected_share_exceeded and report.status == "PARTIALLY_COMPLETED"
    assert "of the table (live rows + quarantined records), above the allowed 10.0%" in report.error_message
    stored = _scalar(app_db, "select status || ': ' || error_message from sync_run where id = :id",
                     id=report.sync_run_id)
    assert stored == f"PARTIALLY_COMPLETED: {report.error_message}"
    assert _scalar(app_db, "select count(*) from product") == report.processed - report.rejected


def test_watermark_is_saved_with_the_run_and_read_back(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine
) -> None:
    seed(products=50, bad_share=0.0)
    spec = get_spec("product")
    first = run_sync(spec, as400.source(), app_db)
    assert first.watermark_after is not None
    second = run_sync(spec, as400.source(), app_db)
    assert second.watermark_before == first.watermark_after
    assert _scalar(app_db, "select value ->> 'changed_at' from sync_watermark where entity = 'product'") == (
        first.watermark_after["changed_at"]
    )
