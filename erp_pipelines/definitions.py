"""The code location: assembles the small modules of this package into one `Definitions`."""

from __future__ import annotations

import dagster as dg

from erp_pipelines.assets import source_assets, table_assets
from erp_pipelines.checks import integrity_checks, position_checks, reconciliation_checks, verify_checks
from erp_pipelines.jobs import all_jobs
from erp_pipelines.logs import configure_sync_logs
from erp_pipelines.resources import app_database_resource
from erp_pipelines.schedules import all_schedules
from erp_pipelines.sensors import all_sensors
from erp_pipelines.sources.registry import SYSTEMS

configure_sync_logs()

defs = dg.Definitions(
    assets=[*source_assets, *table_assets],
    asset_checks=[*integrity_checks, *reconciliation_checks, *position_checks, *verify_checks],
    jobs=all_jobs,
    schedules=all_schedules,
    sensors=all_sensors,
    resources={**{system.name: system.resource() for system in SYSTEMS}, "app_db": app_database_resource()},
)
