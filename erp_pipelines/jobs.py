"""Jobs: named selections of table assets that operators launch and schedules trigger.

The sync mode is incremental unless a run says otherwise (tag `erp/sync_mode=full` or the asset config
`mode`); a table without a watermark yet is read in full either way.
"""

from __future__ import annotations

import dagster as dg

from erp_pipelines.assets import SYNC_MODE_TAG, table_asset_key
from erp_pipelines.catalog import specs_for


def _tables(source_system: str, cadence: str | None = None) -> dg.AssetSelection:
    return dg.AssetSelection.assets(
        *(table_asset_key(spec) for spec in specs_for(source_system) if cadence in (None, spec.cadence))
    )


as400_daily_job = dg.define_asset_job(
    name="as400_daily_job",
    selection=_tables("as400", "daily"),
    description="AS400 products, measurements and pricing (daily, or every AS400_SYNC_INTERVAL seconds).",
    tags={"erp/source": "as400"},
)

as400_inventory_job = dg.define_asset_job(
    name="as400_inventory_job",
    selection=_tables("as400", "hourly"),
    description="AS400 inventory levels (hourly).",
    tags={"erp/source": "as400"},
)

legacy_4d_daily_job = dg.define_asset_job(
    name="legacy_4d_daily_job",
    selection=_tables("legacy_4d"),
    description="Every 4D table (daily): incremental by __GlobalStamp, deletions from __DeletedRecords.",
    tags={"erp/source": "legacy_4d"},
)

full_resync_job = dg.define_asset_job(
    name="full_resync_job",
    selection=dg.AssetSelection.all().materializable(),
    description="Full re-read of every table; soft-deletes rows that disappeared at the source.",
    tags={SYNC_MODE_TAG: "full"},
)

all_jobs = [as400_daily_job, as400_inventory_job, legacy_4d_daily_job, full_resync_job]
