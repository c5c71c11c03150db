"""Load on the 4D path: a deployment holds one REST session, i.e. one 4D client license, however many syncs
run side by side (they share the session, one HTTP exchange at a time). When the ERP's own users hold every
license, a sync fails at once with the license error (the asset's retry policy runs it again later), commits
nothing and moves no watermark; once their sessions reach 4D's inactivity timeout, the rerun completes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.sources.legacy_4d.errors import Legacy4DLicenseError
from erp_pipelines_tests.support.faults import legacy_source, source_checksum, sync_runs, target_checksum, watermark
from erp_pipelines_tests.support.legacy_4d import RawRest
from erp_sandbox.legacy_4d.seed import seed_store
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

PARENTS = [get_spec("erp_category")]
TABLES = [get_spec(entity) for entity in ("erp_customer", "erp_product", "erp_order", "erp_inventory")]
EDITS = {"Customers": {"CreditLimit": 777.0}, "Products": {"Price": 12.5}, "Orders": {"Status": "CANCELLED"},
         "Inventory": {"QuantityOnHand": 42.0}}
HOLD = 1.5  # every session is held at least this long (a delayed catalog call), so the syncs overlap


def _concurrently(server: EmulatorServer, app_db: sa.Engine, specs: list[TableSpec]) -> dict[str, object]:
    """Runs the syncs on one thread each, released together; returns each one's report or exception."""
    start = threading.Barrier(len(specs))

    def run(spec: TableSpec) -> SyncReport:
        start.wait(timeout=30)
        return run_sync(spec, legacy_source(server), app_db)

    with ThreadPoolExecutor(len(specs)) as pool:
        futures = {spec.entity: pool.submit(run, spec) for spec in specs}
        return {entity: future.exception(timeout=120) or future.result() for entity, future in futures.items()}


def test_concurrent_syncs_share_the_deployments_one_session(
    make_legacy4d_server: Callable[..., EmulatorServer], legacy4d_store: LegacyStore, app_db: sa.Engine,
) -> None:
    seed_store(legacy4d_store.url, products=200, seed=5, bad_share=0.0)
    server = make_legacy4d_server(licenses=2)
    for spec in PARENTS + TABLES:  # the first load goes parents first, one table at a time
        run_sync(spec, legacy_source(server), app_db, mode="full")
    for dataclass, edit in EDITS.items():
        legacy4d_store.save(dataclass, [{"__KEY": key, **edit} for key in range(1, 41)], atomic=True)
    control = RawRest(server.base_url)
    control.fault("delay", count=-1, path_contains="$catalog", seconds=HOLD)
    outcomes = _concurrently(server, app_db, TABLES)
    assert all(isinstance(report, SyncReport) and report.status == "COMPLETED" for report in outcomes.values()), \
        outcomes
    stats = control.stats()
    assert stats["sessions_opened"] == 1 and stats["max_concurrent_sessions"] == 1
    logins = [r for r in stats["last_requests"] if r["target"] == "/rest/$directory/login"]
    assert len(logins) <= 1
    for spec in TABLES:
        assert target_checksum(app_db, spec) == source_checksum(legacy4d_store.url, spec), spec.entity
        assert sync_runs(app_db, spec.entity)[-1].processed == 40


def test_with_every_license_held_by_others_syncs_fail_at_once_and_complete_after_their_timeout(
    make_legacy4d_server: Callable[..., EmulatorServer], legacy4d_store: LegacyStore, app_db: sa.Engine,
) -> None:
    seed_store(legacy4d_store.url, products=200, seed=5, bad_share=0.0)
    server = make_legacy4d_server(licenses=2)
    for spec in PARENTS + TABLES:
        run_sync(spec, legacy_source(server), app_db, mode="full")
    for dataclass, edit in EDITS.items():
        legacy4d_store.save(dataclass, [{"__KEY": key, **edit} for key in range(1, 41)], atomic=True)
    watermarks = {spec.entity: watermark(app_db, spec.entity) for spec in TABLES}
    requests.post(f"{server.base_url}/_emulator/restart", timeout=10)  # the deployment's session is gone
    users = [RawRest(server.base_url) for _ in range(2)]
    assert all(user.login().status_code == 200 for user in users)  # the ERP's users take both licenses
    assert requests.delete(f"{server.base_url}/_emulator/stats", timeout=10).status_code == 200

    outcomes = _concurrently(server, app_db, TABLES)
    assert all(isinstance(outcome, Legacy4DLicenseError) for outcome in outcomes.values()), outcomes
    stats = RawRest(server.base_url).stats()
    assert stats["requests_by_status"]["402"] == len(TABLES)  # one refused request each, never retried
    for entity in outcomes:
        failed = sync_runs(app_db, entity)[-1]
        assert failed.status == "FAILED"
        assert failed.error_message.startswith("Legacy4DLicenseError: 4D REST licenses are exhausted")
        assert "Retry the run later" in failed.error_message
        assert (failed.processed, failed.created, failed.updated) == (0, 0, 0)
        assert watermark(app_db, entity) == watermarks[entity]

    requests.post(f"{server.base_url}/_emulator/clock", json={"advance": 3601}, timeout=10)  # users went idle
    retried = _concurrently(server, app_db, TABLES)
    assert all(isinstance(report, SyncReport) and report.status == "COMPLETED" for report in retried.values())
    stats = RawRest(server.base_url).stats()
    assert stats["licenses_in_use"] == 1 and stats["sessions_opened"] == 1
    for spec in TABLES:
        assert target_checksum(app_db, spec) == source_checksum(legacy4d_store.url, spec), spec.entity
        assert sync_runs(app_db, spec.entity)[-1].processed == 40
