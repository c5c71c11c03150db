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
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg2

from benchmarks.measure import Measurement, measure

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".venv-peers"
SLING = PEERS / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / (
    "sling_linux_amd64/bin/sling-linux-amd64"
)
PYTHON = sys.executable


@dataclass
class Row:
    scenario: str
    tool: str
    seconds: float
    rows: int
    peak_rss_mb: float | None = None
    written: int | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


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
        self.rows: list[Row] = []
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

    # --- the tools --------------------------------------------------------------------------------
    def task(self, *args: str, target: str = "project") -> Measurement:
        """One task in its own process; `target` is its ERP_TARGET (read by the catalog at import time):
        project writes the project-owned tables, application the Django ERP's own tables."""
        return measure([PYTHON, "-m", "benchmarks.tasks", *args], dict(self.env, ERP_TARGET=target), cwd=ROOT)

    def ours(self, scenario: str, mode: str, rows: int, note: str = "") -> Row:
        result = self.task("engine_sync", "--mode", mode)
        out = result.output
        written = out["created"] + out["updated"] + out["deleted"]
        row = Row(scenario, f"erp_pipelines ({mode})", result.seconds, out["processed"] or rows, result.peak_rss_mb,
                  written, note, {"engine_seconds": round(out["engine_seconds"], 3), **out})
        return self.add(row)

    def tracked(self, tracking: str, mode: str) -> Measurement:
        return self.task("engine_sync", "--mode", mode, "--tracking", tracking)

    def journal_against_stamps(self, total: int, repetitions: int) -> None:
        """Incremental runs after 1 % changed and 0.1 % deleted, through the journal and by change stamps,
        alternating (journal, stamps, journal, ...): each from its own full sync (untimed), medians reported."""
        timings: dict[str, list[Measurement]] = {"auto": [], "stamps": []}
        changed = deleted = 0
        for _ in range(repetitions):
            for tracking in ("auto", "stamps"):
                self.tracked(tracking, "full")
                changed, deleted = self.change_source(0.01, 0.001)
                timings[tracking].append(self.tracked(tracking, "incremental"))
        scenario = f"5 incremental, 1% changed ({changed:,}), 0.1% deleted ({deleted:,})"
        for tracking, tool, note in (
            ("auto", "erp_pipelines (incremental, journal)", "deletions included"),
            ("stamps", "erp_pipelines (incremental, stamps)", "deletions wait for the next full sync"),
        ):
            runs = sorted(timings[tracking], key=lambda m: m.seconds)
            middle = runs[len(runs) // 2]
            out = middle.output
            self.add(Row(scenario, tool, middle.seconds, out["processed"], middle.peak_rss_mb,
                         out["created"] + out["updated"] + out["deleted"],
                         f"{note}; median of {repetitions} alternating runs",
                         {"engine_seconds": round(out["engine_seconds"], 3), "deleted": out["deleted"],
                          "all_seconds": [round(m.seconds, 3) for m in timings[tracking]]}))

    def application_against_project(self, total: int, repetitions: int) -> None:
        """Scenario 6: the same AS400 entities written into the project-owned tables (product, product_stock)
        and into the application-owned Django tables (products_product, products_productstock: the stock's
        product_id surrogate resolved from item_number), alternating (project, application, project, ...).

        Each run starts from empty targets and no watermark: product full load, product_stock initial full
        load, 1 % of the inventory changed at the source, product_stock incremental. Medians, min-max."""
        kinds = ("project", "application")
        steps = ("product", "initial", "incremental")
        timings: dict[tuple[str, str], list[Measurement]] = {(k, s): [] for k in kinds for s in steps}
        changed: list[int] = []
        resolved: list[tuple[int, int]] = []
        for _ in range(repetitions):
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
        if any(rows != total or ids != total for rows, ids in resolved):
            raise RuntimeError(f"application initial load: (rows, product_id set) = {resolved}, expected {total:,}")
        scenarios = {
            "product": f"6 product full ({-(-total // 3):,})",
            "initial": "6 stock initial full",
            "incremental": f"6 stock incremental 1% ({min(changed):,}-{max(changed):,})",
        }
        tools = {"project": "erp_pipelines (project-owned)",
                 "application": "erp_pipelines (application-owned, ids)"}
        for step in steps:
            for kind in kinds:
                runs = timings[kind, step]
                middle = sorted(runs, key=lambda m: m.seconds)[len(runs) // 2]
                engine = sorted(m.output["engine_seconds"] for m in runs)
                out = middle.output
                seconds = [m.seconds for m in runs]
                self.add(Row(
                    scenarios[step], tools[kind], middle.seconds, out["processed"], middle.peak_rss_mb,
                    out["created"] + out["updated"] + out["deleted"],
                    f"median of {len(runs)} alternating runs, {min(seconds):.2f}-{max(seconds):.2f} s; engine "
                    f"median {engine[len(engine) // 2]:.2f} s ({engine[0]:.2f}-{engine[-1]:.2f} s)",
                    {**out, "engine_seconds": round(engine[len(engine) // 2], 3),
                     "all_seconds": [round(s, 3) for s in seconds],
                     "all_engine_seconds": [round(m.output["engine_seconds"], 3) for m in runs]}))

    def ours_dagster(self, scenario: str, full: bool, rows: int) -> Row:
        home = self.workdir / "dagster_home"
        home.mkdir(exist_ok=True)
        env = dict(self.env, DAGSTER_HOME=str(home), ERP_LOG_DIR=str(self.workdir / "logs"))
        args = ["sync", "--entity", "product_stock", *(["--full"] if full else [])]
        result = measure([PYTHON, "-m", "erp_pipelines.commands", *args], env, cwd=self.workdir)
        return self.add(Row(scenario, "erp_pipelines (Dagster run)", result.seconds, rows, result.peak_rss_mb,
                            note="`erp-sync sync` through a Dagster instance: process start, code load, run"))

    def sling(self, scenario: str, rows: int) -> Row:
        result = measure(
            [str(SLING), "run", "--src-conn", "BENCH_SRC", "--src-stream", '"INVENTORYLIB"."INVENTORY"',
             "--tgt-conn", "BENCH_TGT", "--tgt-object", "public.sling_inventory", "--mode", "incremental",
             "--primary-key", "ITEMNO,WHSE"],
            self.peer_env,
            cwd=self.workdir,
        )
        return self.add(Row(scenario, "Sling 1.4.11 (incremental, PK)", result.seconds, rows, result.peak_rss_mb))

    def dlt(self, scenario: str, rows: int) -> Row:
        result = measure([str(PEERS / "bin" / "python"), str(ROOT / "benchmarks/peers/dlt_inventory.py")],
                         self.peer_env, cwd=self.workdir)
        return self.add(Row(scenario, "dlt 1.31 (sql_table pyarrow, merge)", result.seconds, rows,
                            result.peak_rss_mb))

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        rss = f"{row.peak_rss_mb:7.0f} MB" if row.peak_rss_mb else "        -"
        print(f"  {row.scenario:<34} {row.tool:<40} {row.seconds:8.2f} s  {row.rows_per_second:>10,.0f} rows/s {rss}",
              flush=True)
        return row

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

    def reset_targets(self) -> None:
        sql(self.app, "truncate product_stock, sync_error, sync_watermark, sync_run cascade",
            "drop table if exists public.sling_inventory", "drop schema if exists dlt_bench cascade",
            "drop schema if exists dlt_bench_staging cascade")
        shutil.rmtree(self.workdir / "dlt", ignore_errors=True)
        shutil.rmtree(self.workdir / "sling", ignore_errors=True)

    def reset_project_and_application_targets(self) -> None:
        """Both target kinds empty and no watermark or run rows, so every run of scenario 6 starts alike."""
        sql(self.django_owner, "truncate products_productstock, products_productmeasurement, products_productpricing, "
                               "products_product cascade")
        sql(self.app, "truncate product, product_stock, product_measurement, product_pricing, sync_error, "
                      "sync_watermark, sync_run cascade")

    def load_products(self) -> None:
        subprocess.run([PYTHON, "-m", "erp_pipelines.commands", "migrate"], env=self.env, cwd=ROOT, check=True,
                       capture_output=True)
        sql(self.app, "truncate product, product_stock, product_measurement, product_pricing, sync_error, "
                      "sync_watermark, sync_run cascade")
        self.task("engine_sync", "--entity", "product", "--mode", "full")

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
        self.reset_targets()
        s1 = "1 initial full sync"
        self.ours(s1, "full", total)
        csv = self.export_csv()
        self.reset_targets()
        self.ours_dagster(s1, True, total)
        if self.peers:
            self.sling(s1, total)
            self.dlt(s1, total)
        fetch = self.task("odbc_floor")
        self.add(Row(s1, "floor: ODBC fetch only (arrow-odbc)", fetch.seconds, fetch.output["rows"], fetch.peak_rss_mb))
        copy = self.task("copy_floor", "--csv", str(csv))
        self.add(Row(s1, "floor: COPY into a PK table only", copy.output["copy_seconds"], total,
                     note="server-side COPY time of the same rows as CSV"))
        sample = self.task("per_record", "--sample", str(per_record_sample))
        per_row = sample.output["sample_seconds"] / sample.output["sample"]
        self.add(Row(s1, "legacy per-record design (extrapolated)", per_row * total, total,
                     note=f"measured on {sample.output['sample']:,} rows ({sample.output['sample_seconds']:.1f} s), "
                          f"extrapolated linearly"))

        s2 = "2 re-sync, nothing changed"
        self.ours(s2, "full", total, note="reads every row, writes none")
        self.ours(s2, "incremental", total, note="reads only rows at/after the watermark (overlap window)")
        if self.peers:
            self.sling(s2, total)
            self.dlt(s2, total)

        updated, _ = self.change_source(0.01)
        s3 = f"3 incremental, 1% changed ({updated:,})"
        self.ours(s3, "incremental", total)
        self.ours_dagster(s3 + " [Dagster]", False, 0)
        if self.peers:
            self.sling(s3, total)
            self.dlt(s3, total)

        updated, deleted = self.change_source(0.01, 0.001)
        s4 = f"4 full, 1% changed ({updated:,}), 0.1% deleted ({deleted:,})"
        self.ours(s4, "full", total, note="soft-deletes the rows gone at the source")
        if self.peers:
            self.sling(s4, total).note = "incremental with PK does not see deletions"
            self.dlt(s4, total).note = "merge does not see deletions"
        self.journal_against_stamps(total, self.repetitions)
        self.application_against_project(total, self.repetitions)

    def application_workload(self, rows: int) -> None:
        """Scenario 6 alone (--application-only)."""
        total = self.seed(rows)
        print(f"AS400 inventory: {total:,} rows", flush=True)
        subprocess.run([PYTHON, "-m", "erp_pipelines.commands", "migrate"], env=self.env, cwd=ROOT, check=True,
                       capture_output=True)
        self.application_against_project(total, self.repetitions)

    def memory_workload(self, rows: int) -> None:
        total = self.seed(rows)
        print(f"memory check: {total:,} rows", flush=True)
        self.load_products()
        self.reset_targets()
        scenario = f"memory: initial full at {total / 1e6:.0f}M rows"
        self.ours(scenario, "full", total)
        self.ours(f"memory: re-sync full at {total / 1e6:.0f}M rows", "full", total)

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
            scenario = f"4D: {products:,} Products through REST"
            floor = self.task("legacy_4d_floor", "--port", str(port))
            self.add(Row(scenario, "floor: same pages fetched, not processed", floor.seconds, floor.output["rows"],
                         floor.peak_rss_mb, extra={"fetch_seconds": round(floor.output["fetch_seconds"], 3)}))
            result = self.task("legacy_4d_sync", "--port", str(port))
            self.add(Row(scenario, "erp_pipelines (full)", result.seconds, result.output["processed"],
                         result.peak_rss_mb, result.output["created"],
                         extra={"engine_seconds": round(result.output["engine_seconds"], 3), **result.output}))
        finally:
            server.terminate()
            server.wait(timeout=30)


def find(rows: list[Row], scenario_prefix: str, tool_prefix: str) -> Row | None:
    return next((r for r in rows if r.scenario.startswith(scenario_prefix) and r.tool.startswith(tool_prefix)), None)


def targets(rows: list[Row]) -> list[dict]:
    """The issue's targets, evaluated on this run's figures."""
    checks: list[dict] = []

    def ratio(name: str, ours: Row | None, peer: Row | None, limit: float) -> None:
        if ours and peer:
            value = ours.seconds / peer.seconds
            checks.append({"target": name, "value": round(value, 3), "limit": limit, "met": value <= limit})

    ratio("initial full ≤ 0.8x Sling", find(rows, "1 ", "erp_pipelines (full)"), find(rows, "1 ", "Sling"), 0.8)
    ratio("initial full ≤ 0.35x dlt", find(rows, "1 ", "erp_pipelines (full)"), find(rows, "1 ", "dlt"), 0.35)
    ratio("unchanged re-sync (full read) ≤ 0.5x Sling re-run", find(rows, "2 ", "erp_pipelines (full)"),
          find(rows, "2 ", "Sling"), 0.5)
    ratio("unchanged re-sync (incremental) ≤ 0.5x Sling re-run", find(rows, "2 ", "erp_pipelines (incremental)"),
          find(rows, "2 ", "Sling"), 0.5)
    incremental = find(rows, "3 ", "erp_pipelines (incremental)")
    if incremental:
        engine = incremental.extra["engine_seconds"]
        checks.append({"target": "incremental 1% ≤ 1.5 s inside the engine", "value": engine, "limit": 1.5,
                       "met": engine <= 1.5})
    ours = [r for r in rows if r.tool.startswith("erp_pipelines (") and "Dagster" not in r.tool and r.peak_rss_mb
            and not r.scenario.startswith("4D")]
    if ours:
        peak = max(r.peak_rss_mb for r in ours)
        checks.append({"target": "peak RSS ≤ 300 MB", "value": round(peak, 1), "limit": 300, "met": peak <= 300})
    small, large = find(rows, "1 ", "erp_pipelines (full)"), find(rows, "memory: initial", "erp_pipelines (full)")
    if small and large:
        growth = large.peak_rss_mb / small.peak_rss_mb - 1
        checks.append({"target": "RSS growth 1M → 5M ≤ +10%", "value": round(growth, 3), "limit": 0.10,
                       "met": growth <= 0.10})
    ratio("journal incremental (deletions included) ≤ 1.0x stamp incremental",
          find(rows, "5 ", "erp_pipelines (incremental, journal)"),
          find(rows, "5 ", "erp_pipelines (incremental, stamps)"), 1.0)
    # Our own targets for issue 16 (set by this project, not by the issue): writing the application's own
    # tables, with the surrogate product_id resolved from item_number, costs at most 1.3x the project-owned
    # path. Judged on the engine-time medians (both processes pay the same few seconds of start-up and code
    # loading, which would hide the difference); the wall-time ratio is reported next to it.
    for step, name in (("initial", "initial load"), ("incremental", "incremental 1%")):
        application = find(rows, f"6 stock {step}", "erp_pipelines (application-owned")
        project = find(rows, f"6 stock {step}", "erp_pipelines (project-owned")
        if application and project:
            value = application.extra["engine_seconds"] / project.extra["engine_seconds"]
            checks.append({"target": f"issue 16: application-owned {name} ≤ 1.3x project-owned (engine medians)",
                           "value": round(value, 3), "limit": 1.3, "met": value <= 1.3,
                           "wall_value": round(application.seconds / project.seconds, 3)})
    fetch, sync = find(rows, "4D", "floor"), find(rows, "4D", "erp_pipelines")
    if fetch and sync:
        value = fetch.seconds / sync.seconds
        checks.append({"target": "4D ≥ 0.7x the page-fetch floor (floor time / our time)", "value": round(value, 3),
                       "limit": 0.7, "met": value >= 0.7})
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="0 skips the AS400 workload")
    parser.add_argument("--memory-rows", type=int, default=5_000_000, help="0 skips the memory check")
    parser.add_argument("--legacy-4d", type=int, default=100_000, help="4D products; 0 skips the 4D workload")
    parser.add_argument("--per-record-sample", type=int, default=20_000)
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--repetitions", type=int, default=3, help="alternating runs per tool where medians are taken")
    parser.add_argument("--application-only", action="store_true",
                        help="only scenario 6 (project- against application-owned target) at --rows; no peers, "
                             "no 4D, no memory check")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/latest.json")
    args = parser.parse_args()
    env = load_env()
    if args.application_only:
        args.skip_peers, args.legacy_4d, args.memory_rows = True, 0, 0
    if not args.skip_peers:
        ensure_peers()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="erp-bench-") as workdir:
        bench = Bench(env, not args.skip_peers, Path(workdir), args.repetitions)
        if args.rows and args.application_only:
            bench.application_workload(args.rows)
        elif args.rows:
            bench.as400_workload(args.rows, args.per_record_sample)
        if args.legacy_4d:
            bench.legacy_4d_workload(args.legacy_4d)
        if args.memory_rows:
            bench.memory_workload(args.memory_rows)
    checks = targets(bench.rows)
    print("\ntargets:")
    for check in checks:
        wall = f"; wall-time ratio {check['wall_value']}" if "wall_value" in check else ""
        met = "MET " if check["met"] else "MISS"
        print(f"  {met} {check['target']}: {check['value']} (limit {check['limit']}{wall})")
    report = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "postgresql": sql(bench.app, "show server_version")[0][0]},
        "arguments": vars(args) | {"output": str(args.output)},
        "duration_seconds": round(time.time() - started, 1),
        "rows": [asdict(r) | {"rows_per_second": round(r.rows_per_second)} for r in bench.rows],
        "targets": checks,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
