"""What the benchmark measures, one task per process: `python -m benchmarks.tasks <task> [options]`.

Every task reads the sandbox's environment (BENCH_* databases) and prints a JSON line with its own
figures; run.py measures the process (wall time, peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy as sa

    from erp_pipelines.core.source import SourceAdapter
    from erp_pipelines.core.spec import TableSpec


WIDE_ENTITY = "bench_item_master"
"""The benchmark-only wide master file (benchmarks/wide.py), imported only by the tasks that read it: its
150-field model costs a process start about 0.3 s that no catalog table's run should be measured with."""


def _as400_env() -> dict[str, str]:
    """The benchmark's stand-in, its wide master file (benchmarks/wide.py) whitelisted next to the catalog's."""
    from erp_sandbox.as400.wide import FILE, LIBRARY

    allowed = ",".join(filter(None, (os.environ.get("AS400_ALLOWED_TABLES", ""), f"{LIBRARY}.{FILE}")))
    return dict(os.environ, AS400_DATABASE=os.environ["BENCH_AS400_DATABASE"], AS400_ALLOWED_TABLES=allowed)


def _spec(entity: str) -> TableSpec:
    """A catalog entity, or the benchmark-only wide master file (`bench_item_master`)."""
    if entity == WIDE_ENTITY:
        from benchmarks.wide import ITEM_MASTER

        return ITEM_MASTER
    from erp_pipelines.catalog import get_spec

    return get_spec(entity)


def engine_sync(entity: str, mode: str, tracking: str = "auto", checks: bool = False) -> dict:
    """This project's engine in-process (no Dagster): one table, one mode; `tracking` is AS400_CHANGE_TRACKING
    (auto: a journaled file through its journal; stamps: by change stamps). `checks`: then the work of the
    asset checks a Dagster run does after it (integrity counts, reconciliation by keys, the position check),
    so that a Dagster run is compared with the same work without Dagster."""
    from erp_pipelines.app_db.engine import app_engine
    from erp_pipelines.engine.sync import run_sync
    from erp_pipelines.sources.as400.adapter import As400Source
    from erp_pipelines.sources.as400.connection import As400Settings

    source = As400Source(As400Settings.from_env(dict(_as400_env(), AS400_CHANGE_TRACKING=tracking)))
    engine = app_engine(os.environ["BENCH_APP_DATABASE_URL"])
    if entity == WIDE_ENTITY:
        from benchmarks.wide import ensure_target

        ensure_target(engine)
    spec = _spec(entity)
    report = run_sync(spec, source, engine, mode=mode)  # type: ignore[arg-type]
    figures = {"engine_seconds": report.duration_seconds, **report.counts()}
    if checks:
        figures |= run_checks(spec, source, engine)
    return figures


def run_checks(spec: TableSpec, source: SourceAdapter, engine: sa.Engine) -> dict:
    """What the asset checks of a sync compute (erp_pipelines/checks.py), through the same engine functions."""
    from erp_pipelines.engine.audit import Audit
    from erp_pipelines.engine.reconcile import live_counts, reconcile

    start = time.perf_counter()
    total, distinct = live_counts(spec, engine)
    reconciliation = reconcile(spec, source, engine)
    with engine.connect() as connection:
        since = Audit(connection, spec).load_watermark()
    source.position_warning(spec, since)
    if not (total == distinct and reconciliation.passed):
        raise RuntimeError(f"{spec.entity}: the checks failed ({total} live, {distinct} distinct, {reconciliation})")
    return {"checks_seconds": time.perf_counter() - start}


def odbc_floor(entity: str) -> dict:
    """Fetching the same rows through the same driver and batch size, and nothing else."""
    import arrow_odbc

    from erp_pipelines.sources.as400 import sql
    from erp_pipelines.sources.as400.connection import As400Settings

    settings = As400Settings.from_env(_as400_env())
    spec = _spec(entity)
    table = sql.QualifiedTable.parse(spec.source_table)
    statement = sql.select_rows(table, spec.source_columns, order_by=spec.source_key_columns)
    rows = 0
    start = time.perf_counter()
    reader = arrow_odbc.read_arrow_batches_from_odbc(
        query=statement.sql,
        connection_string=settings.connection_string(with_credentials=True),
        batch_size=settings.batch_rows,
        max_bytes_per_batch=settings.batch_bytes,
        payload_text_encoding=settings.text_encoding,
    )
    for batch in reader:
        rows += batch.num_rows
    return {"rows": rows, "fetch_seconds": time.perf_counter() - start}


def verify(entity: str) -> dict:
    """`erp-sync verify` in-process (no Dagster): one table compared row by row with its source, after a sync
    (run.py's scenarios leave one behind). Compare its time with `odbc_floor` at the same size."""
    from erp_pipelines.app_db.engine import app_engine
    from erp_pipelines.catalog import get_spec
    from erp_pipelines.engine.verify import verify_table
    from erp_pipelines.sources.as400.adapter import As400Source
    from erp_pipelines.sources.as400.connection import As400Settings

    source = As400Source(As400Settings.from_env(_as400_env()))
    start = time.perf_counter()
    comparison = verify_table(get_spec(entity), source, app_engine(os.environ["BENCH_APP_DATABASE_URL"]))
    return {"verify_seconds": time.perf_counter() - start, "source_records": comparison.source_records,
            "target_live_rows": comparison.target_live_rows, "still_quarantined": comparison.quarantined_in_source,
            "ranges_differing": comparison.ranges_differing, **comparison.counts()}


def copy_floor(csv_path: str) -> dict:
    """COPY of the same rows (as CSV) into an empty table with the target's primary key."""
    import psycopg2

    url = os.environ["BENCH_APP_DATABASE_URL"].replace("+psycopg2", "")
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("drop table if exists bench_copy_floor")
        cursor.execute(
            "create table bench_copy_floor (item_number text, warehouse text, on_hand numeric(11,3), "
            "allocated numeric(11,3), on_order numeric(11,3), unit_of_measure text, bin_location text, "
            "is_lot_controlled boolean, source_changed_at timestamp, primary key (item_number, warehouse))"
        )
        start = time.perf_counter()
        with open(csv_path) as handle:
            cursor.copy_expert("copy bench_copy_floor from stdin with (format csv)", handle)
        connection.commit()
        seconds = time.perf_counter() - start
        cursor.execute("drop table bench_copy_floor")
    return {"copy_seconds": seconds}


def per_record(sample: int) -> dict:
    """The legacy design's approach on a sample: one transaction per record, get then insert/update."""
    import sqlalchemy as sa

    from erp_pipelines.app_db.engine import app_engine
    from erp_pipelines.app_db.tables import table_of
    from erp_pipelines.catalog import get_spec
    from erp_pipelines.engine.validation import decode_and_validate
    from erp_pipelines.sources.as400.adapter import As400Source
    from erp_pipelines.sources.as400.connection import As400Settings

    spec = get_spec("product_stock")
    table = table_of(spec)
    engine = app_engine(os.environ["BENCH_APP_DATABASE_URL"])
    with engine.begin() as connection:
        connection.exec_driver_sql("drop table if exists bench_per_record")
        connection.exec_driver_sql("create table bench_per_record (like product_stock including all)")
    target = sa.Table("bench_per_record", sa.MetaData(), *(sa.Column(c.name, c.type) for c in table.columns))
    source = As400Source(As400Settings.from_env(_as400_env()))
    records: list[dict] = []
    with source.extract(spec, None) as extraction:
        for raw in extraction.batches():
            records.extend(decode_and_validate(spec, raw).good.to_pylist())
            if len(records) >= sample:
                break
    records = records[:sample]
    start = time.perf_counter()
    for record in records:
        with engine.begin() as connection:
            key = sa.and_(target.c.item_number == record["item_number"], target.c.warehouse == record["warehouse"])
            if connection.execute(sa.select(target.c.item_number).where(key)).first() is None:
                connection.execute(sa.insert(target).values(**record))
            else:
                connection.execute(sa.update(target).where(key).values(**record))
    seconds = time.perf_counter() - start
    with engine.begin() as connection:
        connection.exec_driver_sql("drop table bench_per_record")
    return {"sample": len(records), "sample_seconds": seconds}


def validation_cost(entity: str, batches: int) -> dict:
    """Where the row rules' time goes on the first `batches` batches of one entity: the decoders against
    pandera's model (the lever: pandera's cost per column on the wide master file)."""
    import pandas as pd

    from erp_pipelines.engine.validation import RowFailures, apply_model, decode
    from erp_pipelines.sources.as400.adapter import As400Source
    from erp_pipelines.sources.as400.connection import As400Settings

    spec = _spec(entity)
    raws = []
    with As400Source(As400Settings.from_env(_as400_env())).extract(spec, None) as extraction:
        for raw in extraction.batches():
            raws.append(raw)
            if len(raws) >= batches:
                break
    decode_seconds = frame_seconds = pandera_seconds = 0.0
    for raw in raws:
        start = time.perf_counter()
        decoded = decode(spec, raw, RowFailures())
        decoded_at = time.perf_counter()
        frame = decoded.to_pandas(types_mapper=pd.ArrowDtype)
        framed_at = time.perf_counter()
        apply_model(spec, frame, RowFailures())
        decode_seconds += decoded_at - start
        frame_seconds += framed_at - decoded_at
        pandera_seconds += time.perf_counter() - framed_at
    rows = sum(raw.num_rows for raw in raws)
    return {"rows": rows, "columns": len(spec.columns), "decode_seconds": decode_seconds,
            "frame_seconds": frame_seconds, "pandera_seconds": pandera_seconds,
            "pandera_ms_per_column_per_100k_rows": pandera_seconds / len(spec.columns) / rows * 1e8}


def legacy_4d_sync(port: int, entity: str) -> dict:
    """This project's engine on the 4D path: one entity, full (run.py loads erp_category first, untimed)."""
    from erp_pipelines.app_db.engine import app_engine
    from erp_pipelines.catalog import get_spec
    from erp_pipelines.engine.sync import run_sync
    from erp_pipelines.sources.legacy_4d.resource import legacy_4d_resource

    resource = legacy_4d_resource(dict(os.environ, LEGACY_API_PORT=str(port)), secrets_from_env_var=False)
    engine = app_engine(os.environ["BENCH_APP_DATABASE_URL"])
    report = run_sync(get_spec(entity), resource.source(), engine, mode="full", max_rejected_share=1.0)
    return {"engine_seconds": report.duration_seconds, **report.counts()}


def legacy_4d_floor(port: int) -> dict:
    """Fetching the same pages (same attributes, page size, keyset paging) without processing them."""
    from erp_pipelines.catalog import get_spec
    from erp_pipelines.sources.legacy_4d.resource import legacy_4d_resource

    resource = legacy_4d_resource(dict(os.environ, LEGACY_API_PORT=str(port)), secrets_from_env_var=False)
    spec = get_spec("erp_product")
    rows = 0
    start = time.perf_counter()
    with resource.source().session() as client:
        for page in client.iter_pages(spec.source_table, key=spec.source_key_columns[0], fields=spec.source_columns):
            rows += len(page)
    return {"rows": rows, "fetch_seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tasks")
    sub = parser.add_subparsers(dest="task", required=True)
    sync = sub.add_parser("engine_sync")
    sync.add_argument("--entity", default="product_stock")
    sync.add_argument("--mode", default="full")
    sync.add_argument("--tracking", default="auto", choices=["auto", "stamps"])
    sync.add_argument("--checks", action="store_true", help="then the work of a Dagster run's asset checks")
    sub.add_parser("odbc_floor").add_argument("--entity", default="product_stock")
    sub.add_parser("verify").add_argument("--entity", default="product_stock")
    sub.add_parser("copy_floor").add_argument("--csv", required=True)
    cost = sub.add_parser("validation_cost")
    cost.add_argument("--entity", default=WIDE_ENTITY)
    cost.add_argument("--batches", type=int, default=4)
    sub.add_parser("per_record").add_argument("--sample", type=int, default=20_000)
    sub.add_parser("legacy_4d_floor").add_argument("--port", type=int, required=True)
    legacy = sub.add_parser("legacy_4d_sync")
    legacy.add_argument("--port", type=int, required=True)
    legacy.add_argument("--entity", default="erp_product")
    args = parser.parse_args()
    if args.task == "engine_sync":
        result = engine_sync(args.entity, args.mode, args.tracking, args.checks)
    elif args.task == "copy_floor":
        result = copy_floor(args.csv)
    elif args.task == "validation_cost":
        result = validation_cost(args.entity, args.batches)
    elif args.task == "per_record":
        result = per_record(args.sample)
    elif args.task == "legacy_4d_sync":
        result = legacy_4d_sync(args.port, args.entity)
    elif args.task == "legacy_4d_floor":
        result = legacy_4d_floor(args.port)
    elif args.task == "verify":
        result = verify(args.entity)
    else:
        result = odbc_floor(args.entity)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
