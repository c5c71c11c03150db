"""The IBM i (AS400) source system as the registry sees it."""

from __future__ import annotations

from erp_pipelines.sources.as400.resource import as400_resource
from erp_pipelines.sources.as400.tables import AS400_TABLES
from erp_pipelines.sources.system import JobDefault, SourceSystem, scaffolded_tables

SCAFFOLDED = "erp_pipelines.sources.as400.scaffolded"
"""Where `erp-sync scaffold --source as400` writes a new table's module (spec and model)."""

SYSTEM = SourceSystem(
    name="as400",
    title="IBM i (AS400) legacy system",
    kind="ibmi",
    tables=(*AS400_TABLES, *scaffolded_tables(SCAFFOLDED)),
    scaffolded_package=SCAFFOLDED,
    resource=as400_resource,
    secret_settings=("AS400_PASSWORD",),
    jobs=(
        JobDefault(
            name="as400_daily_job",
            description="AS400 products, measurements and pricing (daily, or every AS400_SYNC_INTERVAL seconds).",
            cadences=("daily",),
        ),
        JobDefault(name="as400_inventory_job", description="AS400 inventory levels (hourly).",
                   cadences=("hourly",), cron="15 * * * *"),
    ),
    interval_setting="AS400_SYNC_INTERVAL",
    enabled_setting="AS400_SYNC_ENABLED",
)
