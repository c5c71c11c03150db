"""Connections cut in the middle of a sync: the run says FAILED, and the next run makes the target equal
the source, row for row, with no duplicates and the watermark never ahead of committed data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import psycopg2
import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.sources.as400.adapter import to_cyymmdd_hhmmss
from erp_pipelines.sources.as400.connection import As400ConnectionError
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines_tests.support.faults import small_batch_source, stock_source_rows, stock_target_rows
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration

STOCK = get_spec("product_stock")
def _cut(owner_url: str, who: str, database: str) -> None:
    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where usename = %s and datname = %s and pid <> pg_backend_pid()", (who, database))


def _cut_after(batches: int, cut: Callable[[], None]) -> Callable[[SyncReport], None]:
    def on_batch(report: SyncReport) -> None:
        if report.batches == batches:
            cut()
    return on_batch


def _status(app_db: sa.Engine, run_id: int) -> tuple[str, str]:
    with app_db.connect() as connection:
        row = connection.execute(sa.text("select status, error_message from sync_run where id = :id"),
                                 {"id": run_id}).one()
    return row.status, row.error_message


@pytest.mark.parametrize("initial", [True, False], ids=["initial-load", "merge"])
def test_source_connection_killed_mid_extraction(
    initial: bool, seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine,
    as400_owner_url: str, as400_source_sql: Callable[[str], None],
) -> None:
    seed(products=10_000, warehouses=3, bad_share=0.0)
    run_sync(get_spec("product"), as400.source(), app_db, mode="full")
    if not initial:
        run_sync(STOCK, small_batch_source(as400), app_db, mode="full")
        date, time = to_cyymmdd_hhmmss(dt.datetime.now().replace(microsecond=0))
        as400_source_sql(f'update "INVENTORYLIB"."INVENTORY" set "ONHAND" = "ONHAND" + 5, "CHGDAT" = {date}, '
                         f'"CHGTIM" = {time} where "WHSE" = \'002\'')
    watermark_before = _watermark(app_db)
    database = as400.database or ""
    with pytest.raises(As400ConnectionError, match="failed mid-stream") as failure:
        run_sync(STOCK, small_batch_source(as400), app_db, mode="full",
                 on_batch=_cut_after(1, lambda: _cut(as400_owner_url, "as400_reader", database)))
    assert as400.password not in str(failure.value)
    assert _watermark(app_db) == watermark_before  # never ahead of what was committed
    with app_db.connect() as connection:
        failed = connection.execute(sa.text(
            "select id, status, created, updated from sync_run where entity = 'product_stock' order by id desc limit 1"
        )).one()
    assert failed.status == "FAILED"
    if initial:  # the initial load is one transaction: the failed run committed nothing and says so
        assert (failed.created, failed.updated, stock_target_rows(app_db)) == (0, 0, [])
    retry = run_sync(STOCK, small_batch_source(as400), app_db, mode="full")
    assert retry.status == "COMPLETED"
    assert stock_target_rows(app_db) == stock_source_rows(as400_owner_url)
    assert _watermark(app_db) is not None


def test_application_database_lost_mid_load(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine, as400_owner_url: str, app_url: str,
) -> None:
    seed(products=10_000, warehouses=3, bad_share=0.0)
    run_sync(get_spec("product"), as400.source(), app_db, mode="full")
    run_sync(STOCK, small_batch_source(as400), app_db, mode="full")
    with psycopg2.connect(as400_owner_url) as connection, connection.cursor() as cursor:
        cursor.execute('update "INVENTORYLIB"."INVENTORY" set "ONHAND" = "ONHAND" + 1 where "WHSE" = \'001\'')
    database = sa.engine.make_url(app_url).database or ""
    owner = app_url.replace("+psycopg2", "")
    with pytest.raises((sa.exc.DBAPIError, psycopg2.OperationalError)):
        run_sync(STOCK, small_batch_source(as400), app_db, mode="full",
                 on_batch=_cut_after(2, lambda: _cut(owner, "erp_app", database)))
    with app_db.connect() as connection:
        status = connection.execute(sa.text(
            "select status from sync_run where entity = 'product_stock' order by id desc limit 1")).scalar_one()
    assert status == "FAILED"
    retry = run_sync(STOCK, small_batch_source(as400), app_db, mode="full")
    assert retry.status == "COMPLETED"
    assert stock_target_rows(app_db) == stock_source_rows(as400_owner_url)


def _watermark(app_db: sa.Engine) -> object:
    with app_db.connect() as connection:
        return connection.execute(
            sa.text("select value from sync_watermark where entity = 'product_stock'")).scalar_one_or_none()
