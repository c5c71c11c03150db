"""Jobs: named selections of table assets that operators launch and schedules trigger."""

from __future__ import annotations

import dagster as dg

from erp_pipelines.assets import SYNC_MODE_TAG

as400_sync_job = dg.define_asset_job(
    name="as400_sync_job",
    selection=dg.AssetSelection.groups("as400").materializable(),
    description="Incremental sync of every AS400 table (full when a table has no watermark yet).",
    tags={"erp/source": "as400"},
)

legacy_4d_sync_job = dg.define_asset_job(
    name="legacy_4d_sync_job",
    selection=dg.AssetSelection.groups("legacy_4d").materializable(),
    description="Incremental sync of every 4D table (by __GlobalStamp, deletions from __DeletedRecords).",
    tags={"erp/source": "legacy_4d"},
)

full_resync_job = dg.define_asset_job(
    name="full_resync_job",
    selection=dg.AssetSelection.all().materializable(),
    description="Full re-read of every table; soft-deletes rows that disappeared at the source.",
    tags={SYNC_MODE_TAG: "full"},
)
