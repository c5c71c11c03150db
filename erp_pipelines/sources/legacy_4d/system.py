"""The 4D legacy ERP source system as the registry sees it."""

from __future__ import annotations

from erp_pipelines.sources.legacy_4d.resource import legacy_4d_resource
from erp_pipelines.sources.legacy_4d.tables import LEGACY_4D_TABLES
from erp_pipelines.sources.system import JobDefault, SourceSystem, scaffolded_tables

SCAFFOLDED = "erp_pipelines.sources.legacy_4d.scaffolded"
"""Where `erp-sync scaffold --source legacy_4d` writes a new table's module (spec and model)."""

SYSTEM = SourceSystem(
    name="legacy_4d",
    title="4D legacy ERP",
    kind="4d",
    tables=(*LEGACY_4D_TABLES, *scaffolded_tables(SCAFFOLDED)),
    scaffolded_package=SCAFFOLDED,
    resource=legacy_4d_resource,
    secret_settings=("LEGACY_API_PASSWORD",),
    jobs=(
        JobDefault(
            name="legacy_4d_daily_job",
            description="Every 4D table (daily): incremental by __GlobalStamp, deletions from __DeletedRecords.",
            cron="0 3 * * *",
            schedule_description="Every 4D table at 03:00.",
        ),
    ),
)
