"""The CLI end to end, as an operator runs it: real processes, a PostgreSQL-backed Dagster instance."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef

from erp_pipelines.sources.as400.adapter import to_cyymmdd_hhmmss
from erp_pipelines_tests.support.django_app import DjangoApp
from erp_pipelines_tests.support.legacy_4d import PASSWORD
from erp_pipelines_tests.support.sandbox import ROOT, operator_env
from erp_sandbox.as400.seed import SeedManifest
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

SECRETS = ("AS400_PASSWORD", "DAGSTER_PG_PASSWORD", "ERP_APP_PASSWORD")


@pytest.fixture
def cli_env(tmp_path: Path, app_url: str, legacy4d_server: EmulatorServer) -> dict[str, str]:
    """The environment of an operator's shell, pointed at the test databases and a fresh DAGSTER_HOME."""
    return operator_env(tmp_path, app_url, legacy4d_server.port)


def erp_sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "erp_pipelines.commands", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    for name in SECRETS:
        value = env.get(name, "")
        assert not value or value not in result.stdout + result.stderr, f"{name} leaked into CLI output"
    assert PASSWORD not in result.stdout + result.stderr
    return result


def _instance(env: dict[str, str]) -> dg.DagsterInstance:
    os.environ.update({k: env[k] for k in ("DAGSTER_PG_DB",)})
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"]))


def test_a_table_over_its_rejected_share_loads_its_valid_rows_and_downstream_still_runs(
    seed: Callable[..., SeedManifest], cli_env: dict[str, str], app_db: sa.Engine
) -> None:
    manifest = seed(products=60, bad_share=0.4)
    synced = erp_sync(cli_env, "sync", "--entity", "product", "--entity", "product_stock")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "app/product: PARTIALLY_COMPLETED [full]" in synced.stdout
    assert "app/product_stock: PARTIALLY_COMPLETED [full]" in synced.stdout  # downstream ran
    assert "check app/product rejected_share_within_limit: FAILED (WARN)" in synced.stdout
    assert "above the allowed 10.0%; every valid row was loaded" in synced.stdout
    assert "check app/product reconciles_with_source: passed" in synced.stdout
    with app_db.connect() as connection:
        live = connection.execute(sa.text("select count(*) from product where deleted_at is null")).scalar_one()
    assert live == manifest.rows["PRODUCTLIB.PRODUCTS"] - len(manifest.bad_keys("PRODUCTLIB.PRODUCTS"))


def test_sync_status_errors_and_replay(
    seed: Callable[..., SeedManifest],
    cli_env: dict[str, str],
    app_db: sa.Engine,
    as400_source_sql: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest = seed(products=80, bad_share=0.04)
    synced = erp_sync(cli_env, "sync", "--entity", "product", "--entity", "product_stock")
    assert synced.returncode == 0, synced.stderr
    assert "app/product: PARTIALLY_COMPLETED [full]" in synced.stdout
    assert "app/product_stock: PARTIALLY_COMPLETED [full]" in synced.stdout

    status = erp_sync(cli_env, "status")
    assert status.returncode == 0
    product_line = next(line for line in status.stdout.splitlines() if line.startswith("product "))
    assert "PARTIALLY_COMPLETED" in product_line and "fresh" in product_line
    assert f"rejected={len(manifest.bad_keys('PRODUCTLIB.PRODUCTS'))}" in product_line
    never = next(line for line in status.stdout.splitlines() if line.startswith("erp_order "))
    assert "never" in never

    (blank,) = manifest.bad["PRODUCTLIB.PRODUCTS"]["blank_description"][:1]
    errors = erp_sync(cli_env, "errors", "--entity", "product")
    assert errors.returncode == 0 and f"'{blank[0]}' (sync_run" in errors.stdout and "is blank" not in errors.stdout
    assert "not_blank" in errors.stdout

    as400_source_sql(f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'REPAIRED' where "ITEMNO" = '{blank[0]}'""")
    replayed = erp_sync(cli_env, "replay", "--entity", "product")
    assert replayed.returncode == 0, replayed.stderr
    assert "[replay]" in replayed.stdout and "created=1" in replayed.stdout
    after = erp_sync(cli_env, "errors", "--entity", "product")
    assert blank[0] not in after.stdout
    with app_db.connect() as connection:
        assert connection.execute(
            sa.text("select description from product where item_number = :k"), {"k": blank[0]}
        ).scalar_one() == "REPAIRED"

    monkeypatch.setenv("DAGSTER_PG_DB", cli_env["DAGSTER_PG_DB"])
    with _instance(cli_env) as instance:
        runs = instance.get_run_records(dg.RunsFilter(tags={"erp/trigger": "cli"}))
        assert len(runs) >= 1
        assert instance.get_run_records(dg.RunsFilter(tags={"erp/trigger": "cli_replay"}))
    log = (Path(cli_env["ERP_LOG_DIR"]) / "as400_sync.log").read_text()
    assert "product [full] PARTIALLY_COMPLETED" in log and "product [replay]" in log
    assert os.environ["AS400_PASSWORD"] not in log


def test_test_connection_reports_each_source_plainly(cli_env: dict[str, str]) -> None:
    ok = erp_sync(cli_env, "test-connection")
    assert ok.returncode == 0, ok.stderr
    assert "as400: OK" in ok.stdout and "legacy_4d: OK" in ok.stdout
    for line in ("driver psqlodbcw.so", "server PostgreSQL", "isolation read committed", "text read as UTF8",
                 "TLS on (SSLmode=require", "product PRODUCTLIB.PRODUCTS: system name PRODUCTLIB/PRODUCTS; 1 member(s)",
                 "CCSID 37: ITEMNO, ITEMDESC, SKU, ITEMCLS, UOM, ITEMSTS",
                 "journaled to PRODUCTLIB/QSQJRN with JOURNAL_IMAGES *BOTH; changes and deletions read from the "
                 "journal",
                 "product_measurement PRODUCTLIB.MEASUREMENTS: system name PRODUCTLIB/MEASUREMEN",
                 "not journaled", "sensor stamp index: PRODUCTLIB.MEASUREMENTS_CHG (INDEX: CHGDAT,CHGTIM)"):
        assert line in ok.stdout, line
    wrong = {**cli_env, "AS400_PASSWORD": "not-the-password-42", "LEGACY_API_PASSWORD": "also-wrong-43"}
    failed = erp_sync(wrong, "test-connection")
    assert failed.returncode == 1
    assert "as400: FAILED" in failed.stderr and "legacy_4d: FAILED" in failed.stderr
    assert "not-the-password-42" not in failed.stderr and "also-wrong-43" not in failed.stderr
    only_4d = erp_sync(wrong, "test-connection", "--source", "legacy_4d")
    assert "as400" not in only_4d.stdout + only_4d.stderr


@pytest.mark.parametrize("args", [["sync", "--entity", "nope"], ["errors", "--entity", "nope"], ["frobnicate"]])
def test_bad_usage_exits_2_with_a_clear_message(cli_env: dict[str, str], args: list[str]) -> None:
    result = erp_sync(cli_env, *args)
    assert result.returncode == 2
    if "nope" in args:
        assert "unknown entity 'nope'; known entities: product" in result.stderr


def test_job_launch_is_run_by_the_daemon(
    seed: Callable[..., SeedManifest],
    cli_env: dict[str, str],
    app_db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    seed(products=40, bad_share=0.0)
    erp_sync(cli_env, "sync", "--entity", "product")
    # Dagster's CLIs load `.env` from their working directory over the environment; the sandbox's `.env`
    # names the demo's databases, so the test runs them from an empty directory.
    target = ["-m", "erp_pipelines.definitions"]
    bin_dir = Path(sys.executable).parent
    daemon = subprocess.Popen(
        [str(bin_dir / "dagster-daemon"), "run", *target], env=cli_env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        launched = subprocess.run(
            [str(bin_dir / "dagster"), "job", "launch", "-j", "as400_inventory_job", *target,
             "--tags", '{"erp/trigger": "test_launch"}'],
            env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        assert launched.returncode == 0, launched.stderr[-2000:]
        monkeypatch.setenv("DAGSTER_PG_DB", cli_env["DAGSTER_PG_DB"])
        with _instance(cli_env) as instance:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                records = instance.get_run_records(dg.RunsFilter(tags={"erp/trigger": "test_launch"}))
                assert records, launched.stdout[-3000:] + launched.stderr[-3000:]
                record = records[0]
                if record.dagster_run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):
                    break
                time.sleep(2)
            assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            run_id = record.dagster_run.run_id
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    with app_db.connect() as connection:
        entity = connection.execute(
            sa.text("select entity from sync_run where dagster_run_id = :id"), {"id": run_id}
        ).scalar_one()
    assert entity == "product_stock"


def test_into_the_application_test_connection_and_sync_stop_on_a_broken_mapping(
    cli_env: dict[str, str], django_app: DjangoApp
) -> None:
    env = {**cli_env, "ERP_TARGET": "application"}
    ok = erp_sync(env, "test-connection", "--source", "legacy_4d")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "application table products_product (erp_product): matches the mapping" in ok.stdout
    django_app.execute("alter table products_product rename column sku to stock_keeping_unit")
    try:
        drifted = erp_sync(env, "test-connection", "--source", "legacy_4d")
        synced = erp_sync(env, "sync", "--entity", "erp_product")
    finally:
        django_app.execute("alter table products_product rename column stock_keeping_unit to sku")
    assert drifted.returncode == 1
    assert "application table products_product (erp_product): DIFFERS: column sku (spec column sku) is missing" \
        in drifted.stderr
    assert synced.returncode != 0
    output = synced.stdout + synced.stderr
    assert "the application table public.products_product does not match the spec; nothing was written" in output
    assert "Traceback" not in output
    assert django_app.count("products_product") == 0


def _pricing_keys(owner_url: str, count: int) -> list[tuple[str, str]]:
    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        cursor.execute('select "ITEMNO", "PRCLST" from "PRODUCTLIB"."PRICING" order by 1, 2 limit %s', (count,))
        return [(item.strip(), price_list.strip()) for item, price_list in cursor]


def test_backfill_rereads_a_range_as_its_own_mode_and_keeps_the_watermark(
    seed: Callable[..., SeedManifest], cli_env: dict[str, str], app_db: sa.Engine,
    as400_source_sql: Callable[[str], None], as400_owner_url: str, legacy4d_seeded: dict,
    legacy4d_store: LegacyStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(products=40, warehouses=1, bad_share=0.0)
    loaded = erp_sync(cli_env, "sync", "--entity", "product", "--entity", "pricing", "--entity", "Customers")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    changed, outside = _pricing_keys(as400_owner_url, 2)
    now_date, now_time = to_cyymmdd_hhmmss(dt.datetime.now().replace(microsecond=0))
    as400_source_sql(f"""
        update "PRODUCTLIB"."PRICING" set "UNITPRC" = 321.5, "CHGDAT" = 1261105
            where "ITEMNO" = '{changed[0]}' and "PRCLST" = '{changed[1]}';
        update "PRODUCTLIB"."PRICING" set "UNITPRC" = 654.5, "CHGDAT" = 1261120
            where "ITEMNO" = '{outside[0]}' and "PRCLST" = '{outside[1]}';
        update "PRODUCTLIB"."PRICING" set "CHGDAT" = {now_date}, "CHGTIM" = {now_time}
            where ("ITEMNO", "PRCLST") in (select "ITEMNO", "PRCLST" from "PRODUCTLIB"."PRICING" order by 1, 2
                                           offset 5 limit 1);""")
    with app_db.connect() as connection:
        watermark = connection.execute(sa.text("select value from sync_watermark where entity = 'product_pricing'")
                                       ).scalar_one()

    backfilled = erp_sync(cli_env, "sync", "--entity", "pricing", "--since", "2026-11-01", "--until", "2026-11-15")
    assert backfilled.returncode == 0, backfilled.stdout + backfilled.stderr
    assert ("app/product_pricing: COMPLETED [backfill since 2026-11-01 until 2026-11-15] processed=1, created=0, "
            "updated=1, unchanged=0, deleted=0, rejected=0") in backfilled.stdout
    with app_db.connect() as connection:
        prices = dict(connection.execute(sa.text(
            "select item_number, unit_price from product_pricing where (item_number, price_list) in "
            "((:a, :b), (:c, :d))"), {"a": changed[0], "b": changed[1], "c": outside[0], "d": outside[1]}).all())
        run = connection.execute(sa.text(
            "select mode, dagster_run_id, watermark_after from sync_run where entity = 'product_pricing' "
            "order by id desc limit 1")).one()
        stored = connection.execute(sa.text("select value from sync_watermark where entity = 'product_pricing'")
                                    ).scalar_one()
    assert float(prices[changed[0]]) == 321.5 and float(prices[outside[0]]) != 654.5
    assert run.mode == "backfill" and run.watermark_after == watermark and stored == watermark

    stamp = str(legacy4d_store.global_stamp())  # the stamp the next save takes
    with app_db.connect() as connection:
        customer = connection.execute(sa.text("select min(legacy_id) from erp_customer")).scalar_one()
    legacy4d_store.update("Customers", customer, {"CustomerName": "Backfilled from the CLI"})
    four_d = erp_sync(cli_env, "sync", "--entity", "Customers", "--since", stamp)
    assert four_d.returncode == 0, four_d.stdout + four_d.stderr
    assert (f"app/erp_customer: COMPLETED [backfill since {stamp} until (open)] processed=1, created=0, updated=1"
            in four_d.stdout)

    monkeypatch.setenv("DAGSTER_PG_DB", cli_env["DAGSTER_PG_DB"])
    with _instance(cli_env) as instance:
        record = instance.get_run_records(dg.RunsFilter(run_ids=[run.dagster_run_id]))[0]
        assert {key: record.dagster_run.tags.get(key) for key in ("erp/sync_mode", "erp/backfill_since",
                "erp/backfill_until", "erp/trigger")} == {
            "erp/sync_mode": "backfill", "erp/backfill_since": "2026-11-01", "erp/backfill_until": "2026-11-15",
            "erp/trigger": "cli_backfill"}
        event = instance.get_latest_materialization_event(dg.AssetKey(["app", "product_pricing"]))
        metadata = event.asset_materialization.metadata
        assert (metadata["mode"].value, metadata["backfill_since"].value, metadata["backfill_until"].value) == (
            "backfill", "2026-11-01", "2026-11-15")


@pytest.mark.parametrize(("args", "message"), [
    (["--entity", "pricing", "--since", "2026-11-10", "--until", "2026-11-01"],
     "--until: until 2026-11-01 is not after since 2026-11-10: the range is empty"),
    (["--entity", "pricing", "--since", "3000-01-01"],
     "--since: since '3000-01-01' cannot be a CYYMMDD change stamp, which covers 1900-01-01 to 2899-12-31"),
    (["--entity", "pricing", "--since", "1899-12-31"], "--since: since '1899-12-31' cannot be a CYYMMDD"),
    (["--entity", "pricing", "--since", "2026-11-01", "--full"], "--since cannot go with --full"),
    (["--entity", "Category", "--since", "10"], "--since: erp_category: Products has no change tracking"),
    (["--entity", "Customers", "--since", "2026-11-01"], "--since: since '2026-11-01' is not a 4D global stamp"),
    (["--entity", "pricing", "--until", "2026-11-01"], "--until needs --since"),
    (["--since", "2026-11-01"], "--since needs --entity"),
])
def test_backfill_refuses_bad_input_naming_the_option(
    cli_env: dict[str, str], app_db: sa.Engine, args: list[str], message: str
) -> None:
    result = erp_sync(cli_env, "sync", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in " ".join(result.stderr.split())
    with app_db.connect() as connection:
        assert connection.execute(sa.text("select count(*) from sync_run")).scalar_one() == 0  # nothing started
