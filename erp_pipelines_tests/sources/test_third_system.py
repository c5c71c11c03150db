"""A third source system joins through its package and the registry alone, and everything picks it up.

The in-memory system in `erp_pipelines_tests/support/memory_source/` is named in `ERP_SOURCE_PACKAGES` only;
no file of `erp_pipelines` mentions it. Real processes, as an operator runs them: the code location's
definitions, `erp-sync test-connection`, `erp-sync sync` through a PostgreSQL-backed Dagster instance, the
sync log and its secret redaction.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from erp_pipelines.app_db.engine import app_engine
from erp_pipelines_tests.support.sandbox import ROOT, operator_env
from erp_sandbox.legacy_4d.server import EmulatorServer

pytestmark = pytest.mark.integration

PACKAGE = "erp_pipelines_tests.support.memory_source.system"
TOKEN = "memo-token-7f3a91"


@pytest.fixture
def memory_env(tmp_path: Path, app_url: str, legacy4d_server: EmulatorServer) -> dict[str, str]:
    return {**operator_env(tmp_path, app_url, legacy4d_server.port), "ERP_SOURCE_PACKAGES": PACKAGE,
            "MEMORY_SOURCE_ROWS": "1:first note;2:second note;3:", "MEMORY_SOURCE_TOKEN": TOKEN}


def _python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert TOKEN not in result.stdout + result.stderr
    return result


DESCRIBE = """
import json
import dagster as dg
from erp_pipelines.definitions import defs
graph = defs.resolve_asset_graph()
key = dg.AssetKey(["app", "memo_note"])
node = graph.get(key)
job = defs.resolve_job_def("memory_daily_job")
print(json.dumps({
    "jobs": [job.name for job in defs.jobs],
    "schedules": {s.name: s.cron_schedule for s in defs.schedules},
    "sensors": [s.name for s in defs.sensors],
    "resources": sorted(defs.resources),
    "group": node.group_name,
    "kinds": sorted(node.kinds),
    "deps": sorted(k.to_user_string() for k in node.parent_keys),
    "checks": sorted(c.name for c in graph.asset_check_keys if c.asset_key == key),
    "job_assets": sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys),
}))
"""

CREATE_TABLE = """
from erp_pipelines.app_db.engine import app_engine
from erp_pipelines.app_db.tables import table_of
from erp_pipelines.catalog import get_spec
import os
table_of(get_spec("memo_note")).create(app_engine(os.environ["APP_DATABASE_URL"]), checkfirst=True)
"""


def test_a_registered_system_gets_assets_jobs_schedules_sensors_and_resources(memory_env: dict[str, str]) -> None:
    described = _python(memory_env, "-c", DESCRIBE)
    assert described.returncode == 0, described.stderr
    found = json.loads(described.stdout.strip().splitlines()[-1])
    assert "memory_daily_job" in found["jobs"]
    assert found["schedules"]["memory_daily_schedule"] == "30 4 * * *"
    assert "memory_change_sensor" in found["sensors"]
    assert "memory" in found["resources"]
    assert found["group"] == "memory"
    assert found["kinds"] == ["postgres", "python"]
    assert found["deps"] == ["memory/NOTES"]
    assert found["checks"] == ["live_rows_present_and_unique", "matches_source_row_by_row", "reconciles_with_source",
                              "rejected_share_within_limit", "source_position_retained"]
    assert found["job_assets"] == ["app/memo_note"]


def test_test_connection_sync_log_and_redaction_pick_it_up(memory_env: dict[str, str], app_url: str) -> None:
    probe = _python(memory_env, "-m", "erp_pipelines.commands", "test-connection", "--source", "memory")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert probe.stdout.strip() == "memory: OK — in memory, 3 rows; readable: memo_note"

    engine = app_engine(app_url)
    try:
        created = _python(memory_env, "-c", CREATE_TABLE)
        assert created.returncode == 0, created.stderr
        synced = _python(memory_env, "-m", "erp_pipelines.commands", "sync", "--entity", "memo_note")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        # Note 3 has an empty body: quarantined with its rule, the other two loaded.
        assert "app/memo_note: PARTIALLY_COMPLETED [full] processed=3, created=2" in synced.stdout
        assert "rejected=1" in synced.stdout
        assert "check app/memo_note reconciles_with_source: passed" in synced.stdout
        with engine.connect() as connection:
            assert connection.exec_driver_sql("select note_id, body from memo_note order by 1").all() == [
                (1, "first note"), (2, "second note")]
            quarantined = connection.exec_driver_sql(
                "select source_key, error_message from sync_error where entity = 'memo_note'").all()
        assert [(key, "body" in message) for key, message in quarantined] == [([3], True)]

        log = (Path(memory_env["ERP_LOG_DIR"]) / "memory_sync.log").read_text()
        assert "memo_note" in log
        assert "memory source opened with token ***" in log
        assert TOKEN not in log
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql("drop table if exists memo_note")
            connection.exec_driver_sql("delete from sync_error where entity = 'memo_note'")
        engine.dispose()
