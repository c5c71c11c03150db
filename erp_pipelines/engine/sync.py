"""One table, one run: extract → decode → validate → quarantine → load → audit."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from erp_pipelines.app_db.tables import sync_alert, sync_run
from erp_pipelines.catalog.spec import TableSpec
from erp_pipelines.engine.audit import Audit, source_keys
from erp_pipelines.engine.loader import TargetWriter
from erp_pipelines.engine.pipeline import BackgroundWriter, Prefetcher
from erp_pipelines.engine.validation import ValidatedBatch, decode_and_validate
from erp_pipelines.sources.base import SourceAdapter, Watermark

SyncMode = Literal["incremental", "full", "replay"]
DEFAULT_MAX_REJECTED_SHARE = 0.10
REJECTED_SAMPLE_SIZE = 20

def _log(spec: TableSpec) -> logging.Logger:
    """The source system's sync log (`logs/<source>_sync.log` once configured)."""
    return logging.getLogger(f"erp_pipelines.sync.{spec.source_system}")


class RejectedShareExceededError(RuntimeError):
    """More rows were rejected than the configured share allows; the run is marked FAILED."""

    def __init__(self, report: SyncReport) -> None:
        self.report = report
        super().__init__(
            f"{report.entity}: {report.rejected_new} of {report.processed} rows newly rejected "
            f"({report.rejected_share:.1%}), above the allowed {report.max_rejected_share:.1%}; "
            f"the {report.processed - report.rejected} valid rows were loaded, the rejected ones are in "
            f"sync_error (sync_run {report.sync_run_id}). Fix the source or raise the limit."
        )


@dataclass
class SyncReport:
    """Exactly what one run did to one table."""

    entity: str
    source_system: str
    source_table: str
    target_table: str
    mode: str
    status: str = "RUNNING"
    sync_run_id: int | None = None
    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: int = 0
    rejected_new: int = 0
    batches: int = 0
    atomic: bool = False
    duration_seconds: float = 0.0
    watermark_before: Watermark | None = None
    watermark_after: Watermark | None = None
    max_rejected_share: float = DEFAULT_MAX_REJECTED_SHARE
    error_message: str | None = None
    rejected_sample: list[dict[str, str]] = field(default_factory=list)

    @property
    def rejected_share(self) -> float:
        """Share of newly rejected rows; records already held in quarantine and re-read unchanged
        (overlap window, full re-reads) do not count again against the limit."""
        return self.rejected_new / self.processed if self.processed else 0.0

    @property
    def rows_per_second(self) -> float:
        return self.processed / self.duration_seconds if self.duration_seconds else 0.0

    def counts(self) -> dict[str, int]:
        return {
            "processed": self.processed,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "rejected": self.rejected,
        }

    def summary(self) -> str:
        counts = ", ".join(f"{name}={value}" for name, value in self.counts().items())
        return f"{self.entity} [{self.mode}] {self.status}: {counts} in {self.duration_seconds:.2f}s"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rows_per_second": self.rows_per_second}


def _keys_with_values(spec: TableSpec, decoded: pa.Table) -> pa.Table:
    keys = decoded.select(list(spec.business_key))
    valid = functools.reduce(pc.and_, (pc.is_valid(column) for column in keys.columns))
    return keys.filter(valid)


def run_sync(
    spec: TableSpec,
    source: SourceAdapter,
    engine: sa.Engine,
    *,
    mode: SyncMode = "incremental",
    dagster_run_id: str | None = None,
    max_rejected_share: float | None = None,
    on_batch: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Syncs one table. Each batch commits with its quarantine rows; the watermark and the deletions
    commit last, so a crash leaves the watermark behind the data and the next run redoes the rest."""
    started = time.perf_counter()
    limit = max_rejected_share if max_rejected_share is not None else (
        spec.max_rejected_share if spec.max_rejected_share is not None else DEFAULT_MAX_REJECTED_SHARE
    )
    with engine.connect() as connection:
        audit = Audit(connection, spec)
        audit.lock_entity()
        try:
            return _run_locked(spec, source, engine, connection, audit, mode, dagster_run_id, limit, started, on_batch)
        finally:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                connection.rollback()
                audit.unlock_entity()


def _run_locked(
    spec: TableSpec,
    source: SourceAdapter,
    engine: sa.Engine,
    connection: sa.Connection,
    audit: Audit,
    mode: SyncMode,
    dagster_run_id: str | None,
    limit: float,
    started: float,
    on_batch: Callable[[SyncReport], None] | None,
) -> SyncReport:
    """The run itself, while this process holds the entity's lock."""
    audit.close_abandoned_runs()
    watermark = audit.load_watermark()
    effective: SyncMode = mode if mode in ("full", "replay") else "incremental"
    if effective == "incremental" and watermark is None:
        effective = "full"
    report = SyncReport(spec.entity, spec.source_system, spec.source_table, spec.target_table, effective,
                        watermark_before=watermark, max_rejected_share=limit)
    report.sync_run_id = audit.start(effective, dagster_run_id, watermark)
    _log(spec).debug("%s: %s sync started (sync_run %s)", spec.entity, effective, report.sync_run_id)
    try:
        _load(spec, source, connection, audit, report, watermark, on_batch)
    except Exception as exc:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            connection.rollback()
        report.status = "FAILED"
        report.error_message = f"{type(exc).__name__}: {exc}"
        report.duration_seconds = time.perf_counter() - started
        if report.atomic:  # an initial load is one transaction: nothing of it was committed
            report.created = report.updated = report.unchanged = report.rejected = report.rejected_new = 0
        with engine.begin() as fresh:  # the sync's own connection may be the thing that broke
            Audit(fresh, spec).finish(
                report.sync_run_id, "FAILED", report.counts(), error_message=report.error_message
            )
        _log(spec).error("%s: sync_run %s FAILED: %s", spec.entity, report.sync_run_id, report.error_message)
        raise
    report.duration_seconds = time.perf_counter() - started
    if report.rejected_share > limit:
        report.status = "FAILED"
        report.error_message = str(RejectedShareExceededError(report))
    else:
        report.status = "PARTIALLY_COMPLETED" if report.rejected else "COMPLETED"
    audit.finish(
        report.sync_run_id,
        report.status,
        report.counts(),
        watermark_after=report.watermark_after,
        error_message=report.error_message,
    )
    connection.commit()
    _log(spec).log(
        logging.ERROR if report.status == "FAILED" else logging.INFO,
        "%s (sync_run %s)%s",
        report.summary(),
        report.sync_run_id,
        f": {report.error_message}" if report.error_message else "",
    )
    if report.status == "FAILED":
        raise RejectedShareExceededError(report)
    return report


def _force_full_sync_if_needed(
    spec: TableSpec, source: SourceAdapter, connection: sa.Connection, report: SyncReport, watermark: Watermark,
) -> None:
    """A source that can tell its stored watermark no longer means anything (4D: the global stamp went below it
    after a restored data file) turns this incremental run into a full one: the run says why (sync_run.mode and
    error_message) and a sync_alert is raised. A failure to ask fails the run, recorded like any other."""
    check = getattr(source, "full_sync_reason", None)
    reason = check(spec, watermark) if check is not None else None
    if not reason:
        return
    report.mode = "full"
    report.error_message = f"full sync forced: {reason}"
    connection.execute(sa.update(sync_run).where(sync_run.c.id == report.sync_run_id)
                       .values(mode="full", error_message=report.error_message))
    connection.execute(sa.insert(sync_alert).values(kind="full_sync_forced", entity=spec.entity, message=reason,
                                                    run_key=f"sync_run:{report.sync_run_id}"))
    connection.commit()
    _log(spec).warning("%s: %s", spec.entity, report.error_message)


def _load(
    spec: TableSpec,
    source: SourceAdapter,
    connection: sa.Connection,
    audit: Audit,
    report: SyncReport,
    watermark: Watermark | None,
    on_batch: Callable[[SyncReport], None] | None,
) -> None:
    if report.mode == "incremental" and watermark is not None:
        _force_full_sync_if_needed(spec, source, connection, report, watermark)
    full, replay = report.mode == "full", report.mode == "replay"
    run_id = report.sync_run_id or 0
    writer = TargetWriter(connection, spec, run_id)
    writer.prepare(track_seen_keys=full)
    report.atomic = writer.single_transaction
    resolve = audit.has_open_errors()
    replayed: set[str] = set()
    if replay:
        keys = audit.open_error_keys()
        report.watermark_after = watermark
        if not keys:
            return
        extracting = source.extract_keys(spec, keys)
    else:
        extracting = source.extract(spec, None if full else watermark)

    def write(batch: ValidatedBatch) -> None:
        """The database side of one batch; runs on the writer thread, commits with its quarantine rows."""
        if writer.tracks_seen_keys:
            writer.remember_keys(_keys_with_values(spec, batch.decoded))
        outcome = writer.write(batch.good, batch.passed)
        rejected = {**{row: dict(rules) for row, rules in batch.failures.by_row.items()}, **outcome.rejected}
        rows = sorted(rejected)
        report.rejected_new += audit.record_errors(run_id, batch.raw, rows, [rejected[row] for row in rows])
        if resolve:
            batch_keys = source_keys(spec, batch.raw)
            passed = np.setdiff1d(batch.passed, np.array(sorted(outcome.rejected), dtype=np.int64))
            loaded = batch_keys.take(pa.array(passed, pa.int64()))
            if rows:  # a key also rejected in this batch (a duplicate of a loaded row) is still a problem
                again = batch_keys.take(pa.array(rows, pa.int64()))
                loaded = loaded.filter(pc.invert(pc.is_in(loaded, value_set=again)))
            audit.resolve_errors(run_id, loaded.to_pylist())
            if replay:
                replayed.update(batch_keys.to_pylist())
        if not writer.single_transaction:
            connection.commit()
        report.batches += 1
        report.processed += batch.raw.num_rows
        report.created += outcome.created
        report.updated += outcome.updated
        report.unchanged += outcome.unchanged
        report.rejected += len(rows)
        _sample(report, spec, batch.raw, rows, rejected)
        if on_batch:
            on_batch(report)

    with extracting as extraction:
        with Prefetcher(extraction.batches()) as fetched, BackgroundWriter(write) as background:
            for raw in fetched:
                background.submit(decode_and_validate(spec, raw))
        writer.finish()
        if replay:
            # A quarantined record the source no longer has under its key (deleted, or its key was the fault
            # and got corrected) has nothing left to load: its entry is closed by this run.
            audit.resolve_errors(run_id, sorted(set(keys) - replayed))
            connection.commit()
            return
        deleted_keys = extraction.deleted_keys()
        if full and spec.distinct_values_of is None:  # a derived reference table is get-or-create: never deleted
            report.deleted = writer.soft_delete_missing()
        elif deleted_keys is not None and deleted_keys.num_rows:
            decoded = pa.Table.from_arrays(
                [spec.column(c).decoder([deleted_keys.column(n) for n in spec.column(c).source]).values
                 for c in spec.business_key],
                names=list(spec.business_key),
            )
            report.deleted = writer.soft_delete_keys(decoded)
        report.watermark_after = extraction.watermark() or watermark
    if report.watermark_after is not None:
        audit.save_watermark(run_id, report.watermark_after)


def _sample(
    report: SyncReport, spec: TableSpec, raw: pa.RecordBatch, rows: list[int], rejected: dict[int, dict[str, str]]
) -> None:
    room = REJECTED_SAMPLE_SIZE - len(report.rejected_sample)
    if room <= 0 or not rows:
        return
    chosen = rows[:room]
    keys = source_keys(spec, raw.take(pa.array(chosen, pa.int64()))).to_pylist()
    report.rejected_sample.extend(
        {"source_key": key, "reason": "; ".join(rejected[row].values())} for key, row in zip(keys, chosen, strict=True)
    )
