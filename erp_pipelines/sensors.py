"""Sensors: change sensors per source system, and the freshness sensor that catches up and alerts.

Each tick stays small: a change sensor reads one marker per table on the AS400 (an indexed newest-stamp
row), and on 4D one one-entity request (the datastore's global stamp), with per-dataclass requests only when
that stamp moved, all in the deployment's one 4D session; never a table. Cursors advance only when a tick
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
from erp_pipelines.catalog.spec import TableSpec
from erp_pipelines.resources import AppDatabaseResource

log = logging.getLogger("erp_pipelines.freshness")


def changed_entities(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """Entities whose marker moved; on the first tick (no cursor) nothing is requested, only recorded. Keys
    starting with "__" are the source's own bookkeeping (4D: the datastore stamp seen last), not entities."""
    if not previous:
        return []
    return [entity for entity, marker in current.items()
            if not entity.startswith("__") and previous.get(entity) != marker]


def build_change_sensor(source_system: str) -> dg.SensorDefinition:
    specs = specs_for(source_system)

    @dg.sensor(
        name=f"{source_system}_change_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        asset_selection=dg.AssetSelection.assets(*(table_asset_key(spec) for spec in specs)),
        required_resource_keys={source_system},
        description=f"Requests an incremental run of exactly the {source_system} tables whose change marker moved.",
    )
    def _change_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        previous = json.loads(context.cursor) if context.cursor else {}
        source = getattr(context.resources, source_system).source()
        since = getattr(source, "change_markers_since", None)  # 4D: one request per tick unless something moved
        current = since(specs, previous) if since else source.change_markers(specs)
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


as400_change_sensor = build_change_sensor("as400")
legacy_4d_change_sensor = build_change_sensor("legacy_4d")

all_sensors = [as400_change_sensor, legacy_4d_change_sensor, freshness_sensor]
