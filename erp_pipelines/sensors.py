"""Sensors: change sensors per source system, and the freshness sensor that catches up and alerts.

Each tick stays small: a change sensor asks its source system for one cheap marker per table
(`SourceAdapter.change_markers`: an indexed newest-stamp row, or one request for a datastore stamp), never
a table. Cursors advance only when a tick
succeeds, and every run request has a run key, so nothing is requested twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import dagster as dg
import sqlalchemy as sa

from erp_pipelines.app_db.tables import sync_alert
from erp_pipelines.assets import SYNC_MODE_TAG, table_asset_key
from erp_pipelines.cadence import overdue_after
from erp_pipelines.catalog import CATALOG, specs_for
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.resources import AppDatabaseResource
from erp_pipelines.sources.registry import SYSTEMS
from erp_pipelines.sources.system import SourceSystem, resource_of

log = logging.getLogger("erp_pipelines.freshness")


def changed_entities(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """Entities whose marker moved; on the first tick (no cursor) nothing is requested, only recorded. Keys
    starting with "__" are the source's own bookkeeping (4D: the datastore stamp seen last), not entities."""
    if not previous:
        return []
    return [entity for entity, marker in current.items()
            if not entity.startswith("__") and previous.get(entity) != marker]


def build_change_sensor(system: SourceSystem) -> dg.SensorDefinition:
    specs = specs_for(system.name)  # as the catalog targets them (ERP_TARGET): the assets' own keys

    @dg.sensor(
        name=f"{system.name}_change_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        asset_selection=dg.AssetSelection.assets(*(table_asset_key(spec) for spec in specs)),
        required_resource_keys={system.name},
        description=f"Requests an incremental run of exactly the {system.title} tables whose change marker moved.",
    )
    def _change_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        previous = json.loads(context.cursor) if context.cursor else {}
        current = resource_of(context.resources, system).source().change_markers(specs, previous)
        changed = changed_entities(previous, current)
        requests = [
            dg.RunRequest(
                run_key=f"{entity}:{current[entity]}",
                asset_selection=[table_asset_key(spec) for spec in specs if spec.entity == entity],
                tags={SYNC_MODE_TAG: "incremental", "erp/trigger": "change_sensor", "erp/entity": entity},
            )
            for entity in changed
        ]
        skip = None if requests else ("baseline recorded" if not previous else "no table changed")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True), skip_reason=skip)

    return _change_sensor


def overdue(spec: TableSpec, last: float | None, now: dt.datetime) -> bool:
    """Never materialized, or older than the table's fail window (two cadences)."""
    return last is None or now - dt.datetime.fromtimestamp(last, dt.UTC) > overdue_after(spec)


@dg.sensor(
    name="freshness_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=dg.AssetSelection.assets(*(table_asset_key(spec) for spec in CATALOG)),
    description="Catches up overdue tables (missed cadence) with an incremental run, and records an alert.",
)
def freshness_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabaseResource) -> dg.SensorResult:
    now = dt.datetime.now(dt.UTC)
    alerted: dict[str, float | None] = json.loads(context.cursor) if context.cursor else {}
    requests, alerts = [], []
    for spec in CATALOG:
        key = table_asset_key(spec)
        event = context.instance.get_latest_materialization_event(key)
        last = event.timestamp if event else None
        if not overdue(spec, last, now):
            alerted.pop(spec.entity, None)
            continue
        if spec.entity in alerted and alerted[spec.entity] == last:
            continue
        run_key = f"catchup:{spec.entity}:{int(last or 0)}"
        seen = "never" if last is None else dt.datetime.fromtimestamp(last, dt.UTC).isoformat(timespec="seconds")
        message = (
            f"{spec.entity} is overdue: last materialized {seen}, allowed age {overdue_after(spec)}; "
            f"requesting a catch-up run"
        )
        log.warning(message)
        context.log.warning(message)
        requests.append(
            dg.RunRequest(
                run_key=run_key,
                asset_selection=[key],
                tags={SYNC_MODE_TAG: "incremental", "erp/trigger": "freshness_sensor", "erp/entity": spec.entity},
            )
        )
        alerts.append(
            {
                "kind": "freshness_overdue",
                "entity": spec.entity,
                "message": message,
                "last_materialized_at": None if last is None else dt.datetime.fromtimestamp(last, dt.UTC),
                "run_key": run_key,
            }
        )
        alerted[spec.entity] = last
    if alerts:
        with app_db.engine().begin() as connection:
            connection.execute(sa.insert(sync_alert), alerts)
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps(alerted, sort_keys=True),
        skip_reason=None if requests else "every table is fresh",
    )


change_sensors = {system.name: build_change_sensor(system) for system in SYSTEMS}
all_sensors = [*change_sensors.values(), freshness_sensor]
