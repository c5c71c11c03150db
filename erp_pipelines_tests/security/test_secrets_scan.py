"""No password anywhere, after a real Dagster run with failures.

An operator's run, end to end: the 4D emulator started as its own process (secrets in its environment), the
CLI syncing every table through a PostgreSQL-backed Dagster instance with a wrong AS400 password (the AS400
assets fail), a 402 from the emulator on a reconciliation check, a 402 in the middle of a sync, the
freshness and change sensors ticking, then `status`, `errors` and `test-connection` with bad passwords.
Then every surface is scanned for every password in every form it can take (raw, URL-encoded, JSON-escaped,
ODBC-braced): CLI output, the sync log files, everything under DAGSTER_HOME, every row of the Dagster
storage database (event log, runs with tags and config, snapshots decompressed), every row of the
application database (sync_run, sync_error, sync_alert, ...), the emulator's output and request log, the
command lines of the processes started, and exception messages, reprs and chained causes.

The passwords are generated per run and hold `&`, `%`, `;`, braces, `/`, a space and non-ASCII, so a
match means a leak and their encoded forms differ from the raw ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef
from sqlalchemy.engine import make_url

from erp_pipelines.catalog import CATALOG, get_spec
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.resources import AppDatabaseResource
from erp_pipelines.sensors import change_sensors, freshness_sensor
from erp_pipelines.sources.as400 import sql
from erp_pipelines.sources.as400.adapter import As400Extraction, As400Source
from erp_pipelines.sources.as400.connection import As400AuthenticationError, As400ConfigError
from erp_pipelines.sources.as400.resource import As400Resource, as400_resource
from erp_pipelines.sources.legacy_4d.client import Legacy4DClient
from erp_pipelines.sources.legacy_4d.errors import Legacy4DAuthError, Legacy4DLicenseError
from erp_pipelines.sources.legacy_4d.resource import Legacy4DResource, legacy_4d_resource
from erp_pipelines_tests.support.legacy_4d import RawRest
from erp_pipelines_tests.support.sandbox import operator_env
from erp_pipelines_tests.support.security import leaked, request_log
from erp_sandbox.legacy_4d.seed import seed_store
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

TOKEN = secrets.token_hex(6)
WRONG_AS400_PASSWORD = f"As4·{TOKEN}&%41;w{{rd}}=/ é"
LEGACY_USER = "sync_scan"
LEGACY_PASSWORD = f"4D·{TOKEN}&%2F:@/ é;{{x}}"
WRONG_LEGACY_PASSWORD = f"4Dbad·{TOKEN}&%2F é"


def _password(url: str) -> str:
    return make_url(url).password or ""


@pytest.fixture
def all_secrets(legacy4d_store: LegacyStore, app_url: str) -> dict[str, str]:
    """Every password of the sandbox and of this run, by name."""
    return {
        "AS400_PASSWORD": os.environ["AS400_PASSWORD"],
        "wrong AS400_PASSWORD": WRONG_AS400_PASSWORD,
        "LEGACY_API_PASSWORD": LEGACY_PASSWORD,
        "wrong LEGACY_API_PASSWORD": WRONG_LEGACY_PASSWORD,
        "APP_DATABASE_URL password": _password(app_url),
        "DAGSTER_PG_PASSWORD": os.environ["DAGSTER_PG_PASSWORD"],
        "LEGACY4D_STORE_URL password": _password(legacy4d_store.url),
        "AS400 owner password": _password(os.environ["TEST_AS400_OWNER_URL"]),
    }


def _cmdlines(pid: int) -> list[str]:
    """The command lines of a process and all its descendants, as the process list shows them."""
    lines: list[str] = []
    with_children = [pid]
    while with_children:
        current = with_children.pop()
        proc = Path(f"/proc/{current}")
        try:
            lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
            for task in (proc / "task").iterdir():
                with_children += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return lines


@pytest.fixture
def emulator(legacy4d_store: LegacyStore, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """The 4D emulator as scripts/demo starts it: its own process, the store URL and password in its
    environment, not on its command line. Yields its base URL, the process and its output file."""
    seed_store(legacy4d_store.url, products=40, seed=11, bad_share=0.05)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready, output = tmp_path / "emulator.ready", tmp_path / "emulator.out"
    env = {**os.environ, "LEGACY4D_STORE_URL": legacy4d_store.url, "LEGACY_API_USERNAME": LEGACY_USER,
           "LEGACY_API_PASSWORD": LEGACY_PASSWORD, "LEGACY_API_PORT": str(port)}
    with output.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "erp_sandbox.legacy_4d.server", "--ready-file", str(ready),
                                    "--log-requests"], env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.1)
        yield ready.read_text().strip(), process, output
    finally:
        process.terminate()
        process.wait(timeout=20)


def _cli(env: dict[str, str], cwd: Path, *args: str, cmdlines: list[str]) -> str:
    """Runs the operator CLI; returns its output and records its process tree's command lines."""
    process = subprocess.Popen([sys.executable, "-m", "erp_pipelines.commands", *args], env=env, cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    cmdlines += _cmdlines(process.pid)
    stdout, stderr = process.communicate(timeout=240)
    return f"$ erp-sync {' '.join(args)} (exit {process.returncode})\n{stdout}\n{stderr}"


def _text(value: object) -> str:
    if isinstance(value, memoryview | bytes):
        data = bytes(value)
        with contextlib.suppress(zlib.error):
            data = zlib.decompress(data)
        return data.decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _dump_database(dsn: str) -> str:
    """Every row of every table of a database as text, compressed values (Dagster snapshots) inflated."""
    parts: list[str] = []
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("select table_schema, table_name from information_schema.tables "
                       "where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')")
        for schema, table in cursor.fetchall():
            cursor.execute(f'select * from "{schema}"."{table}"')
            parts.extend(_text(value) for row in cursor.fetchall() for value in row)
    return "\n".join(parts)


def _files(folder: Path) -> str:
    return "\n".join(path.read_text("utf-8", "replace") for path in sorted(folder.rglob("*")) if path.is_file())


def _dagster_dsn(env: dict[str, str]) -> str:
    return (f"host={env['DAGSTER_PG_HOST']} port={env['DAGSTER_PG_PORT']} dbname={env['DAGSTER_PG_DB']} "
            f"user={env['DAGSTER_PG_USER']} password={env['DAGSTER_PG_PASSWORD']}")


def test_no_password_anywhere_after_a_failing_run(
    emulator: tuple[str, subprocess.Popen, Path], all_secrets: dict[str, str], app_db: sa.Engine, app_url: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, emulator_process, emulator_output = emulator
    port = int(base_url.rsplit(":", 1)[1])
    env = {**operator_env(tmp_path, app_url, port), "LEGACY_API_USERNAME": LEGACY_USER,
           "LEGACY_API_PASSWORD": LEGACY_PASSWORD, "AS400_PASSWORD": WRONG_AS400_PASSWORD}
    workdir = tmp_path / "cwd"  # Dagster reads `.env` from the working directory: none here
    workdir.mkdir()
    monkeypatch.setenv("DAGSTER_PG_DB", env["DAGSTER_PG_DB"])
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"])) as instance:
        instance.wipe()  # the storage is shared with earlier tests; freshness must judge this run's history only
    control = RawRest(base_url)
    # only the reconciliation check reads the key alone: the customers load, their check runs out of licenses
    control.fault("exhaust_licenses", count=-1, path_contains="/rest/Customers/CustomerID/?$orderby")
    cmdlines = _cmdlines(emulator_process.pid)
    outputs = [_cli(env, workdir, "sync", cmdlines=cmdlines)]

    monkeypatch.setenv("DAGSTER_PG_DB", env["DAGSTER_PG_DB"])
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"])) as instance:
        (record,) = instance.get_run_records(dg.RunsFilter(tags={"erp/trigger": "cli"}), limit=1)
        run = record.dagster_run
        events = instance.all_logs(run.run_id)
        failures = "\n".join(e.dagster_event.step_failure_data.error.to_string() for e in events
                             if e.dagster_event and e.dagster_event.is_step_failure)
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert "cannot connect to the AS400" in failures and "password authentication failed" in failures
        assert Legacy4DLicenseError.__name__ in failures and "licenses are exhausted" in failures
        assert any(e.dagster_event and e.dagster_event.is_step_success for e in events)
        api_view = "\n".join([*(e.message or "" for e in events), failures, json.dumps(run.tags),
                              json.dumps(run.run_config, default=str)])
        with app_db.connect() as connection:  # a 402 in the middle of a sync, recorded in sync_run
            connection.execute(sa.text("delete from sync_watermark where entity = 'erp_order'"))
            connection.commit()
        control.fault("exhaust_licenses", count=1, path_contains="/rest/Orders/OrderID,")
        with pytest.raises(Legacy4DLicenseError):
            run_sync(get_spec("erp_order"), legacy_4d_resource(env, secrets_from_env_var=False).source(), app_db)
        sensor_resources = {"app_db": AppDatabaseResource(url=app_url),
                            "as400": as400_resource({**env, "AS400_PASSWORD": WRONG_AS400_PASSWORD},
                                                    secrets_from_env_var=False)}
        from erp_pipelines.definitions import defs

        context = dg.build_sensor_context(instance=instance, resources=sensor_resources, definitions=defs)
        assert freshness_sensor.evaluate_tick(context).run_requests
        with pytest.raises(Exception, match="password authentication failed") as sensor_error:
            change_sensors["as400"].evaluate_tick(dg.build_sensor_context(instance=instance, resources=sensor_resources,
                                                                      definitions=defs))
    with app_db.connect() as connection:
        statuses = dict(connection.execute(sa.text(
            "select entity, string_agg(status, ',') from sync_run group by entity")).all())
        alerts = connection.execute(sa.text("select count(*) from sync_alert")).scalar_one()
    assert "FAILED" in statuses["product"] and "FAILED" in statuses["erp_order"] and alerts > 0
    assert statuses["erp_customer"] == "COMPLETED" and "PARTIALLY_COMPLETED" in statuses["erp_order"]

    outputs.append(_cli(env, workdir, "status", cmdlines=cmdlines))
    outputs.append(_cli(env, workdir, "errors", "--entity", "erp_product", cmdlines=cmdlines))
    wrong = {**env, "LEGACY_API_PASSWORD": WRONG_LEGACY_PASSWORD}
    outputs.append(_cli(wrong, workdir, "test-connection", cmdlines=cmdlines))
    assert "as400: FAILED" in outputs[-1] and "legacy_4d: FAILED" in outputs[-1]

    surfaces = {
        "CLI output": "\n".join(outputs),
        "sync log files": _files(Path(env["ERP_LOG_DIR"])),
        "DAGSTER_HOME": _files(Path(env["DAGSTER_HOME"])),
        "Dagster storage database": _dump_database(_dagster_dsn(env)),
        "Dagster events, tags and run config": api_view,
        "application database": _dump_database(make_url(app_url).set(drivername="postgresql").render_as_string(
            hide_password=False)),
        "sensor error": f"{sensor_error.value!r} {sensor_error.value.__cause__!r} {sensor_error.value.__context__!r}",
        "emulator output": emulator_output.read_text(),
        "emulator request log": json.dumps(request_log(base_url), ensure_ascii=False),
        "process command lines": "\n".join(cmdlines),
    }
    expected = {  # each surface holds what the run put there, so a clean scan means something
        "CLI output": "as400: FAILED", "sync log files": "password authentication failed",
        "DAGSTER_HOME": "postgres", "Dagster storage database": "STEP_FAILURE",
        "Dagster events, tags and run config": "erp/trigger", "application database": "licenses are exhausted",
        "sensor error": "password authentication failed", "emulator output": "GET /rest/Customers",
        "emulator request log": "$directory/login", "process command lines": "erp_sandbox.legacy_4d.server",
    }
    assert {name: marker for name, marker in expected.items() if marker not in surfaces[name]} == {}
    assert "erp_pipelines.commands sync" in surfaces["process command lines"]
    found = {surface: leaked(text, all_secrets) for surface, text in surfaces.items()}
    assert {surface: names for surface, names in found.items() if names} == {}


def test_exceptions_and_reprs_carry_no_password(as400: As400Resource, all_secrets: dict[str, str],
                                                 make_legacy4d_server: object) -> None:
    """Errors of every kind, with their causes and contexts, and the resources' and settings' reprs."""
    server = make_legacy4d_server(username=LEGACY_USER, password=LEGACY_PASSWORD, licenses=2)  # type: ignore[operator]
    texts: list[str] = []

    def collect(error: BaseException) -> None:
        texts.extend([str(error), repr(error), repr(error.__cause__), repr(error.__context__),
                      *getattr(error, "messages", [])])

    wrong = as400.replaced(password=WRONG_AS400_PASSWORD)
    statement = sql.count_rows(sql.QualifiedTable("PRODUCTLIB", "PRODUCTS"))
    for attempt in (As400Source(wrong).test_connection, lambda: As400Source(wrong).count_rows(get_spec("product")),
                    lambda: list(As400Extraction(wrong, get_spec("product"), [statement]).batches())):
        with pytest.raises(As400AuthenticationError) as refused:
            attempt()
        collect(refused.value)
    for bad in (f"{WRONG_AS400_PASSWORD}\r\n", f"{WRONG_AS400_PASSWORD}\x00"):
        with pytest.raises(As400ConfigError) as config:
            as400.replaced(password=bad)
        collect(config.value)
    with pytest.raises(Legacy4DAuthError) as denied:
        Legacy4DClient(server.host, server.port, LEGACY_USER, WRONG_LEGACY_PASSWORD, max_retries=0).connect()
    collect(denied.value)
    with pytest.raises(ValueError, match="LEGACY_API_PASSWORD") as header:
        Legacy4DClient(server.host, server.port, LEGACY_USER, f"{LEGACY_PASSWORD}\r\nX-Injected: 1")
    collect(header.value)
    holder = Legacy4DClient(server.host, server.port, LEGACY_USER, LEGACY_PASSWORD, max_retries=0)
    holder.connect()
    with pytest.raises(Legacy4DLicenseError) as exhausted:
        Legacy4DClient(server.host, server.port, LEGACY_USER, LEGACY_PASSWORD, max_retries=0).connect()
    collect(exhausted.value)
    resources = [as400_resource({**os.environ, "AS400_PASSWORD": WRONG_AS400_PASSWORD}, secrets_from_env_var=False),
                 Legacy4DResource(host=server.host, port=server.port, username=LEGACY_USER, password=LEGACY_PASSWORD),
                 AppDatabaseResource(url=os.environ["TEST_APP_DATABASE_URL"]), as400]
    texts += [repr(resource) for resource in resources]
    texts += [repr(wrong), wrong.describe(), wrong.connection_string(), repr(holder), repr(CATALOG[0])]
    holder.close()
    assert all(texts)
    assert {text: leaked(text, all_secrets) for text in texts if leaked(text, all_secrets)} == {}
