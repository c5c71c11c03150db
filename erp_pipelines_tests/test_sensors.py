"""Sensors evaluated with real instances against the real AS400 stand-in, 4D emulator and app database."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import dagster as dg
import pytest
import requests
import sqlalchemy as sa
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID

from erp_pipelines.assets import table_asset_key
from erp_pipelines.catalog import CATALOG, get_spec
from erp_pipelines.definitions import defs
from erp_pipelines.resources import AppDatabaseResource
from erp_pipelines.sensors import change_sensors, freshness_sensor
from erp_pipelines.sources.as400.adapter import to_cyymmdd_hhmmss
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines.sources.legacy_4d.resource import Legacy4DResource
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME
from erp_sandbox.as400.seed import SeedManifest
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None, **resources: object):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources, definitions=defs)
    return sensor.evaluate_tick(context)


def test_as400_change_sensor_requests_exactly_the_changed_table(
    seed: Callable[..., SeedManifest], as400: As400Resource, as400_source_sql: Callable[[str], None]
) -> None:
    seed(products=50, bad_share=0.0)
    with dg.instance_for_test() as instance:
        first = _tick(change_sensors["as400"], instance, None, as400=as400)
        assert first.run_requests == [] and first.cursor
        quiet = _tick(change_sensors["as400"], instance, first.cursor, as400=as400)
        assert quiet.run_requests == [] and quiet.cursor == first.cursor
        date, time = to_cyymmdd_hhmmss(dt.datetime.now().replace(microsecond=0))
        as400_source_sql(
            f'update "INVENTORYLIB"."INVENTORY" set "ONHAND" = 1, "CHGDAT" = {date}, "CHGTIM" = {time} '
            "where \"ITEMNO\" = 'ITM000000004'"
        )
        changed = _tick(change_sensors["as400"], instance, first.cursor, as400=as400)
        (request,) = changed.run_requests
        assert request.asset_selection == [table_asset_key(get_spec("product_stock"))]
        assert request.run_key.startswith("product_stock:")
        assert request.tags["erp/sync_mode"] == "incremental"
        again = _tick(change_sensors["as400"], instance, first.cursor, as400=as400)
        assert [r.run_key for r in again.run_requests] == [request.run_key]  # same key: Dagster runs it once
        after = _tick(change_sensors["as400"], instance, changed.cursor, as400=as400)
        assert after.run_requests == []


def test_4d_change_sensor_follows_updates_and_deletions(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore
) -> None:
    resource = Legacy4DResource(host="127.0.0.1", port=legacy4d_server.port, username=USERNAME, password=PASSWORD)
    with dg.instance_for_test() as instance:
        baseline = _tick(change_sensors["legacy_4d"], instance, None, legacy_4d=resource)
        assert baseline.run_requests == []
        legacy4d_store.update("Orders", 1, {"Status": "CANCELLED"})
        updated = _tick(change_sensors["legacy_4d"], instance, baseline.cursor, legacy_4d=resource)
        assert [r.asset_selection for r in updated.run_requests] == [[table_asset_key(get_spec("erp_order"))]]
        legacy4d_store.delete("Customers", [3])
        deleted = _tick(change_sensors["legacy_4d"], instance, updated.cursor, legacy_4d=resource)
        assert [r.tags["erp/entity"] for r in deleted.run_requests] == ["erp_customer"]
        legacy4d_store.update("Products", 2, {"Category": "Brand new category"})
        products = _tick(change_sensors["legacy_4d"], instance, deleted.cursor, legacy_4d=resource)
        assert sorted(r.tags["erp/entity"] for r in products.run_requests) == ["erp_category", "erp_product"]
    stats = requests.get(f"{legacy4d_server.base_url}/_emulator/stats", timeout=10).json()
    assert stats["sessions_opened"] == 1 and stats["licenses_in_use"] == 1  # every tick in the one session


def test_freshness_sensor_catches_up_overdue_tables_once_and_records_alerts(app_url: str, app_db: sa.Engine) -> None:
    resources = {"app_db": AppDatabaseResource(url=app_url)}
    fresh_key = table_asset_key(get_spec("product"))
    stale_key = table_asset_key(get_spec("product_stock"))
    with dg.instance_for_test() as instance:
        _materialized_at(instance, fresh_key, dt.datetime.now(dt.UTC))
        _materialized_at(instance, stale_key, dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
        first = _tick(freshness_sensor, instance, None, **resources)
        requested = {request.tags["erp/entity"] for request in first.run_requests}
        assert "product" not in requested
        assert "product_stock" in requested
        assert requested == {spec.entity for spec in CATALOG} - {"product"}
        second = _tick(freshness_sensor, instance, first.cursor, **resources)
        assert second.run_requests == []
    with app_db.connect() as connection:
        alerts = connection.execute(sa.text("select entity, kind, message from sync_alert")).all()
    assert {alert.entity for alert in alerts} == requested
    assert all(alert.kind == "freshness_overdue" for alert in alerts)
    stock = next(alert for alert in alerts if alert.entity == "product_stock")
    assert "allowed age 2:00:00" in stock.message


def _materialized_at(instance: dg.DagsterInstance, key: dg.AssetKey, when: dt.datetime) -> None:
    """Stores a materialization event dated `when` (what a missed schedule leaves behind)."""
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name=RUNLESS_JOB_NAME,
        event_specific_data=StepMaterializationData(dg.AssetMaterialization(asset_key=key)),
    )
    instance.store_event(
        EventLogEntry(error_info=None, level=logging.INFO, user_message="", run_id=RUNLESS_RUN_ID,
                      timestamp=when.timestamp(), dagster_event=event)
    )
