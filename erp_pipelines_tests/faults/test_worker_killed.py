"""The sync process killed with SIGKILL in the middle of a load; the next run finishes the work and the
audit trail says what happened to the killed one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines_tests.support.faults import small_batch_source, stock_source_rows, stock_target_rows
from erp_pipelines_tests.support.sandbox import ROOT
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration

WORKER = """
import os, sys
from dataclasses import replace
from erp_pipelines.app_db.engine import app_engine
from erp_pipelines.catalog import get_spec
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sources.as400.adapter import As400Source
from erp_pipelines.sources.as400.connection import As400Settings
settings = As400Settings.from_env().replaced(batch_rows=500)
run_sync(get_spec("product_stock"), As400Source(settings), app_engine(sys.argv[1]), mode="full")
"""


def test_sigkill_mid_load_loses_and_duplicates_nothing(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine, app_url: str,
    as400_owner_url: str, as400_source_sql: Callable[[str], None],
) -> None:
    seed(products=10_000, warehouses=3, bad_share=0.0)
    run_sync(get_spec("product"), as400.source(), app_db, mode="full")
    first = run_sync(get_spec("product_stock"), small_batch_source(as400), app_db, mode="full")
    as400_source_sql('update "INVENTORYLIB"."INVENTORY" set "ONHAND" = "ONHAND" + 3')
    env = dict(os.environ, AS400_DATABASE=os.environ["TEST_AS400_DATABASE"])
    worker = subprocess.Popen([sys.executable, "-c", WORKER, app_url], env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    staging = False
    with app_db.connect() as connection:  # kill it while it stages the read (its own session's temporary table)
        while time.monotonic() < deadline and not staging and worker.poll() is None:
            staging = connection.execute(sa.text(
                "select exists (select 1 from pg_stat_activity where datname = current_database() and state = 'active' "
                "and query like 'copy \"stage_product_stock\"%')"
            )).scalar_one()
            connection.commit()
            time.sleep(0.02)
    assert staging and worker.poll() is None, "the worker finished before it could be killed"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    with app_db.connect() as connection:  # a run is one transaction: nothing of the killed one is visible
        written = connection.execute(sa.text(
            "select count(*) from product_stock where sync_run_id > :first"), {"first": first.sync_run_id}
        ).scalar_one()
    assert written == 0
    retry = run_sync(get_spec("product_stock"), small_batch_source(as400), app_db, mode="full")
    assert retry.status == "COMPLETED"
    assert stock_target_rows(app_db) == stock_source_rows(as400_owner_url)
    with app_db.connect() as connection:
        killed = connection.execute(sa.text(
            "select status, error_message from sync_run where entity = 'product_stock' and id > :first "
            "and id < :retry"), {"first": first.sync_run_id, "retry": retry.sync_run_id}).one()
    assert killed.status == "FAILED"
    assert killed.error_message.startswith("abandoned: the sync process ended without finishing")
