"""Two runs of the same asset launched at once: the `as400` pool lets one step in at a time.

The runs go through the real path — `dagster job launch` twice at the same moment, a real
`dagster-daemon` dequeuing both onto a PostgreSQL-backed instance — and the proof is in Dagster's own
event log: the second run's step starts only after the first run's step has finished. (The advisory
lock in the engine would also serialize the syncs, but inside steps that both started; the pool keeps
the second step from starting at all, so the IBM i never sees two readers of the table.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef

from erp_pipelines_tests.support.sandbox import ROOT, operator_env
from erp_sandbox.as400.seed import SeedManifest
from erp_sandbox.legacy_4d.server import EmulatorServer

pytestmark = pytest.mark.integration

STEP = "app__product_stock"
TRIGGERS = ("pool_run_a", "pool_run_b")


def _step_window(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    """When the product_stock step of a run started and finished (event log timestamps)."""
    started = finished = None
    for record in instance.get_records_for_run(run_id).records:
        event = record.event_log_entry
        if event.step_key != STEP or event.dagster_event is None:
            continue
        if event.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            started = event.timestamp
        if event.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            finished = event.timestamp
    assert started is not None and finished is not None, f"run {run_id} has no complete {STEP} step"
    return started, finished


def test_two_runs_of_one_asset_are_serialized_by_the_pool(
    seed: Callable[..., SeedManifest],
    app_db: sa.Engine,
    app_url: str,
    legacy4d_server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    seed(products=3_000, bad_share=0.0)
    env = operator_env(tmp_path, app_url, legacy4d_server.port)
    subprocess.run([sys.executable, "-m", "erp_pipelines.commands", "sync", "--entity", "product"],
                   env=env, cwd=ROOT, check=True, capture_output=True, timeout=300)
    target = ["-m", "erp_pipelines.definitions"]
    bin_dir = Path(sys.executable).parent
    # Dagster's CLIs read `.env` from their working directory over the environment: run them elsewhere.
    daemon = subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", *target], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        launches = [
            subprocess.Popen(
                [str(bin_dir / "dagster"), "job", "launch", "-j", "as400_inventory_job", *target,
                 "--tags", f'{{"erp/trigger": "{trigger}", "erp/sync_mode": "full"}}'],
                env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for trigger in TRIGGERS
        ]
        for launch in launches:
            _, stderr = launch.communicate(timeout=180)
            assert launch.returncode == 0, stderr[-2000:]
        monkeypatch.setenv("DAGSTER_PG_DB", env["DAGSTER_PG_DB"])
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"])) as instance:
            runs: dict[str, dg.DagsterRun] = {}
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and len(runs) < len(TRIGGERS):
                for trigger in TRIGGERS:
                    records = instance.get_run_records(dg.RunsFilter(tags={"erp/trigger": trigger}))
                    if records and records[0].dagster_run.is_finished:
                        runs[trigger] = records[0].dagster_run
                time.sleep(2)
            assert sorted(runs) == sorted(TRIGGERS), "both runs should finish"
            assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs.values())
            windows = sorted(_step_window(instance, run.run_id) for run in runs.values())
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    (_, first_end), (second_start, _) = windows
    assert second_start >= first_end, f"steps overlapped: {windows}"
    with app_db.connect() as connection:
        audited = connection.execute(sa.text(
            "select status, processed from sync_run where entity = 'product_stock' and dagster_run_id = any(:ids) "
            "order by started_at"), {"ids": [run.run_id for run in runs.values()]}).all()
        duplicates = connection.execute(sa.text(
            "select count(*) - count(distinct (item_number, warehouse)) from product_stock")).scalar_one()
    assert [status for status, _ in audited] == ["COMPLETED", "COMPLETED"]
    assert all(processed > 0 for _, processed in audited)
    assert duplicates == 0
