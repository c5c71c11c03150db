"""Load on the 4D path: every sync holds one REST session, i.e. one 4D client license, so syncs running side
by side must never hold more sessions than the server has licenses. A sync that finds them all taken fails
at once with the license error (the asset's retry policy runs it again later) instead of exceeding them,
and it commits nothing and moves no watermark."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.catalog.spec import TableSpec
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.sources.legacy_4d.client import Legacy4DLicenseError
from erp_pipelines_tests.faults import legacy_source, source_checksum, sync_runs, target_checksum, watermark
from erp_pipelines_tests.fixtures_legacy_4d import RawRest
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


@pytest.mark.parametrize("licenses", [2, 3])
def test_concurrent_syncs_never_hold_more_sessions_than_licenses(
    licenses: int, make_legacy4d_server: Callable[..., EmulatorServer], legacy4d_store: LegacyStore,
    app_db: sa.Engine,
) -> None:
    seed_store(legacy4d_store.url, products=200, seed=5, bad_share=0.0)
    server = make_legacy4d_server(licenses=licenses)
    for spec in PARENTS + TABLES:  # the first load goes parents first, one table at a time
        run_sync(spec, legacy_source(server), app_db, mode="full")
    for dataclass, edit in EDITS.items():
        legacy4d_store.save(dataclass, [{"__KEY": key, **edit} for key in range(1, 41)], atomic=True)
    watermarks = {spec.entity: watermark(app_db, spec.entity) for spec in TABLES}
    control = RawRest(server.base_url)
    control.fault("delay", count=-1, path_contains="$catalog", seconds=HOLD)
    assert requests.delete(f"{server.base_url}/_emulator/stats", timeout=10).status_code == 200

    outcomes = _concurrently(server, app_db, TABLES)
    stats = control.stats()
    assert stats["max_concurrent_sessions"] == licenses  # all licenses were used, never one more
    assert stats["sessions_open"] == 0
    refused = sorted(entity for entity, outcome in outcomes.items() if isinstance(outcome, Legacy4DLicenseError))
    completed = sorted(entity for entity, outcome in outcomes.items()
                       if isinstance(outcome, SyncReport) and outcome.status == "COMPLETED")
    assert (len(completed), len(refused)) == (licenses, len(TABLES) - licenses), outcomes
    assert stats["requests_by_status"]["402"] == len(refused)  # one refused login each, not retried
    logins = [r for r in stats["last_requests"] if r["target"] == "/rest/$directory/login"]
    assert [r["status"] for r in logins].count(200) == licenses
    for entity in refused:
        failed = sync_runs(app_db, entity)[-1]
        assert failed.status == "FAILED"
        assert failed.error_message.startswith("Legacy4DLicenseError: 4D REST licenses are exhausted")
        assert "Retry the run later" in failed.error_message
        assert (failed.processed, failed.created, failed.updated) == (0, 0, 0)
        assert watermark(app_db, entity) == watermarks[entity]

    requests.delete(f"{server.base_url}/_emulator/faults", timeout=10)
    retried = _concurrently(server, app_db, [get_spec(entity) for entity in refused])
    assert all(isinstance(report, SyncReport) and report.status == "COMPLETED" for report in retried.values())
    stats = control.stats()
    assert stats["max_concurrent_sessions"] == licenses and stats["sessions_open"] == 0
    for spec in TABLES:
        assert target_checksum(app_db, spec) == source_checksum(legacy4d_store.url, spec), spec.entity
        assert sync_runs(app_db, spec.entity)[-1].processed == 40
