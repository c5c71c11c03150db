"""Schedules with the integration's cadences, in an explicit timezone (ERP_TIMEZONE, default UTC)."""

from __future__ import annotations

import dagster as dg

from erp_pipelines.cadence import as400_interval_seconds, as400_sync_enabled, cron_for_interval, timezone
from erp_pipelines.jobs import as400_daily_job, as400_inventory_job, legacy_4d_daily_job


def _as400_schedule(name: str, job: dg.UnresolvedAssetJobDefinition, cron: str) -> dg.ScheduleDefinition:
    """AS400 schedules check AS400_SYNC_ENABLED at every tick too, so switching it off needs no redeploy."""

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone(),
        default_status=dg.DefaultScheduleStatus.RUNNING if as400_sync_enabled() else dg.DefaultScheduleStatus.STOPPED,
        description=f"{job.name} on {cron} ({timezone()}); off when AS400_SYNC_ENABLED=false.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        if not as400_sync_enabled():
            return dg.SkipReason("AS400_SYNC_ENABLED=false: AS400 syncs are switched off")
        return dg.RunRequest(tags={"erp/trigger": "schedule"})

    return _schedule


as400_daily_schedule = _as400_schedule(
    "as400_daily_schedule", as400_daily_job, cron_for_interval(as400_interval_seconds())
)
as400_inventory_schedule = _as400_schedule("as400_inventory_schedule", as400_inventory_job, "15 * * * *")

legacy_4d_daily_schedule = dg.ScheduleDefinition(
    name="legacy_4d_daily_schedule",
    job=legacy_4d_daily_job,
    cron_schedule="0 3 * * *",
    execution_timezone=timezone(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    tags={"erp/trigger": "schedule"},
    description="Every 4D table at 03:00.",
)

all_schedules = [as400_daily_schedule, as400_inventory_schedule, legacy_4d_daily_schedule]
