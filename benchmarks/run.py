"""One command, one run: this project's sync against Sling, dlt and the floors on the same data.

    .venv/bin/python -m benchmarks.run [--rows 1000000] [--memory-rows 5000000] [--legacy-4d 100000]
    .venv/bin/python -m benchmarks.run --application-only [--rows 1000000] [--repetitions 3]   # scenario 6 alone

Needs the sandbox (scripts/setup). Installs the peers into .venv-peers on first use. Prints a table and
writes it as JSON (benchmarks/results/latest.json). Absolute times drift between machines; the ratios
are measured in the same run on the same data, one tool after the other.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from benchmarks.measure import Measurement, measure
from benchmarks.tasks import WIDE_ENTITY
from erp_sandbox.as400 import wide

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".venv-peers"
SLING = PEERS / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / (
    "sling_linux_amd64/bin/sling-linux-amd64"
)
PYTHON = sys.executable


@dataclass
class Result:
    """Every run of one tool in one scenario (alternating with the scenario's other tools)."""

    scenario: str
    """The scenario's title as printed."""
    key: str
    """`scenario id/tool id`: what the targets look results up by."""
    tool: str
    rows: int
    seconds: list[float]
    peak_rss_mb: list[float]
    outputs: list[dict] = field(default_factory=list)
    note: str = ""

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_rss_mb(self) -> float:
        return statistics.median(self.peak_rss_mb)

    @property
    def engine_seconds(self) -> list[float]:
        return [out["engine_seconds"] for out in self.outputs if "engine_seconds" in out]

    def summary(self) -> dict:
        """Medians, spread and every sample, for the JSON report."""
        engine = self.engine_seconds
        return {
            "scenario": self.scenario, "key": self.key, "tool": self.tool, "rows": self.rows, "note": self.note,
            "runs": len(self.seconds), "median_seconds": round(self.median_seconds, 3),
            "min_seconds": round(min(self.seconds), 3), "max_seconds": round(max(self.seconds), 3),
            "rows_per_second": round(self.rows / self.median_seconds) if self.median_seconds else 0,
            "median_peak_rss_mb": round(self.median_rss_mb, 1), "max_peak_rss_mb": round(max(self.peak_rss_mb), 1),
            **({"median_engine_seconds": round(statistics.median(engine), 3),
                "min_engine_seconds": round(min(engine), 3), "max_engine_seconds": round(max(engine), 3)}
               if engine else {}),
            "samples": [{"seconds": round(s, 3), "peak_rss_mb": round(r, 1), "output": o}
                        for s, r, o in zip(self.seconds, self.peak_rss_mb, self.outputs, strict=True)],
        }

    def line(self) -> str:
        engine = self.engine_seconds
        inside = f"  engine {statistics.median(engine):.2f} s" if engine else ""
        rate = self.rows / self.median_seconds if self.median_seconds else 0.0
        return (f"  {self.scenario:<44} {self.tool:<42} {self.median_seconds:8.2f} s "
                f"({min(self.seconds):.2f}-{max(self.seconds):.2f}) {rate:>10,.0f} rows/s "
                f"{self.median_rss_mb:5.0f} MB (max {max(self.peak_rss_mb):.0f}){inside}")


@dataclass
class Contender:
    """One tool in a scenario: `prepare` (untimed) puts its target in the scenario's starting state before
    each of its runs, `run` is the timed run."""

    id: str
    tool: str
    run: Callable[[], Measurement]
    prepare: Callable[[], object] | None = None
    note: str = ""


def load_env() -> dict[str, str]:
    env = dict(os.environ)
    for path in (ROOT / ".env", Path.home() / ".config/erp_pipelines/sandbox-secrets.env"):
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                env.setdefault(key.strip(), value.strip().strip("'"))
    env["APP_DATABASE_URL"] = env["BENCH_APP_DATABASE_URL"]
    env["AS400_DATABASE"] = env["BENCH_AS400_DATABASE"]
    env["PYTHONPATH"] = str(ROOT)
    # The sandbox's .env sets ERP_TARGET=application; scenarios 1-5, the floors and the peers compare against
    # the project-owned tables, so they are pinned to those. Scenario 6 sets ERP_TARGET per run (`Bench.task`).
    env["ERP_TARGET"] = "project"
    return env


def ensure_peers() -> None:
    if SLING.exists() and (PEERS / "bin" / "python").exists():
        return
    print("installing the peers into .venv-peers (first run only)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    subprocess.run(
        [str(PEERS / "bin" / "pip"), "install", "-q", "-r", str(ROOT / "benchmarks/peers/requirements.txt")],
        check=True,
    )
    SLING.chmod(0o755)


def pg(url: str) -> psycopg2.extensions.connection:
    connection = psycopg2.connect(url.replace("+psycopg2", ""))
    connection.autocommit = True
    return connection


def sql(url: str, *statements: str) -> list[tuple]:
    connection = pg(url)
    try:
        with connection.cursor() as cursor:
            result: list[tuple] = []
            for statement in statements:
                cursor.execute(statement)
                if cursor.description:
                    result = cursor.fetchall()
            return result
    finally:
        connection.close()


class Bench:
    def __init__(self, env: dict[str, str], peers: bool, workdir: Path, repetitions: int = 3) -> None:
        self.env = env
        self.repetitions = repetitions
        self.peers = peers
        self.workdir = workdir
        self.results: list[Result] = []
        self.app = env["BENCH_APP_DATABASE_URL"]
        self.django_owner = env["BENCH_DJANGO_DATABASE_URL"]
        """The Django ERP's owner role: erp_app may write the application's tables but not truncate them."""
        self.source_owner = env["BENCH_AS400_OWNER_URL"]
        host, port = env["ERP_PG_HOST"], env["ERP_PG_PORT"]
        self.peer_env = dict(
            env,
            SLING_HOME_DIR=str(workdir / "sling"),
            DLT_PIPELINES_DIR=str(workdir / "dlt"),
            BENCH_SRC=f"postgresql://as400_reader:{env['AS400_PASSWORD']}@{host}:{port}/as400_bench?sslmode=disable",
            BENCH_TGT=f"postgresql://erp_app:{env['ERP_APP_PASSWORD']}@{host}:{port}/erp_app_bench?sslmode=disable",
            PEER_SOURCE_URL=f"postgresql://as400_reader:{env['AS400_PASSWORD']}@{host}:{port}/as400_bench",
            PEER_TARGET_URL=f"postgresql://erp_app:{env['ERP_APP_PASSWORD']}@{host}:{port}/erp_app_bench",
        )

    # --- the method: alternating runs, every sample kept ------------------------------------------
    def alternate(self, scenario_id: str, title: str, rows: int, contenders: list[Contender]) -> None:
        """`repetitions` rounds; in each, every contender in turn (prepare untimed, then its timed run)."""
        runs: dict[str, list[Measurement]] = {c.id: [] for c in contenders}
        print(f"{title}", flush=True)
        for round_ in range(1, self.repetitions + 1):
            for contender in contenders:
                if contender.prepare:
                    contender.prepare()
                measured = contender.run()
                runs[contender.id].append(measured)
                print(f"    round {round_}/{self.repetitions} {contender.tool:<42} {measured.seconds:8.2f} s "
                      f"{measured.peak_rss_mb:5.0f} MB", flush=True)
        for contender in contenders:
            self.record(scenario_id, title, contender.id, contender.tool, rows, runs[contender.id], contender.note)

    def record(self, scenario_id: str, title: str, tool_id: str, tool: str, rows: int, runs: list[Measurement],
               note: str = "") -> Result:
        processed = [m.output["processed"] for m in runs if m.output.get("processed")]
        result = Result(title, f"{scenario_id}/{tool_id}", tool, max(processed, default=rows),
                        [m.seconds for m in runs], [m.peak_rss_mb for m in runs], [m.output for m in runs], note)
        self.results.append(result)
        print(result.line(), flush=True)
        return result

    # --- the tools --------------------------------------------------------------------------------
    def task(self, *args: str, target: str = "project") -> Measurement:
        """One task in its own process; `target` is its ERP_TARGET (read by the catalog at import time):
        project writes the project-owned tables, application the Django ERP's own tables."""
        return measure([PYTHON, "-m", "benchmarks.tasks", *args], dict(self.env, ERP_TARGET=target), cwd=ROOT)

    def ours(self, mode: str, entity: str = "product_stock", tracking: str = "auto", checks: bool = False
             ) -> Measurement:
        """The bare engine process: `benchmarks.tasks engine_sync`; with `checks`, also what a Dagster run's asset
        checks compute after the sync (reconciliation by keys re-reads every source key): the same work as a
        Dagster run, without Dagster."""
        return self.task("engine_sync", "--entity", entity, "--mode", mode, "--tracking", tracking,
                         *(["--checks"] if checks else []))

    def dagster(self, full: bool) -> Measurement:
        """`erp-sync sync` through a Dagster instance: process start, code load, run, checks."""
        home = self.workdir / "dagster_home"
        home.mkdir(exist_ok=True)
        env = dict(self.env, DAGSTER_HOME=str(home), ERP_LOG_DIR=str(self.workdir / "logs"))
        args = ["sync", "--entity", "product_stock", *(["--full"] if full else [])]
        return measure([PYTHON, "-m", "erp_pipelines.commands", *args], env, cwd=self.workdir)

    def sling(self, stream: str, target: str, key: str) -> Measurement:
        return measure(
            [str(SLING), "run", "--src-conn", "BENCH_SRC", "--src-stream", stream, "--tgt-conn", "BENCH_TGT",
             "--tgt-object", f"public.{target}", "--mode", "incremental", "--primary-key", key],
            self.peer_env, cwd=self.workdir)

    def dlt(self, schema: str, table: str, key: str, dataset: str) -> Measurement:
        return measure([str(PEERS / "bin" / "python"), str(ROOT / "benchmarks/peers/dlt_table.py"), schema, table,
                        key, dataset], self.peer_env, cwd=self.workdir)

    def copy_floor(self, csv: Path) -> Measurement:
        """The server-side COPY time of the same rows as CSV into an empty table with the target's key."""
        measured = self.task("copy_floor", "--csv", str(csv))
        return Measurement(measured.output["copy_seconds"], measured.peak_rss_mb, measured.output)

    def per_record(self, sample: int, total: int) -> Measurement:
        """The legacy design on a sample, extrapolated linearly to `total` rows."""
        measured = self.task("per_record", "--sample", str(sample))
        seconds = measured.output["sample_seconds"] / measured.output["sample"] * total
        return Measurement(seconds, measured.peak_rss_mb, measured.output)

    def inventory_peers(self, reset: bool, change: Callable[[], object] | None = None) -> list[Contender]:
        """Sling and dlt on the inventory; `reset` empties their target before each run (initial loads)."""
        if not self.peers:
            return []
        return [
            Contender("sling", "Sling 1.4.11 (incremental, PK)",
                      lambda: self.sling('"INVENTORYLIB"."INVENTORY"', "sling_inventory", "ITEMNO,WHSE"),
                      (lambda: sql(self.app, "drop table if exists public.sling_inventory")) if reset else change),
            Contender("dlt", "dlt 1.31 (sql_table pyarrow, merge)",
                      lambda: self.dlt("INVENTORYLIB", "INVENTORY", "ITEMNO,WHSE", "dlt_bench"),
                      (lambda: self.reset_dlt("dlt_bench")) if reset else change),
        ]

    # --- data ---------------------------------------------------------------------------------------
    def seed(self, rows: int) -> int:
        products = -(-rows // 3)
        subprocess.run(
            [PYTHON, "-m", "erp_sandbox.as400.seed", "--owner-url", self.source_owner, "--products", str(products),
             "--warehouses", "3", "--bad-share", "0", "--inventory-only"],
            env=self.env, cwd=ROOT, check=True,
        )
        sql(self.source_owner, 'vacuum analyze "INVENTORYLIB"."INVENTORY"', 'vacuum analyze "PRODUCTLIB"."PRODUCTS"')
        return products * 3

    def reset_ours(self) -> None:
        """The project-owned stock table empty, with no watermark or run rows: an initial load's start."""
        sql(self.app, "truncate product_stock, sync_error, sync_watermark, sync_run cascade")

    def reset_dlt(self, dataset: str) -> None:
        sql(self.app, f"drop schema if exists {dataset} cascade", f"drop schema if exists {dataset}_staging cascade")
        shutil.rmtree(self.workdir / "dlt" / f"bench_{dataset}", ignore_errors=True)

    def reset_project_and_application_targets(self) -> None:
        """Both target kinds empty and no watermark or run rows, so every run of scenario 6 starts alike."""
        sql(self.django_owner, "truncate products_productstock, products_productmeasurement, products_productpricing, "
                               "products_product cascade")
        sql(self.app, "truncate product, product_stock, product_measurement, product_pricing, sync_error, "
                      "sync_watermark, sync_run cascade")

    def migrate(self) -> None:
        subprocess.run([PYTHON, "-m", "erp_pipelines.commands", "migrate"], env=self.env, cwd=ROOT, check=True,
                       capture_output=True)

    def load_products(self) -> None:
        self.migrate()
        sql(self.app, "truncate product, product_stock, product_measurement, product_pricing, sync_error, "
                      "sync_watermark, sync_run cascade")
        self.ours("full", "product")

    def change_source(self, share: float, delete_share: float = 0.0) -> tuple[int, int]:
        """Updates every n-th row (quantity and change stamp = now) and deletes a few others."""
        now = dt.datetime.now()
        date = (now.year - 1900) * 10_000 + now.month * 100 + now.day
        time_ = now.hour * 10_000 + now.minute * 100 + now.second
        step = round(1 / share)
        updated = sql(self.source_owner, f'''
            with picked as (select "ITEMNO", "WHSE", row_number() over (order by "ITEMNO", "WHSE") as n
                            from "INVENTORYLIB"."INVENTORY")
            update "INVENTORYLIB"."INVENTORY" i set "ONHAND" = i."ONHAND" + 1, "CHGDAT" = {date}, "CHGTIM" = {time_}
            from picked p
            where p."ITEMNO" = i."ITEMNO" and p."WHSE" = i."WHSE" and p.n % {step} = {int(time.time()) % step}
            returning 1''')
        deleted: list = []
        if delete_share:
            dstep = round(1 / delete_share)
            deleted = sql(self.source_owner, f'''
                with picked as (select "ITEMNO", "WHSE", row_number() over (order by "ITEMNO", "WHSE") as n
                                from "INVENTORYLIB"."INVENTORY")
                delete from "INVENTORYLIB"."INVENTORY" i using picked p
                where p."ITEMNO" = i."ITEMNO" and p."WHSE" = i."WHSE" and p.n % {dstep} = 7 returning 1''')
        sql(self.source_owner, 'vacuum analyze "INVENTORYLIB"."INVENTORY"')
        return len(updated), len(deleted)

    def export_csv(self) -> Path:
        path = self.workdir / "inventory.csv"
        connection = pg(self.app)
        with connection.cursor() as cursor, path.open("w") as handle:
            cursor.copy_expert(
                "copy (select item_number, warehouse, on_hand, allocated, on_order, unit_of_measure, bin_location, "
                "is_lot_controlled, source_changed_at from product_stock) to stdout with (format csv)", handle)
        connection.close()
        return path

    # --- scenarios ----------------------------------------------------------------------------------
    def as400_workload(self, rows: int, per_record_sample: int) -> None:
        total = self.seed(rows)
        print(f"AS400 inventory: {total:,} rows", flush=True)
        self.load_products()
        self.reset_ours()
        self.ours("full")  # untimed warm-up: caches as warm for the first contender as for the others
        csv = self.export_csv()
        self.alternate("1", "1 initial full sync", total, [
            Contender("ours", "erp_pipelines (full)", lambda: self.ours("full"), self.reset_ours),
            *self.inventory_peers(reset=True),
            Contender("ours_checked", "erp_pipelines (full, then the checks)", lambda: self.ours("full", checks=True),
                      self.reset_ours, "the bare process doing a Dagster run's work: the sync, then its checks"),
            Contender("dagster", "erp_pipelines (Dagster run)", lambda: self.dagster(True), self.reset_ours,
                      "`erp-sync sync --full`: process start, code load, run, checks"),
            Contender("fetch_floor", "floor: ODBC fetch only (arrow-odbc)", lambda: self.task("odbc_floor")),
            Contender("copy_floor", "floor: COPY into a PK table only", lambda: self.copy_floor(csv),
                      note="server-side COPY time of the same rows as CSV"),
            Contender("per_record", "legacy per-record design (extrapolated)",
                      lambda: self.per_record(per_record_sample, total),
                      note=f"one transaction per record on {per_record_sample:,} rows, extrapolated linearly"),
        ])
        self.alternate("2", "2 re-sync, nothing changed", total, [
            Contender("ours", "erp_pipelines (full)", lambda: self.ours("full"), note="reads every row, writes none"),
            Contender("ours_incremental", "erp_pipelines (incremental)", lambda: self.ours("incremental"),
                      note="reads only rows at/after the watermark (overlap window)"),
            *self.inventory_peers(reset=False),
            Contender("fetch_floor", "floor: ODBC fetch only (arrow-odbc)", lambda: self.task("odbc_floor")),
        ])
        self.verify_workload(total)

        def caught_up_then_changed() -> None:
            """Our target holds every earlier change (an untimed incremental), then 1 % changes: each timed
            run of ours sees exactly the 1 %, whatever the peers' rounds changed before it."""
            self.ours("incremental")
            self.change_source(0.01)

        def changed() -> None:
            self.change_source(0.01)

        self.alternate("3", "3 incremental, 1% changed", total, [
            Contender("ours", "erp_pipelines (incremental)", lambda: self.ours("incremental"),
                      caught_up_then_changed),
            *self.inventory_peers(reset=False, change=changed),
            Contender("ours_checked", "erp_pipelines (incremental, then the checks)",
                      lambda: self.ours("incremental", checks=True), caught_up_then_changed,
                      "the bare process doing a Dagster run's work: the sync, then its checks"),
            Contender("dagster", "erp_pipelines (Dagster run)", lambda: self.dagster(False), caught_up_then_changed,
                      "`erp-sync sync` (incremental) through a Dagster instance"),
        ])

        def changed_and_deleted() -> None:
            self.change_source(0.01, 0.001)

        peers = self.inventory_peers(reset=False, change=changed_and_deleted)
        for peer in peers:
            peer.note = "does not see deletions (incremental with PK / merge)"
        self.alternate("4", "4 full, 1% changed, 0.1% deleted", total, [
            Contender("ours", "erp_pipelines (full)", lambda: self.ours("full"), changed_and_deleted,
                      "soft-deletes the rows gone at the source"),
            *peers,
        ])
        self.journal_against_stamps(total)
        self.application_against_project(total)

    def verify_workload(self, total: int) -> None:
        """Scenario 7: `erp-sync verify`'s comparison (the task `verify`: source read through the sync's decoders,
        range hashes against the target) alternating with the fetch floor, while the target is in sync with the
        source (after scenario 2)."""
        self.alternate("7", "7 verify, source and target agree", total, [
            Contender("ours", "erp_pipelines verify", lambda: self.task("verify", "--entity", "product_stock")),
            Contender("fetch_floor", "floor: ODBC fetch only (arrow-odbc)", lambda: self.task("odbc_floor")),
        ])

    def journal_against_stamps(self, total: int) -> None:
        """Incremental runs after 1 % changed and 0.1 % deleted, through the journal and by change stamps,
        alternating: each from its own full sync (untimed)."""
        def from_full(tracking: str) -> Callable[[], None]:
            def prepare() -> None:
                self.ours("full", tracking=tracking)
                self.change_source(0.01, 0.001)
            return prepare

        self.alternate("5", "5 incremental, 1% changed, 0.1% deleted", total, [
            Contender("journal", "erp_pipelines (incremental, journal)", lambda: self.ours("incremental"),
                      from_full("auto"), "deletions included"),
            Contender("stamps", "erp_pipelines (incremental, stamps)",
                      lambda: self.ours("incremental", tracking="stamps"), from_full("stamps"),
                      "deletions wait for the next full sync"),
        ])

    def application_against_project(self, total: int) -> None:
        """Scenario 6: the same AS400 entities written into the project-owned tables (product, product_stock)
        and into the application-owned Django tables (products_product, products_productstock: the stock's
        product_id surrogate resolved from item_number), alternating (project, application, project, ...).

        Each run starts from empty targets and no watermark: product full load, product_stock initial full
        load, 1 % of the inventory changed at the source, product_stock incremental."""
        total = sql(self.source_owner, 'select count(*) from "INVENTORYLIB"."INVENTORY"')[0][0]
        """The live source rows now (scenarios 4 and 5 deleted some), which every initial load must bring."""
        kinds = {"project": "erp_pipelines (project-owned)", "application": "erp_pipelines (application-owned, ids)"}
        steps = ("product", "initial", "incremental")
        timings: dict[tuple[str, str], list[Measurement]] = {(k, s): [] for k in kinds for s in steps}
        changed: list[int] = []
        resolved: list[tuple[int, int]] = []
        for round_ in range(1, self.repetitions + 1):
            for kind in kinds:
                self.reset_project_and_application_targets()
                timings[kind, "product"].append(
                    self.task("engine_sync", "--entity", "product", "--mode", "full", target=kind))
                timings[kind, "initial"].append(self.task("engine_sync", "--mode", "full", target=kind))
                if kind == "application":
                    count = sql(self.django_owner, "select count(*), count(product_id) from products_productstock")
                    resolved.append(count[0])
                changed.append(self.change_source(0.01)[0])
                timings[kind, "incremental"].append(self.task("engine_sync", "--mode", "incremental", target=kind))
                print(f"    round {round_}/{self.repetitions} {kinds[kind]}: " + ", ".join(
                    f"{step} {timings[kind, step][-1].seconds:.2f} s" for step in steps), flush=True)
        if any(rows != total or ids != total for rows, ids in resolved):
            raise RuntimeError(f"application initial load: (rows, product_id set) = {resolved}, expected {total:,}")
        titles = {
            "product": (f"6 product full ({-(-total // 3):,})", -(-total // 3)),
            "initial": ("6 stock initial full", total),
            "incremental": (f"6 stock incremental 1% ({min(changed):,}-{max(changed):,})", total),
        }
        for step in steps:
            for kind, tool in kinds.items():
                title, rows = titles[step]
                self.record(f"6-{step}", title, kind, tool, rows, timings[kind, step])

    def application_workload(self, rows: int) -> None:
        """Scenario 6 alone (--application-only)."""
        total = self.seed(rows)
        print(f"AS400 inventory: {total:,} rows", flush=True)
        self.migrate()
        self.application_against_project(total)

    def wide_workload(self, rows: int) -> None:
        """The 150-field master file (erp_sandbox/as400/wide.py): initial full load against Sling and dlt and the
        fetch floor; then where the row rules' time goes (decoders against pandera, per column)."""
        subprocess.run([PYTHON, "-m", "erp_sandbox.as400.wide", "--owner-url", self.source_owner, "--rows",
                        str(rows)], env=self.env, cwd=ROOT, check=True)
        self.migrate()

        def reset_ours() -> None:
            sql(self.app, "drop table if exists bench_item_master",
                "delete from sync_watermark where entity = 'bench_item_master'")

        stream = f'"{wide.LIBRARY}"."{wide.FILE}"'
        peers = [
            Contender("sling", "Sling 1.4.11 (incremental, PK)", lambda: self.sling(stream, "sling_item_master",
                                                                                     wide.KEY),
                      lambda: sql(self.app, "drop table if exists public.sling_item_master")),
            Contender("dlt", "dlt 1.31 (sql_table pyarrow, merge)",
                      lambda: self.dlt(wide.LIBRARY, wide.FILE, wide.KEY, "dlt_wide"),
                      lambda: self.reset_dlt("dlt_wide")),
        ] if self.peers else []
        title = f"wide: {len(wide.WIDE_FIELDS)}-field master file, initial full"
        self.alternate("wide", title, rows, [
            Contender("ours", "erp_pipelines (full)", lambda: self.ours("full", WIDE_ENTITY), reset_ours),
            *peers,
            Contender("fetch_floor", "floor: ODBC fetch only (arrow-odbc)",
                      lambda: self.task("odbc_floor", "--entity", WIDE_ENTITY)),
        ])
        self.alternate("wide-rules", "wide: row rules, first 4 batches", rows, [
            Contender("validation_cost", "decoders, then pandera (in-process)",
                      lambda: self.task("validation_cost", "--entity", WIDE_ENTITY),
                      note="see outputs: decode_seconds, pandera_seconds, per column per 100k rows"),
        ])

    def memory_workload(self, rows: int) -> None:
        total = self.seed(rows)
        print(f"memory check: {total:,} rows", flush=True)
        self.load_products()
        size = f"{total:,} rows"
        self.alternate("memory-initial", f"memory: initial full at {size}", total, [
            Contender("ours", "erp_pipelines (full)", lambda: self.ours("full"), self.reset_ours),
            Contender("dagster", "erp_pipelines (Dagster run)", lambda: self.dagster(True), self.reset_ours),
        ])
        self.alternate("memory-resync", f"memory: re-sync full at {size}", total, [
            Contender("ours", "erp_pipelines (full)", lambda: self.ours("full")),
        ])

    def legacy_4d_workload(self, products: int) -> None:
        store = self.env["BENCH_LEGACY4D_STORE_URL"]
        subprocess.run([PYTHON, "-m", "erp_sandbox.legacy_4d.seed", "--store-url", store, "--products",
                        str(products), "--bad-share", "0.01", "--reset"], env=self.env, cwd=ROOT, check=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        ready = self.workdir / "legacy4d.ready"
        server = subprocess.Popen(
            [PYTHON, "-m", "erp_sandbox.legacy_4d.server", "--port", str(port), "--store-url", store,
             "--ready-file", str(ready)], env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the 4D emulator did not start")
                time.sleep(0.2)
            sql(self.app, "truncate erp_category, erp_product, erp_inventory, erp_bill_of_material, sync_error, "
                          "sync_watermark, sync_run cascade")
            self.task("legacy_4d_sync", "--port", str(port), "--entity", "erp_category")

            def reset_products() -> None:
                sql(self.app, "truncate erp_product, sync_error cascade",
                    "delete from sync_watermark where entity = 'erp_product'")

            self.alternate("4d", f"4D: {products:,} Products through REST", products, [
                Contender("fetch_floor", "floor: same pages fetched, not processed",
                          lambda: self.task("legacy_4d_floor", "--port", str(port))),
                Contender("ours", "erp_pipelines (full)", lambda: self.task("legacy_4d_sync", "--port", str(port)),
                          reset_products),
            ])
        finally:
            server.terminate()
            server.wait(timeout=30)


ENGINE_TOOLS = ("ours", "ours_checked", "ours_incremental", "journal", "stamps", "project", "application")
"""Tool ids of runs of our engine's bare process (the Dagster run's process is `dagster`)."""


def targets(results: list[Result]) -> list[dict]:
    """The issue's targets, judged on this run's medians (ratios of tools measured in the same run)."""
    by_key = {result.key: result for result in results}
    checks: list[dict] = []

    def check(name: str, value: float, limit: float, at_most: bool = True, **inputs: float) -> None:
        met = value <= limit if at_most else value >= limit
        checks.append({"target": name, "value": round(value, 3), "limit": limit, "met": met,
                       **{k: round(v, 3) for k, v in inputs.items()}})

    def ratio(name: str, ours: str, other: str, limit: float) -> None:
        if ours in by_key and other in by_key:
            mine, theirs = by_key[ours].median_seconds, by_key[other].median_seconds
            check(name, mine / theirs, limit, ours_seconds=mine, other_seconds=theirs)

    ratio("initial full ≤ 0.6x Sling", "1/ours", "1/sling", 0.6)
    ratio("initial full ≤ 0.3x dlt", "1/ours", "1/dlt", 0.3)
    if {"1/ours", "1/fetch_floor", "1/copy_floor"} <= by_key.keys():
        floors = by_key["1/fetch_floor"].median_seconds + by_key["1/copy_floor"].median_seconds
        check("initial full ≤ 1.1x (fetch floor + COPY floor)", by_key["1/ours"].median_seconds / floors, 1.1,
              ours_seconds=by_key["1/ours"].median_seconds, floors_seconds=floors)
    ratio("unchanged full re-read ≤ 1.3x the fetch floor", "2/ours", "2/fetch_floor", 1.3)
    ratio("incremental 1% ≤ 0.1x Sling", "3/ours", "3/sling", 0.1)
    ratio("verify 1M rows ≤ 1.3x the fetch floor", "7/ours", "7/fetch_floor", 1.3)
    # The same work: a Dagster run also runs the asset checks (reconciliation re-reads every source key), so it
    # is judged against the bare process doing the sync and then the checks' work; the sync alone is shown too.
    for scenario, name in (("1", "initial full"), ("3", "incremental 1%")):
        if {f"{scenario}/dagster", f"{scenario}/ours_checked", f"{scenario}/ours"} <= by_key.keys():
            dagster = by_key[f"{scenario}/dagster"].median_seconds
            checked = by_key[f"{scenario}/ours_checked"].median_seconds
            check(f"Dagster run ≤ 1.5x the bare process for the same work (sync and checks), {name}",
                  dagster / checked, 1.5, dagster_seconds=dagster, bare_seconds=checked,
                  against_the_sync_alone=dagster / by_key[f"{scenario}/ours"].median_seconds)
    if {"4d/ours", "4d/fetch_floor"} <= by_key.keys():
        floor, ours = by_key["4d/fetch_floor"].median_seconds, by_key["4d/ours"].median_seconds
        check("4D ≥ 0.8x the page-fetch floor (floor time / our time)", floor / ours, 0.8, at_most=False,
              ours_seconds=ours, floor_seconds=floor)
    ratio("wide master file ≤ 0.6x Sling", "wide/ours", "wide/sling", 0.6)
    if "wide/ours" in by_key:
        check("wide master file: peak RSS ≤ 300 MB", max(by_key["wide/ours"].peak_rss_mb), 300)
    for tool, name in (("engine", "the engine's process"), ("dagster", "a Dagster run's process")):
        ids = ENGINE_TOOLS if tool == "engine" else ("dagster",)
        peaks = [max(r.peak_rss_mb) for r in results if r.key.split("/")[1] in ids]
        if peaks:
            check(f"peak RSS ≤ 300 MB, {name} (every run)", max(peaks), 300)
        small, large = by_key.get(f"1/{ids[0]}"), by_key.get(f"memory-initial/{ids[0]}")
        if small and large:
            check(f"RSS flat from --rows to --memory-rows (1M to 5M by default), {name}: growth ≤ +10%",
                  large.median_rss_mb / small.median_rss_mb - 1, 0.10, small_mb=small.median_rss_mb,
                  large_mb=large.median_rss_mb)
    ratio("journal incremental (deletions included) ≤ 1.0x stamp incremental", "5/journal", "5/stamps", 1.0)
    # Our own target for issue 16: the application's own tables (product_id resolved from item_number) cost
    # at most 1.3x the project-owned path, judged on engine-time medians (both processes pay the same start-up,
    # which would hide the difference); the wall-time ratio is reported next to it.
    for step, name in (("initial", "initial load"), ("incremental", "incremental 1%")):
        application, project = by_key.get(f"6-{step}/application"), by_key.get(f"6-{step}/project")
        if application and project:
            engine = statistics.median(application.engine_seconds) / statistics.median(project.engine_seconds)
            check(f"issue 16: application-owned {name} ≤ 1.3x project-owned (engine medians)", engine, 1.3,
                  wall_value=application.median_seconds / project.median_seconds)
    return checks


def report_text(results: list[Result], checks: list[dict]) -> str:
    lines = [result.line() for result in results]
    lines.append("\ntargets (medians of alternating runs):")
    for c in checks:
        met = "MET " if c["met"] else "MISS"
        inputs = ", ".join(f"{k} {v}" for k, v in c.items() if k not in ("target", "value", "limit", "met"))
        lines.append(f"  {met} {c['target']}: {c['value']} (limit {c['limit']}{'; ' + inputs if inputs else ''})")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="inventory rows; 0 skips the AS400 workload")
    parser.add_argument("--wide-rows", type=int, default=200_000, help="wide master file rows; 0 skips it")
    parser.add_argument("--memory-rows", type=int, default=5_000_000, help="0 skips the memory check")
    parser.add_argument("--legacy-4d", type=int, default=100_000, help="4D products; 0 skips the 4D workload")
    parser.add_argument("--per-record-sample", type=int, default=10_000)
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--repetitions", type=int, default=3, help="alternating runs per tool and scenario (≥ 3)")
    parser.add_argument("--application-only", action="store_true",
                        help="only scenario 6 (project- against application-owned target) at --rows; no peers, "
                             "no wide file, no 4D, no memory check")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/latest.json",
                        help="the JSON report; the printed table goes next to it (.txt)")
    args = parser.parse_args()
    if args.repetitions < 3:
        parser.error("--repetitions: at least 3 (medians of alternating runs)")
    env = load_env()
    if args.application_only:
        args.skip_peers, args.legacy_4d, args.memory_rows, args.wide_rows = True, 0, 0, 0
    if not args.skip_peers:
        ensure_peers()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="erp-bench-") as workdir:
        bench = Bench(env, not args.skip_peers, Path(workdir), args.repetitions)
        if args.rows and args.application_only:
            bench.application_workload(args.rows)
        elif args.rows:
            bench.as400_workload(args.rows, args.per_record_sample)
        if args.wide_rows:
            bench.wide_workload(args.wide_rows)
        if args.legacy_4d:
            bench.legacy_4d_workload(args.legacy_4d)
        if args.memory_rows:
            bench.memory_workload(args.memory_rows)
    checks = targets(bench.results)
    duration = time.time() - started
    text = report_text(bench.results, checks) + f"\nduration {duration / 60:.1f} min\n"
    print("\n" + text)
    report = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "postgresql": sql(bench.app, "show server_version")[0][0]},
        "method": "every scenario: --repetitions rounds, each running every tool once in turn (prepare untimed); "
                  "medians and min-max per tool; targets judged on ratios of medians from the same run",
        "arguments": vars(args) | {"output": str(args.output)},
        "duration_seconds": round(duration, 1),
        "results": [result.summary() for result in bench.results],
        "targets": checks,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    args.output.with_suffix(".txt").write_text(text)
    print(f"written to {args.output} and {args.output.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
