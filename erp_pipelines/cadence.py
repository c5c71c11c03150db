"""How often each table is synced: the integration's cadences and the settings that change them.

AS400 products, measurements and pricing: daily (or every `AS400_SYNC_INTERVAL` seconds); AS400
inventory: hourly; 4D: daily. `AS400_SYNC_ENABLED=false` turns the AS400 schedules off. Freshness
policies follow the same cadences, so "overdue" means "a scheduled sync was missed".
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

import dagster as dg

from erp_pipelines.catalog.spec import TableSpec
from erp_pipelines.sources.base import flag_setting

HOUR = 3600
DAY = 86_400
DEFAULT_TIMEZONE = "UTC"


class CadenceSettingError(ValueError):
    """A scheduling setting that cannot be honoured; the message names it."""


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def timezone(env: Mapping[str, str] | None = None) -> str:
    return _env(env).get("ERP_TIMEZONE") or DEFAULT_TIMEZONE


def as400_sync_enabled(env: Mapping[str, str] | None = None) -> bool:
    return flag_setting(_env(env), "AS400_SYNC_ENABLED", True, CadenceSettingError)


def as400_interval_seconds(env: Mapping[str, str] | None = None) -> int:
    text = (_env(env).get("AS400_SYNC_INTERVAL") or str(DAY)).strip()
    try:
        seconds = int(text)
    except ValueError:
        raise CadenceSettingError(f"AS400_SYNC_INTERVAL={text!r} must be a whole number of seconds") from None
    cron_for_interval(seconds)
    return seconds


def cron_for_interval(seconds: int) -> str:
    """A cron expression that fires every `seconds`; only intervals cron can express evenly are accepted."""
    problem = f"AS400_SYNC_INTERVAL={seconds}"
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
    if spec.source_system == "as400":
        return as400_interval_seconds(env)
    return DAY


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
