"""Cadence settings: intervals cron can express, switches, and freshness windows that follow them."""

from __future__ import annotations

import datetime as dt

import pytest

from erp_pipelines.cadence import (
    CadenceSettingError,
    cron_for_interval,
    freshness_policy,
    interval_seconds,
    overdue_after,
    sync_enabled,
)
from erp_pipelines.catalog import get_spec, system_of

AS400 = system_of(get_spec("product"))


@pytest.mark.parametrize(
    ("seconds", "cron"),
    [(60, "*/1 * * * *"), (900, "*/15 * * * *"), (3600, "0 * * * *"), (21600, "0 */6 * * *"),
     (86400, "0 2 * * *"), (172800, "0 2 */2 * *")],
)
def test_cron_for_interval(seconds: int, cron: str) -> None:
    assert cron_for_interval(seconds, "AS400_SYNC_INTERVAL") == cron


@pytest.mark.parametrize("seconds", [0, 59, 90, 420, 3660, 25200, 90000])
def test_intervals_cron_cannot_express_are_refused_naming_the_setting(seconds: int) -> None:
    with pytest.raises(CadenceSettingError, match=f"AS400_SYNC_INTERVAL={seconds}"):
        cron_for_interval(seconds, "AS400_SYNC_INTERVAL")


def test_interval_must_be_a_number() -> None:
    with pytest.raises(CadenceSettingError, match="AS400_SYNC_INTERVAL='daily'"):
        interval_seconds(AS400, {"AS400_SYNC_INTERVAL": "daily"})


@pytest.mark.parametrize(("value", "enabled"), [("true", True), ("FALSE", False), ("0", False), ("", True)])
def test_sync_enabled(value: str, enabled: bool) -> None:
    assert sync_enabled(AS400, {"AS400_SYNC_ENABLED": value}) is enabled


def test_sync_enabled_refuses_other_words() -> None:
    with pytest.raises(CadenceSettingError, match="AS400_SYNC_ENABLED='maybe'"):
        sync_enabled(AS400, {"AS400_SYNC_ENABLED": "maybe"})


def test_freshness_follows_the_cadence() -> None:
    hourly, daily = get_spec("product_stock"), get_spec("product")
    assert overdue_after(hourly, {}) == dt.timedelta(hours=2)
    assert overdue_after(daily, {}) == dt.timedelta(days=2)
    assert overdue_after(daily, {"AS400_SYNC_INTERVAL": "21600"}) == dt.timedelta(hours=12)
    assert overdue_after(get_spec("erp_order"), {"AS400_SYNC_INTERVAL": "21600"}) == dt.timedelta(days=2)
    policy = freshness_policy(hourly, {})
    assert policy.fail_window.to_timedelta() == dt.timedelta(hours=2)
    assert policy.warn_window.to_timedelta() == dt.timedelta(minutes=75)
