"""The code location: assembles the small modules of this package into one `Definitions`."""

from __future__ import annotations

import dagster as dg

from erp_pipelines.assets import source_assets, table_assets
from erp_pipelines.checks import integrity_checks, reconciliation_checks
from erp_pipelines.jobs import as400_sync_job, full_resync_job, legacy_4d_sync_job
from erp_pipelines.resources import app_database_resource, as400_resource, legacy_4d_resource

defs = dg.Definitions(
    assets=[*source_assets, *table_assets],
    asset_checks=[*integrity_checks, *reconciliation_checks],
    jobs=[as400_sync_job, legacy_4d_sync_job, full_resync_job],
    resources={"as400": as400_resource(), "legacy_4d": legacy_4d_resource(), "app_db": app_database_resource()},
)
