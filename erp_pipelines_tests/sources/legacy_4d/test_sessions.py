"""The deployment's one 4D session against the faithful emulator: kept across processes in a secret file, one
session per server-side session loss, refused and timed-out logins never retried, both login modes, and the
license figure of a simulated day of operation."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import requests
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec, specs_for
from erp_pipelines.core.source import SchemaDriftError, SettingError
from erp_pipelines.definitions import defs
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sensors import change_sensors
from erp_pipelines.sources.legacy_4d.adapter import DATASTORE_MARKER
from erp_pipelines.sources.legacy_4d.errors import Legacy4DAuthError, Legacy4DError
from erp_pipelines.sources.legacy_4d.resource import Legacy4DResource
from erp_pipelines.sources.legacy_4d.session import SessionJar
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME, RawRest
from erp_sandbox.legacy_4d.seed import seed_store
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

SPECS = specs_for("legacy_4d")


def _resource(server: EmulatorServer, session_file: Path, **overrides: object) -> Legacy4DResource:
    options: dict = {"host": "127.0.0.1", "port": server.port, "username": USERNAME, "password": PASSWORD,
                     "page_size": 200, "batch_rows": 500, "session_file": str(session_file)} | overrides
    return Legacy4DResource(**options)


def _stats(server: EmulatorServer) -> dict:
    return RawRest(server.base_url).stats()


def _control(server: EmulatorServer, endpoint: str, payload: dict | None = None) -> None:
    assert requests.post(f"{server.base_url}/_emulator/{endpoint}", json=payload or {}, timeout=10).ok


def _logins(server: EmulatorServer) -> list[dict]:
    return [r for r in requests.get(f"{server.base_url}/_emulator/requests", timeout=10).json()["requests"]
            if r["path"] in ("/rest/$directory/login", "/rest/$catalog/authentify")]


def test_the_session_file_is_a_secret_shared_by_processes(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    session_file = tmp_path / "state" / "session.json"
    assert _resource(legacy4d_server, session_file).source().count_rows(get_spec("erp_customer")) > 0
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(session_file.parent.stat().st_mode) == 0o700
    cookie = json.loads(session_file.read_text())["session_id"]
    assert PASSWORD not in session_file.read_text()
    script = (
        "import sys; from erp_pipelines.sources.legacy_4d.client import Legacy4DClient;"
        "from erp_pipelines.sources.legacy_4d.session import SessionJar;"
        f"c = Legacy4DClient('127.0.0.1', {legacy4d_server.port}, {USERNAME!r}, sys.argv[1],"
        f" jar=SessionJar({str(session_file)!r})); print(c.count('Products'))"
    )
    other = subprocess.run([sys.executable, "-c", script, PASSWORD], capture_output=True, text=True, timeout=60,
                           check=True)
    assert int(other.stdout) == legacy4d_seeded["counts"]["Products"]
    assert len(_logins(legacy4d_server)) == 1 and _stats(legacy4d_server)["sessions_opened"] == 1
    for text in (caplog.text, other.stdout, other.stderr, repr(SessionJar(session_file))):
        assert cookie not in text and PASSWORD not in text
    session_file.chmod(0o644)
    with pytest.raises(SettingError, match="chmod 600"):
        _resource(legacy4d_server, session_file).source().count_rows(get_spec("erp_customer"))


def test_a_wrong_password_is_tried_once_and_the_corrected_one_reuses_its_session(
    legacy4d_seeded: dict, make_legacy4d_server: Callable[..., EmulatorServer], tmp_path: Path,
) -> None:
    """The refused login holds a license (default mode) in a session the jar keeps: the next runs do not try
    the same credentials again (test-connection may), and the corrected password logs in inside that session."""
    server = make_legacy4d_server(licenses=1)
    session_file = tmp_path / "session.json"
    wrong = _resource(server, session_file, password=PASSWORD + "-typo").source()
    for _ in range(3):
        with pytest.raises(Legacy4DAuthError, match="refused"):
            wrong.count_rows(get_spec("erp_customer"))
    assert len(_logins(server)) == 1
    checked = _resource(server, session_file, password=PASSWORD + "-typo").source()
    checked.retry_refused_login = True
    with pytest.raises(Legacy4DAuthError):
        checked.count_rows(get_spec("erp_customer"))
    assert len(_logins(server)) == 2
    assert _resource(server, session_file).source().count_rows(get_spec("erp_customer")) > 0
    stats = _stats(server)
    assert stats["sessions_opened"] == 1 and stats["max_concurrent_sessions"] == 1  # the only license


def test_force_login_mode_syncs_through_authentify(
    legacy4d_seeded: dict, make_legacy4d_server: Callable[..., EmulatorServer], app_db: sa.Engine, tmp_path: Path,
) -> None:
    server = make_legacy4d_server(force_login=True, licenses=1)
    resource = _resource(server, tmp_path / "session.json", auth_mode="authentify")
    for spec in SPECS:
        assert run_sync(spec, resource.source(), app_db, mode="full", max_rejected_share=0.5).status != "FAILED"
    logins = _logins(server)
    assert [r["path"] for r in logins] == ["/rest/$catalog/authentify"]
    assert _stats(server)["licenses_in_use"] == 1
    found = resource.source().test_connection(SPECS)
    assert found.startswith("force login (authentify); change tracking ready")


def test_a_directory_login_on_a_force_login_server_says_so(
    legacy4d_seeded: dict, make_legacy4d_server: Callable[..., EmulatorServer], tmp_path: Path,
) -> None:
    server = make_legacy4d_server(force_login=True)
    with pytest.raises(Legacy4DAuthError, match=r"force-login mode .* set LEGACY_API_AUTH=authentify"):
        _resource(server, tmp_path / "a.json").source().test_connection(SPECS)
    wrong = _resource(server, tmp_path / "b.json", auth_mode="authentify", password="nope").source()
    with pytest.raises(Legacy4DAuthError, match=r"authentify\(\) did not grant privileges.*returned Wrong password"):
        wrong.count_rows(get_spec("erp_customer"))
    plain = make_legacy4d_server()
    with pytest.raises(Legacy4DAuthError, match=r"no authentify\(\) function .* set LEGACY_API_AUTH=directory"):
        _resource(plain, tmp_path / "c.json", auth_mode="authentify").source().count_rows(get_spec("erp_customer"))
    assert _stats(server)["licenses_in_use"] == 0  # no privileges granted, no license taken


def test_a_session_cookie_that_would_not_come_back_fails_at_once(
    legacy4d_seeded: dict, make_legacy4d_server: Callable[..., EmulatorServer], tmp_path: Path,
) -> None:
    """A cookie domain that does not match LEGACY_API_HOST: requests drops the cookie, and every request would
    open one more session (license); the first exchange says so instead."""
    server = make_legacy4d_server(cookie_domain="erp4d.example.com")
    with pytest.raises(Legacy4DError, match=r"session cookie for another domain or path .* LEGACY_API_HOST"):
        _resource(server, tmp_path / "s.json").source().count_rows(get_spec("erp_customer"))
    assert _stats(server)["sessions_opened"] == 1


def test_test_connection_checks_change_tracking(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, app_db: sa.Engine, tmp_path: Path,
) -> None:
    source = _resource(legacy4d_server, tmp_path / "s.json").source()
    found = source.test_connection(SPECS)
    assert found.startswith("default mode, directory login; change tracking ready (global stamp ")
    assert "REST sessions open on the server: 1 (this deployment keeps one)" in found



def test_without_an_exposed_deleted_records_table_full_syncs_work_and_the_rest_says_why(
    legacy4d_seeded: dict, make_legacy4d_server: Callable[..., EmulatorServer], app_db: sa.Engine, tmp_path: Path,
) -> None:
    server = make_legacy4d_server(unexposed=("__DeletedRecords",))
    source = _resource(server, tmp_path / "s.json").source()
    with pytest.raises(SchemaDriftError, match="not ready: __DeletedRecords is not exposed"):
        source.test_connection(SPECS)
    spec = get_spec("erp_customer")
    assert run_sync(spec, source, app_db, mode="full", max_rejected_share=0.5).status != "FAILED"
    with pytest.raises(SchemaDriftError, match=r"__DeletedRecords table is not exposed to REST, .* run full syncs"):
        run_sync(spec, source, app_db, max_rejected_share=0.5)


def test_a_stamp_that_went_backwards_forces_a_full_sync_with_its_reason_and_an_alert(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore, app_db: sa.Engine,
    tmp_path: Path,
) -> None:
    spec = get_spec("erp_customer")
    resource = _resource(legacy4d_server, tmp_path / "s.json", overlap_stamps=0)
    _control(legacy4d_server, "data_file", {"action": "backup"})
    run_sync(spec, resource.source(), app_db, mode="full", max_rejected_share=0.5)
    legacy4d_store.update("Customers", 1, {"CreditLimit": 10.0})
    legacy4d_store.delete("Customers", [2])
    run_sync(spec, resource.source(), app_db, max_rejected_share=0.5)
    _control(legacy4d_server, "data_file", {"action": "restore"})  # stamp back, customer 2 back, 1 unedited
    report = run_sync(spec, resource.source(), app_db, max_rejected_share=0.5)
    assert report.mode == "full" and report.status != "FAILED"
    with app_db.connect() as connection:
        run = connection.execute(sa.text("select mode, error_message from sync_run order by id desc limit 1")).one()
        alert = connection.execute(sa.text("select kind, entity, message from sync_alert")).one()
        live = connection.execute(sa.text(
            "select count(*) from erp_customer where legacy_id = 2 and deleted_at is null")).scalar_one()
    assert run.mode == "full" and run.error_message.startswith("full sync forced: erp_customer: 4D's global stamp")
    assert (alert.kind, alert.entity) == ("full_sync_forced", "erp_customer") and "restored" in alert.message
    assert live == 1
    assert report.watermark_after == {"global_stamp": legacy4d_store.global_stamp()}


def test_the_change_sensor_sends_one_request_per_quiet_tick(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore, tmp_path: Path,
) -> None:
    source = _resource(legacy4d_server, tmp_path / "s.json").source()
    baseline = source.change_markers(SPECS, {})
    requests.delete(f"{legacy4d_server.base_url}/_emulator/stats", timeout=10)
    assert source.change_markers(SPECS, baseline) == baseline
    assert _stats(legacy4d_server)["requests_served"] == 1
    legacy4d_store.update("Orders", 3, {"Status": "CANCELLED"})
    legacy4d_store.delete("Inventory", [4])
    moved = source.change_markers(SPECS, baseline)
    changed = sorted(e for e in moved if not e.startswith("__") and moved[e] != baseline[e])
    assert changed == ["erp_inventory", "erp_order"]
    assert int(moved[DATASTORE_MARKER]) == legacy4d_store.global_stamp()
    _control(legacy4d_server, "global_stamp", {"value": 2})
    reset = source.change_markers(SPECS, moved)
    assert all(reset[spec.entity].startswith("reset@") for spec in SPECS)


def _tick(instance: dg.DagsterInstance, resource: Legacy4DResource, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"legacy_4d": resource},
                                      definitions=defs)
    return change_sensors["legacy_4d"].evaluate_tick(context)


def test_a_simulated_day_holds_one_license_and_opens_one_session_per_session_loss(
    make_legacy4d_server: Callable[..., EmulatorServer], legacy4d_store: LegacyStore, app_db: sa.Engine,
    tmp_path: Path, record_property: Callable[[str, object], None],
) -> None:
    """24 h of operation on the emulator's clock (4D's 60-minute inactivity timeout): the change sensor every
    60 s, the daily schedule at 02:00, ERP users editing every 20 minutes (each edit requested and synced by the
    sensor), the session dropped at 06:00, the server restarted at 12:00, a wrong password from 16:00 corrected
    at 16:30, and a quiet night in which the session outlives nothing. Figure: sessions opened, most licenses
    held at once, requests per quiet tick."""
    seed_store(legacy4d_store.url, products=60, seed=3, bad_share=0.0)
    server = make_legacy4d_server(licenses=3)
    session_file = tmp_path / "session.json"
    good = _resource(server, session_file)
    typo = _resource(server, session_file, password=PASSWORD + "-typo")
    instance = dg.DagsterInstance.ephemeral()
    cursor: str | None = None
    runs: Counter[str] = Counter()
    tick_requests: list[int] = []
    refused_ticks = 0
    losses = 0
    for spec in SPECS:  # the deployment's first load, the evening before
        run_sync(spec, good.source(), app_db, mode="full", max_rejected_share=0.5)
    for minute in range(24 * 60):
        if minute == 6 * 60:
            RawRest(server.base_url).fault("drop_session", path_contains="/rest/")
            losses += 1
        if minute == 12 * 60:
            _control(server, "restart")
            losses += 1
        if minute % 20 == 7:
            legacy4d_store.update("Orders", 1 + minute % 50, {"TotalAmount": float(minute)})
        resource = typo if 16 * 60 <= minute < 16 * 60 + 30 else good
        sampled = 3 * 60 <= minute < 4 * 60  # per-tick request counts, over one night hour
        before = _stats(server)["requests_served"] if sampled else 0
        try:
            result = _tick(instance, resource, cursor)
        except Legacy4DAuthError:
            refused_ticks += 1
        else:
            cursor = result.cursor
            for request in result.run_requests:
                entity = request.tags["erp/entity"]
                runs[entity] += 1
                run_sync(get_spec(entity), resource.source(), app_db, max_rejected_share=0.5)
            if sampled and not result.run_requests:
                tick_requests.append(_stats(server)["requests_served"] - before)  # control calls are not counted
        if minute == 2 * 60:
            for spec in SPECS:
                run_sync(spec, good.source(), app_db, max_rejected_share=0.5)
        _control(server, "clock", {"advance": 60})
    stats = _stats(server)
    figure = {"sessions_opened": stats["sessions_opened"], "session_losses": losses,
              "max_licenses_at_once": stats["max_concurrent_sessions"], "sensor_ticks": 24 * 60,
              "refused_ticks": refused_ticks, "logins": len(_logins(server)), "runs": sum(runs.values()),
              "requests": stats["requests_served"],
              "requests_per_quiet_tick": Counter(tick_requests).most_common(1)[0][0],
              "most_requests_in_a_quiet_tick": max(tick_requests)}
    record_property("simulated_day", json.dumps(figure))
    print("simulated day:", json.dumps(figure))
    assert stats["sessions_opened"] == 1 + losses  # at most one session per server-side session loss
    assert stats["max_concurrent_sessions"] == 1
    assert figure["requests_per_quiet_tick"] == figure["most_requests_in_a_quiet_tick"] == 1
    assert refused_ticks == 30 and runs["erp_order"] >= 60
    assert figure["logins"] == 1 + losses + 2  # first, after each loss, the refused typo, its correction
    assert os.stat(session_file).st_mode & 0o077 == 0
