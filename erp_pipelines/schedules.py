"""Schedules: one per job a source system declares, plus the weekly verification, in an explicit timezone
(ERP_TIMEZONE, default UTC)."""

from __future__ import annotations

import dagster as dg

from erp_pipelines.cadence import cron_for_interval, interval_seconds, sync_enabled, timezone
from erp_pipelines.jobs import system_jobs, verify_job
from erp_pipelines.sources.registry import SYSTEMS
from erp_pipelines.sources.system import JobDefault, SourceSystem


def build_schedule(system: SourceSystem, job: JobDefault) -> dg.ScheduleDefinition:
    """A system with an `enabled_setting` has it checked at every tick too, so switching off needs no redeploy."""
    cron = job.cron or cron_for_interval(interval_seconds(system), system.interval_setting or "interval")
    switch = system.enabled_setting
    description = job.schedule_description or f"{job.name} on {cron} ({timezone()})"
    if switch:
        description += f"; off when {switch}=false."

    @dg.schedule(
        name=job.name.removesuffix("_job") + "_schedule",
        job=system_jobs[job.name],
        cron_schedule=cron,
        execution_timezone=timezone(),
        default_status=dg.DefaultScheduleStatus.RUNNING if sync_enabled(system) else dg.DefaultScheduleStatus.STOPPED,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        if not sync_enabled(system):
            return dg.SkipReason(f"{switch}=false: {system.title} syncs are switched off")
        return dg.RunRequest(tags={"erp/trigger": "schedule"})

    return _schedule


VERIFY_CRON = "0 4 * * 0"
"""Sundays 04:00, after the nightly syncs: a full read of every table on both sides."""

verify_schedule = dg.ScheduleDefinition(
    name="verify_schedule",
    job=verify_job,
    cron_schedule=VERIFY_CRON,
    execution_timezone=timezone(),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=f"Row-by-row verification of every table on {VERIFY_CRON} ({timezone()}); stopped until an "
                "operator starts it (a full read of each source table).",
    tags={"erp/trigger": "verify_schedule"},
)

all_schedules = [*(build_schedule(system, job) for system in SYSTEMS for job in system.jobs), verify_schedule]
