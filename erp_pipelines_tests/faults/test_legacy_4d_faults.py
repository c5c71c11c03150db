"""The 4D REST server misbehaving in the middle of a real engine-level sync (through the emulator's fault
endpoint): retried faults leave a COMPLETED run, persistent ones a FAILED run with a clear reason, and in
every case the run or the next one leaves the target equal to the emulator's store row for row, with the
watermark never ahead of committed data and the audit trail telling what happened."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.sources.legacy_4d.errors import Legacy4DAuthError, Legacy4DError, Legacy4DLicenseError
from erp_pipelines_tests.support.faults import (
    legacy_source,
    login_path,
    open_errors,
    source_checksum,
    sync_runs,
    target_checksum,
    watermark,
)
from erp_pipelines_tests.support.legacy_4d import PASSWORD, RawRest
from erp_sandbox.legacy_4d.seed import seed_store
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

# 200 products, 100 customers, 400 orders, in batches of 25: every run below reads 8 or more batches. When the
# first batch is committed the engine has read at most four more (one loading, one queued, one being
# validated, one prefetched), so a fault armed then lands on a page still to be read.
PRODUCTS = 200
BATCH = 25
UNEDITED = 3
TIMEOUT = 0.5  # the client's read timeout in the timeout cases; an injected delay of DELAY outlasts it
DELAY = 1.2


@dataclass(frozen=True)
class Table:
    """A 4D table under test: its spec, the parents loaded before it, a valid edit and a valid new entity."""

    spec: TableSpec
    parents: tuple[str, ...]
    edit: Callable[[int], dict[str, Any]]
    new: Callable[[int], dict[str, Any]]

    @property
    def key(self) -> str:
        return self.spec.source_key_columns[0]


TABLES = {
    "erp_product": Table(
        get_spec("erp_product"), ("erp_category",),
        lambda key: {"Price": key + 0.25, "ProductName": f"Edited product {key}"},
        lambda key: {"ProductID": key, "ProductName": f"New valve {key}", "SKU": f"NEW-{key}", "Category": "Valves",
                     "Price": 9.99, "Cost": 4.5, "TaxRate": 19, "IsPurchased": True, "IsManufactured": False,
                     "CreatedDate": "2025-01-02"},
    ),
    "erp_order": Table(
        get_spec("erp_order"), ("erp_customer",),
        lambda key: {"TotalAmount": key + 0.5, "Status": "CANCELLED"},
        lambda key: {"OrderID": key, "CustomerID": 1, "OrderDate": "2025-03-01", "OrderTime": 36_000_000,
                     "Status": "OPEN", "TotalAmount": 10.5, "Currency": "EUR"},
    ),
}


@pytest.fixture
def store(legacy4d_store: LegacyStore) -> LegacyStore:
    """The emulator's datastore with clean generated data, so every source row must reach the target."""
    seed_store(legacy4d_store.url, products=PRODUCTS, seed=11, bad_share=0.0)
    return legacy4d_store


@pytest.fixture(params=["directory", "authentify"])
def server(request: pytest.FixtureRequest, make_legacy4d_server: Callable[..., EmulatorServer],
           store: LegacyStore) -> EmulatorServer:
    """A default-mode server (directory login) and a force-login one (authentify)."""
    return make_legacy4d_server(force_login=request.param == "authentify")


def _sync(table: Table, server: EmulatorServer, app_db: sa.Engine, timeout: float = 5.0,
          **options: Any) -> SyncReport:
    source = legacy_source(server, batch_rows=BATCH, page_size=BATCH, timeout=timeout)
    return run_sync(table.spec, source, app_db, **options)


def _prepare(table: Table, server: EmulatorServer, app_db: sa.Engine, store: LegacyStore, initial: bool) -> int:
    """Loads the parents; for a merge also the table itself, then edits all entities but the last UNEDITED
    so the next incremental run reads many batches. Returns how many entities that run has to read."""
    for parent in table.parents:
        run_sync(get_spec(parent), legacy_source(server), app_db, mode="full")
    count = store.count(table.spec.source_table)
    if initial:
        return count
    _sync(table, server, app_db, mode="full")
    edited = range(1, count - UNEDITED + 1)
    store.save(table.spec.source_table, [{"__KEY": key, **table.edit(key)} for key in edited], atomic=True)
    return len(edited)


def _in_sync(table: Table, store: LegacyStore, app_db: sa.Engine) -> None:
    source = source_checksum(store.url, table.spec)
    assert source.rows > 0
    assert target_checksum(app_db, table.spec) == source


def _emulator(server: EmulatorServer, method: str, endpoint: str) -> None:
    assert requests.request(method, f"{server.base_url}/_emulator/{endpoint}", timeout=10).status_code == 200


def _arm_after_first_batch(server: EmulatorServer, faults: list[dict[str, Any]]) -> Callable[[SyncReport], None]:
    """Injects the faults once the first batch is committed, i.e. while later pages are still to be read."""
    control = RawRest(server.base_url)

    def on_batch(report: SyncReport) -> None:
        if report.batches == 1:
            for fault in faults:
                control.fault(**fault)
    return on_batch


def _pages_of(table: Table, *faults: dict[str, Any]) -> list[dict[str, Any]]:
    """Faults aimed at the table's page requests (path form: the key, then the other attributes) unless they
    name another path."""
    return [{"path_contains": f"/rest/{table.spec.source_table}/{table.key},"} | fault for fault in faults]


TRANSIENT = {
    "http_500": ({"kind": "http_500", "count": 2}, "500"),
    "timeout": ({"kind": "delay", "count": 1, "seconds": DELAY}, None),
    "connection_closed": ({"kind": "close_connection", "count": 1}, None),
    "session_expired": ({"kind": "drop_session", "count": 1}, "401"),
}


@pytest.mark.parametrize(("fault", "entity"), [
    ("http_500", "erp_order"),
    ("timeout", "erp_product"),
    ("connection_closed", "erp_order"),
    ("session_expired", "erp_product"),
])
def test_transient_fault_mid_read_is_retried_and_the_run_completes(
    fault: str, entity: str, server: EmulatorServer, store: LegacyStore, app_db: sa.Engine,
) -> None:
    table = TABLES[entity]
    expected = _prepare(table, server, app_db, store, initial=False)
    before = watermark(app_db, entity)
    stamp = store.global_stamp()
    injected, status = TRANSIENT[fault]
    _emulator(server, "DELETE", "stats")  # count only this run's requests and sessions
    report = _sync(table, server, app_db, timeout=TIMEOUT if fault == "timeout" else 5.0,
                   on_batch=_arm_after_first_batch(server, _pages_of(table, injected)))
    stats = RawRest(server.base_url).stats()
    assert stats["faults_pending"] == []  # the fault did hit a page request
    if status:
        assert stats["requests_by_status"][status] == injected["count"]
    logins = [r for r in stats["last_requests"] if login_path(server) in r["target"]]
    if fault == "session_expired":  # the 401 opened one session, logged into at once; never two licenses
        assert len(logins) == 1 and stats["sessions_opened"] == 1 and stats["max_concurrent_sessions"] == 1
    else:  # the deployment's session, authenticated before the run, is used as it is
        assert logins == [] and stats["sessions_opened"] == 0
    assert stats["licenses_in_use"] == 1
    assert (report.status, report.mode, report.processed, report.updated) == ("COMPLETED", "incremental",
                                                                               expected, expected)
    assert watermark(app_db, entity) == {"global_stamp": stamp} != before
    audit = sync_runs(app_db, entity)[-1]
    assert (audit.status, audit.processed, audit.updated, audit.error_message) == ("COMPLETED", expected, expected,
                                                                                   None)
    _in_sync(table, store, app_db)
    assert open_errors(app_db, entity) == 0


PERSISTENT: dict[str, tuple[list[dict[str, Any]], type[Legacy4DError], tuple[str, ...]]] = {
    "http_500": ([{"kind": "http_500", "count": -1}], Legacy4DError, ("HTTP 500", "4 attempt(s)")),
    "timeout": ([{"kind": "delay", "count": -1, "seconds": DELAY}], Legacy4DError,
                ("unreachable", "after 4 attempt(s): ReadTimeout")),
    "session_expired": ([{"kind": "drop_session", "count": -1}], Legacy4DAuthError, ("HTTP 401", "errCode 1822")),
    "licenses_exhausted": ([{"kind": "exhaust_licenses", "count": 1}], Legacy4DLicenseError,
                           ("licenses are exhausted", "HTTP 402, 1 attempt(s)", "errCode 1823")),
    "relogin_without_license": (
        [{"kind": "drop_session", "count": 1},
         {"kind": "exhaust_licenses", "count": 1, "path_contains": "$directory/login"}],
        Legacy4DLicenseError, ("licenses are exhausted", "POST /rest/$directory/login (HTTP 402"),
    ),
}


@pytest.mark.parametrize(("fault", "entity", "initial"), [
    ("http_500", "erp_product", True),
    ("http_500", "erp_order", False),
    ("timeout", "erp_product", True),
    ("session_expired", "erp_order", False),
    ("licenses_exhausted", "erp_product", False),
    ("relogin_without_license", "erp_order", True),
])
def test_persistent_fault_mid_read_fails_the_run_cleanly_and_the_next_run_completes(
    fault: str, entity: str, initial: bool, server: EmulatorServer, store: LegacyStore, app_db: sa.Engine,
) -> None:
    table = TABLES[entity]
    _prepare(table, server, app_db, store, initial)
    before = watermark(app_db, entity)
    faults, error, reasons = PERSISTENT[fault]
    login = login_path(server)  # the table names the directory login; a force-login server has authentify
    faults = [f | {"path_contains": login} if f.get("path_contains") == "$directory/login" else f for f in faults]
    refusal = "errCode 1561" if server.config.force_login else "errCode 1822"  # a guest's data request
    reasons = tuple(reason.replace("$directory/login", login).replace("errCode 1822", refusal) for reason in reasons)
    with pytest.raises(error) as caught:
        _sync(table, server, app_db, timeout=TIMEOUT if fault == "timeout" else 5.0,
              on_batch=_arm_after_first_batch(server, _pages_of(table, *faults)))
    stats = RawRest(server.base_url).stats()
    assert stats["licenses_in_use"] <= 1 and stats["max_concurrent_sessions"] == 1  # never a second license
    _emulator(server, "DELETE", "faults")

    failed = sync_runs(app_db, entity)[-1]
    assert failed.status == "FAILED"
    assert failed.error_message == f"{type(caught.value).__name__}: {caught.value}"
    assert all(reason in failed.error_message for reason in reasons), failed.error_message
    assert "Traceback" not in failed.error_message and PASSWORD not in failed.error_message
    assert watermark(app_db, entity) == before  # never ahead of what was committed
    with app_db.connect() as connection:
        committed = connection.execute(sa.text(
            f"select count(*) from {table.spec.target_table} where sync_run_id = :id"), {"id": failed.id}).scalar_one()
    assert committed == failed.created + failed.updated == 0  # a run is one transaction: nothing of it stays
    assert failed.mode == ("full" if initial else "incremental")
    if initial:
        assert target_checksum(app_db, table.spec).rows == 0

    retry = _sync(table, server, app_db)
    assert retry.status == "COMPLETED"
    assert retry.mode == ("full" if initial else "incremental")
    audit = sync_runs(app_db, entity)[-1]
    assert (audit.status, audit.processed, audit.watermark_before) == ("COMPLETED", retry.processed, before)
    _in_sync(table, store, app_db)
    assert open_errors(app_db, entity) == 0


def _edit_while_reading(table: Table, store: LegacyStore, last: int, stamps: list[int]) -> Callable[[SyncReport], None]:
    """After the first batch: edits, inserts and deletes entities already read and not yet read, and
    deletes one then creates it again under the same key. Records the stamp before the edits."""

    def on_batch(report: SyncReport) -> None:
        if report.batches != 1:
            return
        stamps.append(store.global_stamp())
        dataclass = table.spec.source_table
        store.update(dataclass, 4, table.edit(5000))  # already read
        store.update(dataclass, last - 10, table.edit(5001))  # not yet read
        store.update(dataclass, last - 1, table.edit(5002))  # not read by a merge (unchanged before the run)
        store.insert(dataclass, [table.new(last + 100)])
        store.delete(dataclass, [6, last - 12])
        store.delete(dataclass, [last - 14])
        store.insert(dataclass, [table.new(last - 14)])  # the same key again: live, not deleted
    return on_batch


@pytest.mark.parametrize("entity", sorted(TABLES))
@pytest.mark.parametrize("initial", [True, False], ids=["initial-load", "merge"])
def test_entities_changed_inserted_and_deleted_while_pages_are_read(
    entity: str, initial: bool, server: EmulatorServer, store: LegacyStore, app_db: sa.Engine,
) -> None:
    table = TABLES[entity]
    _prepare(table, server, app_db, store, initial)
    last = store.count(table.spec.source_table)
    stamps: list[int] = []
    first = _sync(table, server, app_db, on_batch=_edit_while_reading(table, store, last, stamps))
    assert first.status == "COMPLETED" and first.batches >= 8
    assert first.watermark_after is not None and first.watermark_after["global_stamp"] <= stamps[0]
    assert target_checksum(app_db, table.spec) != source_checksum(store.url, table.spec)  # the edits raced the read

    second = _sync(table, server, app_db)
    assert second.status == "COMPLETED" and second.mode == "incremental"
    _in_sync(table, store, app_db)
    with app_db.connect() as connection:
        gone = connection.execute(sa.text(
            f"select legacy_id from {table.spec.target_table} where deleted_at is not null order by 1")).scalars().all()
    # a merge had loaded `last - 12` before it was deleted; `last - 14`, deleted and created again, is live
    assert gone == ([6] if initial else [6, last - 12])
    third = _sync(table, server, app_db)
    assert (third.processed, third.deleted) == (0, 0)  # the watermark moved past everything that was applied
    _in_sync(table, store, app_db)
