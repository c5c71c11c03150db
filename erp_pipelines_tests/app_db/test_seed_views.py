"""The AS400 seed's monitoring tables `sync_history` and `sync_event` (views, migration 0006) show real runs
with the seed's column names (the 4D seed's SyncLog / SyncError) and status values."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic import command

from erp_pipelines.catalog import get_spec
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.migrations import alembic_config
from erp_pipelines.sources.as400.resource import As400Resource
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration

SYNC_HISTORY_COLUMNS = ["id", "table_name", "entity", "source_system", "mode", "status", "records_processed",
                        "records_created", "records_updated", "records_failed", "records_unchanged",
                        "records_deleted", "start_time", "end_time", "error_message", "dagster_run_id",
                        "created_at", "updated_at"]
SYNC_EVENT_COLUMNS = ["id", "event_type", "sync_history_id", "table_name", "entity", "source_system", "record_id",
                      "error_message", "record_data", "rules", "created_at", "resolved_at",
                      "resolved_by_sync_history_id"]


def _columns(engine: sa.Engine, view: str) -> list[str]:
    return [column["name"] for column in sa.inspect(engine).get_columns(view)]


def test_sync_history_and_sync_event_show_the_runs_with_the_seeds_names(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine
) -> None:
    manifest = seed(products=50, bad_share=0.1)
    report = run_sync(get_spec("product"), as400.source(), app_db, mode="full")
    bad = manifest.bad_keys("PRODUCTLIB.PRODUCTS")
    assert report.status == "PARTIALLY_COMPLETED" and report.rejected == len(bad) > 0
    with app_db.begin() as connection:
        connection.execute(sa.text("insert into sync_alert (kind, entity, message, run_key) values "
                                   "('full_sync_forced', 'product', 'stamp went backwards', :key)"),
                           {"key": f"sync_run:{report.sync_run_id}"})
    assert _columns(app_db, "sync_history") == SYNC_HISTORY_COLUMNS
    assert _columns(app_db, "sync_event") == SYNC_EVENT_COLUMNS
    with app_db.connect() as connection:
        (history,) = connection.execute(sa.text("select * from sync_history")).all()
        events = connection.execute(sa.text("select * from sync_event order by id")).all()
    assert (history.id, history.table_name, history.entity, history.status, history.mode) == (
        report.sync_run_id, "PRODUCTLIB.PRODUCTS", "product", "PARTIALLY_COMPLETED", "full")
    assert (history.records_processed, history.records_created, history.records_updated,
            history.records_failed) == (report.processed, report.created, report.updated, report.rejected)
    assert history.start_time <= history.end_time == history.updated_at and history.error_message == ""

    alerts = [event for event in events if event.id.startswith("alert-")]
    errors = [event for event in events if event.event_type == "RECORD_ERROR"]
    assert [(a.event_type, a.sync_history_id, a.entity, a.error_message) for a in alerts] == [
        ("FULL_SYNC_FORCED", report.sync_run_id, "product", "stamp went backwards")]
    assert len(errors) == len(bad)
    assert {event.sync_history_id for event in errors} == {report.sync_run_id}
    assert {event.table_name for event in errors} == {"PRODUCTLIB.PRODUCTS"}
    assert {event.record_id for event in errors} == {"|".join(str(part) for part in key) for key in bad}
    assert all(event.error_message and "ITEMNO" in event.record_data and event.resolved_at is None
               for event in errors)


def test_the_views_go_with_a_downgrade_and_come_back(app_url: str, app_db: sa.Engine) -> None:
    config = alembic_config(app_url)
    command.downgrade(config, "0005")
    try:
        assert not {"sync_history", "sync_event"} & set(sa.inspect(app_db).get_view_names())
    finally:
        command.upgrade(config, "head")
    assert {"sync_history", "sync_event"} <= set(sa.inspect(app_db).get_view_names())
    with app_db.begin() as connection:
        run = connection.execute(sa.text(
            "insert into sync_run (source_system, entity, source_table, target_table, mode, status, error_message) "
            "values ('x', 'e', 'LIB.T', 't', 'incremental', 'FAILED', 'boom') returning id")).scalar_one()
    with app_db.connect() as connection:
        failed = connection.execute(sa.text("select * from sync_history where id = :id"), {"id": run}).one()
    assert (failed.status, failed.error_message, failed.end_time, failed.records_processed) == (
        "FAILED", "boom", None, 0)
