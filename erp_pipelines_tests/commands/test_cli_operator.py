"""What an operator sees from `erp-sync` (issue 17, items 4 and 5): progress while a sync runs, on a terminal
and in a log; the seeds' entity names as aliases; an unconfigured source skipped, saying so; and every expected
failure as one paragraph without a stack trace. Real processes against the real stand-ins."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import requests
import sqlalchemy as sa

from erp_pipelines_tests.commands.test_cli import SECRETS, _instance, erp_sync
from erp_pipelines_tests.support.legacy_4d import PASSWORD, RawRest
from erp_pipelines_tests.support.sandbox import ROOT, operator_env
from erp_sandbox.as400.seed import SeedManifest
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

PROGRESS_LINE = re.compile(
    r"(?P<entity>\w+) \[(?P<mode>\w+)\]: (?P<rows>[\d,]+) rows read in (?P<batches>[\d,]+) batch\(es\), "
    r"[\d,]+ rows/s, \d+:\d\d:\d\d elapsed"
)
STACK_TRACE_MARKS = ("Traceback", "Stack Trace", 'File "')


@pytest.fixture
def shell(tmp_path: Path, app_url: str, legacy4d_server: EmulatorServer) -> dict[str, str]:
    """An operator's shell: the test databases, the 4D emulator, a fresh DAGSTER_HOME; small AS400 batches so
    that a sync of a few dozen rows takes several batches."""
    return {**operator_env(tmp_path, app_url, legacy4d_server.port), "AS400_BATCH_ROWS": "10"}


def _no_stack_trace(text: str) -> None:
    for mark in STACK_TRACE_MARKS:
        assert mark not in text, text


def _run_id(result: subprocess.CompletedProcess[str]) -> str:
    return re.search(r"^dagster run ([0-9a-f-]+): ", result.stdout, re.MULTILINE)[1]


def _rows_shown(text: str, entity: str) -> list[int]:
    return [int(match["rows"].replace(",", "")) for match in PROGRESS_LINE.finditer(text)
            if match["entity"] == entity]


def test_progress_is_printed_as_plain_lines_when_stderr_is_not_a_terminal_and_logged_in_dagster(
    seed: Callable[..., SeedManifest], shell: dict[str, str], app_db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = seed(products=80, bad_share=0.0)
    env = {**shell, "ERP_PROGRESS_INTERVAL": "0.001", "ERP_PROGRESS_EVERY_BATCHES": "2"}
    synced = erp_sync(env, "sync", "--entity", "product")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "\r" not in synced.stderr and "\x1b[" not in synced.stderr
    shown = _rows_shown(synced.stderr, "product")
    total = manifest.rows["PRODUCTLIB.PRODUCTS"]
    assert len(shown) == -(-total // 10) and shown == sorted(shown) and shown[-1] == total, synced.stderr
    assert all(PROGRESS_LINE.fullmatch(line) for line in synced.stderr.splitlines() if "rows read" in line)

    monkeypatch.setenv("DAGSTER_PG_DB", shell["DAGSTER_PG_DB"])
    with _instance(shell) as instance:
        messages = [entry.user_message for entry in instance.all_logs(_run_id(synced))
                    if entry.user_message.startswith("progress: ")]
    batches = [int(PROGRESS_LINE.search(message)["batches"]) for message in messages]
    assert batches == list(range(2, total // 10 + 1, 2)), messages  # every 2nd batch, as configured


def test_progress_is_one_refreshing_line_per_table_on_a_terminal(
    seed: Callable[..., SeedManifest], shell: dict[str, str], app_db: sa.Engine
) -> None:
    seed(products=80, bad_share=0.0)
    controller, terminal = pty.openpty()
    started = subprocess.Popen(
        [sys.executable, "-m", "erp_pipelines.commands", "sync", "--entity", "product", "--entity", "stock"],
        env=shell, cwd=ROOT, stdout=subprocess.PIPE, stderr=terminal, text=True,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal's other end is closed: the process has exited
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    stdout, _ = started.communicate(timeout=300)
    assert started.returncode == 0, stdout + shown.decode()
    text = shown.decode()
    for name in SECRETS:
        assert not os.environ.get(name) or os.environ[name] not in text + stdout
    assert "\r\x1b[K" in text  # redrawn in place
    lines = text.replace("\r\n", "\n").split("\n")
    finished = [line.rsplit("\r\x1b[K", 1)[-1] for line in lines if "rows read" in line]
    assert [PROGRESS_LINE.fullmatch(line)["entity"] for line in finished] == ["product", "product_stock"], text
    assert "app/product: COMPLETED [full]" in stdout and "app/product_stock: COMPLETED [full]" in stdout


def test_the_seeds_entity_names_work_as_aliases(
    seed: Callable[..., SeedManifest], shell: dict[str, str], app_db: sa.Engine, legacy4d_seeded: dict
) -> None:
    seed(products=40, bad_share=0.4)
    synced = erp_sync(shell, "sync", "--entity", "product", "--entity", "stock", "--entity", "pricing",
                      "--entity", "measurements", "--entity", "Customers")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    for table in ("product", "product_stock", "product_pricing", "product_measurement", "erp_customer"):
        assert re.search(rf"^app/{table}: \w+ \[full\]", synced.stdout, re.MULTILINE), synced.stdout
    # over its rejected share: an expected outcome too, said in the check's one paragraph
    (over,) = [line for line in synced.stdout.splitlines() if "check app/product rejected_share_within_limit" in line]
    assert "FAILED (WARN): product: " in over and "every valid row was loaded" in over
    _no_stack_trace(synced.stdout + synced.stderr)
    twice = erp_sync(shell, "sync", "--entity", "stock", "--entity", "product_stock", "--entity", "STOCK")
    assert twice.returncode == 0 and twice.stdout.count("app/product_stock:") == 1, twice.stdout + twice.stderr
    errors = erp_sync(shell, "errors", "--entity", "stock")
    assert errors.returncode == 0 and re.search(r"^[1-9]\d* record\(s\)$", errors.stdout, re.MULTILINE)
    unknown = erp_sync(shell, "sync", "--entity", "stok")
    assert unknown.returncode == 2
    assert "product_stock (or stock, ProductStock)" in unknown.stderr
    assert "erp_customer (or Customers)" in unknown.stderr


def test_a_source_that_is_not_configured_is_skipped_saying_so(
    seed: Callable[..., SeedManifest], shell: dict[str, str], app_db: sa.Engine
) -> None:
    seed(products=30, bad_share=0.2)
    without_4d = {name: value for name, value in shell.items() if name != "LEGACY_API_HOST"}
    started = time.monotonic()
    synced = erp_sync(without_4d, "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "skipped legacy_4d (4D legacy ERP): not configured (LEGACY_API_HOST is not set); not synced: " \
           "erp_category, erp_product" in synced.stdout
    assert "app/product_stock: PARTIALLY_COMPLETED [full]" in synced.stdout and "app/erp_" not in synced.stdout
    assert time.monotonic() - started < 120

    named = erp_sync(without_4d, "sync", "--entity", "Products")
    assert named.returncode == 2
    assert "legacy_4d (4D legacy ERP) is not configured: LEGACY_API_HOST is not set" in named.stderr
    _no_stack_trace(named.stderr)

    without_whitelist = {**shell, "AS400_ALLOWED_TABLES": ""}
    replayed = erp_sync(without_whitelist, "replay")  # the AS400 tables hold open quarantined records
    assert replayed.returncode == 2, replayed.stdout + replayed.stderr
    assert "skipped as400 (IBM i (AS400) legacy system): not configured (AS400_ALLOWED_TABLES is empty (no table " \
           "may be read)); not synced: product, product_measurement, product_pricing, product_stock" in replayed.stdout
    assert "nothing to run: the source systems of these tables are not configured" in replayed.stderr


def _failed_paragraph(result: subprocess.CompletedProcess[str], table: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    _no_stack_trace(result.stdout + result.stderr)
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("FAILED ")]
    assert line.startswith(f"FAILED app/{table}: "), result.stderr
    assert result.stderr.strip().splitlines()[-1] == line  # nothing but progress lines before it
    return line


@pytest.mark.parametrize(("case", "table", "expected"), [
    ("as400_login_refused", "product", "cannot connect to the AS400"),
    ("legacy_4d_login_refused", "erp_customer", "4D login refused for user 'sync_user'"),
    ("schema_drift", "product_stock", "schema drift in INVENTORYLIB.INVENTORY: column(s) NEWCOL at the source"),
])
def test_an_expected_failure_is_one_paragraph_without_a_stack_trace(
    seed: Callable[..., SeedManifest], shell: dict[str, str], app_db: sa.Engine,
    as400_source_sql: Callable[[str], None], legacy4d_seeded: dict, case: str, table: str, expected: str,
) -> None:
    seed(products=30, bad_share=0.0)
    env = dict(shell)
    if case == "as400_login_refused":
        env["AS400_PASSWORD"] = "not-the-password-77"
    elif case == "legacy_4d_login_refused":
        env["LEGACY_API_PASSWORD"] = "not-the-password-78"
    else:
        assert erp_sync(env, "sync", "--entity", "product").returncode == 0
        as400_source_sql('alter table "INVENTORYLIB"."INVENTORY" add column "NEWCOL" char(3)')
    try:
        failed = erp_sync(env, "sync", "--entity", table)
    finally:
        if case == "schema_drift":  # the seed refills the stand-in's tables but keeps their layout
            as400_source_sql('alter table "INVENTORYLIB"."INVENTORY" drop column "NEWCOL"')
    line = _failed_paragraph(failed, table)
    assert expected in line, line
    assert "not-the-password" not in failed.stdout + failed.stderr


def test_licenses_exhausted_is_said_at_once_in_one_paragraph(
    make_legacy4d_server: Callable[..., EmulatorServer], legacy4d_store: LegacyStore, tmp_path: Path, app_url: str,
    app_db: sa.Engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = make_legacy4d_server(licenses=2)
    users = [RawRest(server.base_url) for _ in range(2)]
    assert all(user.login().status_code == 200 for user in users)  # the ERP's own users hold every license
    env = operator_env(tmp_path, app_url, server.port)
    started = time.monotonic()
    failed = erp_sync(env, "sync", "--entity", "Customers")
    line = _failed_paragraph(failed, "erp_customer")
    assert "4D REST licenses are exhausted" in line and "Retry the run later." in line, line
    assert time.monotonic() - started < 60  # not retried for minutes: the operator decides
    assert requests.get(f"{server.base_url}/_emulator/stats", timeout=10).json()["requests_by_status"]["402"] == 1
    assert PASSWORD not in failed.stderr
    monkeypatch.setenv("DAGSTER_PG_DB", env["DAGSTER_PG_DB"])
    with _instance(env) as instance:
        run = instance.get_run_by_id(_run_id(failed))
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE and run.tags["erp/retry"] == "never"
