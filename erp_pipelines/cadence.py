"""How often each table is synced: the specs' cadences and the settings each source system names for them.

Hourly tables: hourly. Daily tables: daily, or every `SourceSystem.interval_setting` seconds. A system's
`enabled_setting` (set to false) turns its schedules off. Freshness policies follow the same cadences, so
"overdue" means "a scheduled sync was missed".
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

import dagster as dg

from erp_pipelines.catalog import system_of
from erp_pipelines.core.source import flag_setting
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.sources.system import SourceSystem

HOUR = 3600
DAY = 86_400
DEFAULT_TIMEZONE = "UTC"


class CadenceSettingError(ValueError):
    """A scheduling setting that cannot be honoured; the message names it."""


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def timezone(env: Mapping[str, str] | None = None) -> str:
    return _env(env).get("ERP_TIMEZONE") or DEFAULT_TIMEZONE


def sync_enabled(system: SourceSystem, env: Mapping[str, str] | None = None) -> bool:
    """The system's `enabled_setting` (default on); a system without one is always on."""
    if system.enabled_setting is None:
        return True
    return flag_setting(_env(env), system.enabled_setting, True, CadenceSettingError)


def interval_seconds(system: SourceSystem, env: Mapping[str, str] | None = None) -> int:
    """Seconds between syncs of the system's daily tables: its `interval_setting`, or a day."""
    setting = system.interval_setting
    text = ((_env(env).get(setting) if setting else None) or str(DAY)).strip()
    try:
        seconds = int(text)
    except ValueError:
        raise CadenceSettingError(f"{setting}={text!r} must be a whole number of seconds") from None
    cron_for_interval(seconds, setting or "interval")
    return seconds


def cron_for_interval(seconds: int, setting: str) -> str:
    """A cron expression that fires every `seconds`; only intervals cron can express evenly are accepted."""
    problem = f"{setting}={seconds}"
    if seconds < 60 or seconds % 60:
        raise CadenceSettingError(f"{problem} must be a positive whole number of minutes (a multiple of 60)")
    if seconds < HOUR:
        minutes = seconds // 60
        if 60 % minutes:
            raise CadenceSettingError(f"{problem}: {minutes} minutes does not divide an hour")
        return f"*/{minutes} * * * *"
    if seconds < DAY:
        if seconds % HOUR or 24 % (seconds // HOUR):
            raise CadenceSettingError(f"{problem} must be a whole number of hours that divides a day")
        hours = seconds // HOUR
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    if seconds % DAY:
        raise CadenceSettingError(f"{problem} above a day must be a whole number of days")
    days = seconds // DAY
    return "0 2 * * *" if days == 1 else f"0 2 */{days} * *"


def cadence_seconds(spec: TableSpec, env: Mapping[str, str] | None = None) -> int:
    if spec.cadence == "hourly":
        return HOUR
    return interval_seconds(system_of(spec), env)


def freshness_policy(spec: TableSpec, env: Mapping[str, str] | None = None) -> dg.FreshnessPolicy:
    """Warn a quarter-hour after a missed cadence, fail after two cadences without a sync."""
    seconds = cadence_seconds(spec, env)
    return dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(seconds=2 * seconds),
        warn_window=dt.timedelta(seconds=min(seconds + 900, 2 * seconds - 60)),
    )


def overdue_after(spec: TableSpec, env: Mapping[str, str] | None = None) -> dt.timedelta:
    """How old the last materialization may be before the freshness sensor catches up (the fail window)."""
    return dt.timedelta(seconds=2 * cadence_seconds(spec, env))
