"""Jobs: named selections of table assets that operators launch and schedules trigger.

Each source system declares its jobs (`SourceSystem.jobs`); `full_resync_job` re-reads everything; `verify_job`
runs the row-by-row verification checks alone (a full read of each table), which every other job subtracts: "by
default, all jobs targeting an asset will also run associated checks" (Dagster docs, "Testing assets with asset
checks"). The sync
mode is incremental unless a run says otherwise (tag `erp/sync_mode=full` or the asset config `mode`); a
table without a watermark yet is read in full either way.
"""

from __future__ import annotations

import dagster as dg

from erp_pipelines.assets import SYNC_MODE_TAG, table_asset_key
from erp_pipelines.catalog import specs_for
from erp_pipelines.checks import VERIFY_CHECK_KEYS
from erp_pipelines.sources.registry import SYSTEMS
from erp_pipelines.sources.system import JobDefault, SourceSystem


def build_job(system: SourceSystem, job: JobDefault) -> dg.UnresolvedAssetJobDefinition:
    """The job's tables as the catalog targets them (ERP_TARGET), so their asset keys are the assets' own."""
    tables = [spec for spec in specs_for(system.name) if spec.cadence in job.cadences]
    return dg.define_asset_job(
        name=job.name,
        selection=dg.AssetSelection.assets(*(table_asset_key(spec) for spec in tables))
        - dg.AssetSelection.checks(*VERIFY_CHECK_KEYS),
        description=job.description,
        tags={"erp/source": system.name},
    )


full_resync_job = dg.define_asset_job(
    name="full_resync_job",
    selection=dg.AssetSelection.all().materializable() - dg.AssetSelection.checks(*VERIFY_CHECK_KEYS),
    description="Full re-read of every table; soft-deletes rows that disappeared at the source.",
    tags={SYNC_MODE_TAG: "full"},
)

verify_job = dg.define_asset_job(
    name="verify_job",
    selection=dg.AssetSelection.checks(*VERIFY_CHECK_KEYS),
    description="Row-by-row verification of every table against its source (reads only; `erp-sync verify`).",
)

system_jobs = {job.name: build_job(system, job) for system in SYSTEMS for job in system.jobs}
all_jobs = [*system_jobs.values(), full_resync_job, verify_job]
