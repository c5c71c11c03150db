"""Schedules: cadences, explicit timezone, and the AS400 switches honoured at load and at each tick."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from erp_pipelines.definitions import defs


def _tick(name: str) -> dg.ScheduleExecutionData:
    schedule = defs.resolve_schedule_def(name)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)
        )
        return schedule.evaluate_tick(context)


def test_cadences_and_timezone() -> None:
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["as400_daily_schedule"].cron_schedule == "0 2 * * *"
    assert schedules["as400_inventory_schedule"].cron_schedule == "15 * * * *"
    assert schedules["legacy_4d_daily_schedule"].cron_schedule == "0 3 * * *"
    assert {s.execution_timezone for s in schedules.values()} == {os.environ.get("ERP_TIMEZONE") or "UTC"}
    assert schedules["as400_daily_schedule"].job_name == "as400_daily_job"
    assert schedules["as400_inventory_schedule"].job_name == "as400_inventory_job"


def test_enabled_schedule_requests_a_run() -> None:
    (request,) = _tick("as400_inventory_schedule").run_requests
    assert request.tags["erp/trigger"] == "schedule"


def test_switching_as400_off_skips_at_the_next_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS400_SYNC_ENABLED", "false")
    result = _tick("as400_daily_schedule")
    assert not result.run_requests
    assert "AS400_SYNC_ENABLED=false" in result.skip_message


def _load_schedules(**env: str) -> dict:
    """Loads the code location in a fresh interpreter with the given settings."""
    script = (
        "import json; from erp_pipelines.definitions import defs; "
        "print(json.dumps({s.name: [s.cron_schedule, s.default_status.value, s.execution_timezone] "
        "for s in defs.schedules}))"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def test_settings_shape_the_schedules() -> None:
    disabled = _load_schedules(AS400_SYNC_ENABLED="false", AS400_SYNC_INTERVAL="21600", ERP_TIMEZONE="Europe/Paris")
    assert disabled["as400_daily_schedule"] == ["0 */6 * * *", "STOPPED", "Europe/Paris"]
    assert disabled["as400_inventory_schedule"][1] == "STOPPED"
    assert disabled["legacy_4d_daily_schedule"][1] == "RUNNING"
    enabled = _load_schedules(AS400_SYNC_ENABLED="true", AS400_SYNC_INTERVAL="86400")
    assert enabled["as400_daily_schedule"][:2] == ["0 2 * * *", "RUNNING"]


def test_bad_interval_fails_loading_with_the_setting_named() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import erp_pipelines.definitions"],
        env={**os.environ, "AS400_SYNC_INTERVAL": "7000"}, capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "AS400_SYNC_INTERVAL=7000" in result.stderr


def test_verification_runs_on_its_own_schedule_stopped_by_default_and_never_with_a_sync() -> None:
    schedule = defs.resolve_schedule_def("verify_schedule")
    assert schedule.cron_schedule == "0 4 * * 0" and schedule.job_name == "verify_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    verify = {key.name for key in defs.resolve_job_def("verify_job").asset_layer.asset_graph.asset_check_keys}
    assert verify == {"matches_source_row_by_row"}
    for job in ("as400_daily_job", "as400_inventory_job", "legacy_4d_daily_job", "full_resync_job"):
        checks = {key.name for key in defs.resolve_job_def(job).asset_layer.asset_graph.asset_check_keys}
        assert checks and "matches_source_row_by_row" not in checks, job
