"""One table, one run: extract → decode → validate → stage → judge the whole read → merge → quarantine → audit.

The whole run is one transaction: the data, the quarantine entries, their resolutions, the deletions and
the watermark commit together or not at all, so a run that dies leaves everything as it was and the next
run redoes it. Every record read is accounted for: processed = created + updated + unchanged + rejected,
checked at the end of every run (a run that cannot account for a record fails, naming it).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from erp_pipelines.app_db.tables import sync_alert, sync_run
from erp_pipelines.core.source import (
    ChangeRange,
    ChangeRangeError,
    Extraction,
    RecordKey,
    SourceAdapter,
    SourceChange,
    Watermark,
)
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.audit import Audit, raw_records, shown_key
from erp_pipelines.engine.drift import check_application_table
from erp_pipelines.engine.loader import RunStage
from erp_pipelines.engine.pipeline import BackgroundWriter, Prefetcher
from erp_pipelines.engine.spill import RawSpill
from erp_pipelines.engine.target import target_of
from erp_pipelines.engine.validation import ValidatedBatch, decode_and_validate, decode_business_key

SyncMode = Literal["incremental", "full", "replay", "backfill"]
SYNC_MODES: tuple[SyncMode, ...] = ("incremental", "full", "replay", "backfill")
DEFAULT_MAX_REJECTED_SHARE = 0.10
REJECTED_SAMPLE_SIZE = 20


def _log(spec: TableSpec) -> logging.Logger:
    """The source system's sync log (`logs/<source>_sync.log` once configured)."""
    return logging.getLogger(f"erp_pipelines.sync.{spec.source_system}")


class AccountingError(RuntimeError):
    """A run could not account for every record it read; nothing of it is committed."""


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
    withdrawn: int = 0
    resolved: int = 0
    batches: int = 0
    duration_seconds: float = 0.0
    watermark_before: Watermark | None = None
    watermark_after: Watermark | None = None
    max_rejected_share: float = DEFAULT_MAX_REJECTED_SHARE
    open_quarantined: int = 0
    table_rejected_share: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    forced_full_reason: str | None = None
    error_message: str | None = None
    rejected_sample: list[dict[str, str]] = field(default_factory=list)
    backfill: ChangeRange | None = None
    """The range a backfill re-read (None in every other mode)."""

    @property
    def rejected_share_exceeded(self) -> bool:
        return self.table_rejected_share > self.max_rejected_share

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
        scope = f" since {self.backfill.since} until {self.backfill.until or 'now'}" if self.backfill else ""
        return f"{self.entity} [{self.mode}{scope}] {self.status}: {counts} in {self.duration_seconds:.2f}s"

    def rejected_share_message(self) -> str:
        return (
            f"{self.entity}: {self.open_quarantined} records are held in quarantine, "
            f"{self.table_rejected_share:.1%} of the table (live rows + quarantined records), above the allowed "
            f"{self.max_rejected_share:.1%}; every valid row was loaded. See `erp-sync errors --entity "
            f"{self.entity}`, fix the source and `replay`, or raise the limit (max_rejected_share)."
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rows_per_second": self.rows_per_second,
                               "rejected_share_exceeded": self.rejected_share_exceeded}


def check_backfill(spec: TableSpec, source: SourceAdapter, mode: str, changes: ChangeRange | None) -> None:
    """A range goes with the backfill mode and the backfill mode with a range, on a table with change markers,
    in a range its source can read; anything else is refused (`ChangeRangeError` naming the setting) before the
    run starts, so a mistyped backfill never turns into another mode's run."""
    if mode != "backfill":
        if changes is not None:
            raise ChangeRangeError("since", f"{spec.entity}: a range (since {changes.since}) is only read by a "
                                            f"backfill, not by a {mode} sync")
        return
    if changes is None or not changes.since.strip():
        raise ChangeRangeError("since", f"{spec.entity}: a backfill needs the start of its range (since)")
    if spec.change_tracking is None:
        raise ChangeRangeError("since", f"{spec.entity}: {spec.source_table} has no change tracking, so no range of "
                                        "changes can be read; run a full sync instead")
    source.check_range(spec, changes)


def run_sync(
    spec: TableSpec,
    source: SourceAdapter,
    engine: sa.Engine,
    *,
    mode: SyncMode = "incremental",
    changes: ChangeRange | None = None,
    dagster_run_id: str | None = None,
    max_rejected_share: float | None = None,
    on_batch: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Syncs one table in one transaction, holding the entity's lock (one sync per entity at a time); a
    backfill (`changes`) re-reads the rows whose change marker lies in the range."""
    check_backfill(spec, source, mode, changes)
    started = time.perf_counter()
    limit = max_rejected_share if max_rejected_share is not None else (
        spec.max_rejected_share if spec.max_rejected_share is not None else DEFAULT_MAX_REJECTED_SHARE
    )
    with engine.connect() as connection:
        audit = Audit(connection, spec)
        audit.lock_entity()
        try:
            audit.close_abandoned_runs()
            watermark = audit.load_watermark()
            effective: SyncMode = mode if mode in ("full", "replay", "backfill") else "incremental"
            if effective == "incremental" and watermark is None:
                effective = "full"
            report = SyncReport(spec.entity, spec.source_system, spec.source_table, spec.target_table, effective,
                                watermark_before=watermark, max_rejected_share=limit, backfill=changes)
            report.sync_run_id = audit.start(effective, dagster_run_id, watermark)
            run = SyncRun(spec, source, connection, audit, report, on_batch)
            try:
                run.execute()
            except Exception as exc:
                run.fail(engine, exc, started)
                raise
            run.finish(started)
            return report
        finally:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                connection.rollback()
                audit.unlock_entity()


@dataclass(frozen=True)
class Strategy:
    """What a sync mode reads and what it may conclude from what it read, each decision named once."""

    name: SyncMode
    reads_everything: bool
    """The whole table: a key not read is gone at the source, an unchanged child is checked for its parent."""
    reads_open_keys_only: bool
    """Only the quarantined records' keys (a replay)."""
    reads_range: bool
    """Only the rows whose change marker lies in the run's range (a backfill): it concludes nothing about the
    rows outside it, and it leaves the watermark where it was, so the next incremental run misses nothing."""
    moves_watermark: bool
    applies_reported_deletions: bool
    """The source's own list of deletions since the watermark (4D `__DeletedRecords`)."""
    may_turn_full: bool
    """The source may say the stored watermark lost its meaning (`full_sync_reason`)."""

    @property
    def sees_every_open_key(self) -> bool:
        """Whether an open quarantine key that was not read is known to be gone at the source."""
        return self.reads_everything or self.reads_open_keys_only


STRATEGIES: dict[str, Strategy] = {
    "incremental": Strategy("incremental", reads_everything=False, reads_open_keys_only=False, reads_range=False,
                            moves_watermark=True, applies_reported_deletions=True, may_turn_full=True),
    "full": Strategy("full", reads_everything=True, reads_open_keys_only=False, reads_range=False,
                     moves_watermark=True, applies_reported_deletions=False, may_turn_full=False),
    "replay": Strategy("replay", reads_everything=False, reads_open_keys_only=True, reads_range=False,
                       moves_watermark=False, applies_reported_deletions=False, may_turn_full=False),
    "backfill": Strategy("backfill", reads_everything=False, reads_open_keys_only=False, reads_range=True,
                         moves_watermark=False, applies_reported_deletions=False, may_turn_full=False),
}


class SyncRun:
    """One run of one table, a method per stage; `execute` runs them in order inside one transaction. What
    the mode changes is its `Strategy`."""

    def __init__(self, spec: TableSpec, source: SourceAdapter, connection: sa.Connection, audit: Audit,
                 report: SyncReport, on_batch: Callable[[SyncReport], None] | None) -> None:
        self.spec = spec
        self.source = source
        self.connection = connection
        self.audit = audit
        self.report = report
        self.on_batch = on_batch
        self.run_id = report.sync_run_id or 0
        self.stage = RunStage(connection, spec, self.run_id)
        self.failures: dict[int, dict[str, str]] = {}
        self.open_keys: set[RecordKey] = set()
        self.open_keys_read: dict[RecordKey, list[int]] = {}
        self.deleted_keys: list[RecordKey] = []
        self.changes: list[SourceChange] = []

    @property
    def strategy(self) -> Strategy:
        return STRATEGIES[self.report.mode]

    def execute(self) -> None:
        if self.strategy.may_turn_full:
            self.force_full_if_needed()
        check_application_table(self.connection, self.spec)
        self.stage.prepare()
        self.open_keys = set(self.audit.open_error_keys())
        if not self.strategy.moves_watermark:
            self.report.watermark_after = self.report.watermark_before
        if self.strategy.reads_open_keys_only and not self.open_keys:
            return
        with RawSpill() as spill:
            self.read(spill)
            outcome = self.stage.merge(full=self.strategy.reads_everything)
            self.report.created, self.report.updated = outcome.created, outcome.updated
            self.report.unchanged, self.report.deleted = outcome.unchanged, outcome.deleted
            self.report.withdrawn = outcome.withdrawn
            for position, rules in outcome.rejected.items():
                self.failures.setdefault(position, {}).update(rules)
            still_rejected = self.quarantine(spill)
        self.resolve(still_rejected)
        self.account()
        self.audit.record_changes(self.run_id, self.changes)
        if self.report.watermark_after is not None and self.strategy.moves_watermark:
            self.audit.save_watermark(self.run_id, self.report.watermark_after)

    def force_full_if_needed(self) -> None:
        """A source that can tell its stored watermark no longer means anything (4D: the global stamp went below
        it after a restored data file) turns this incremental run into a full one: the run says why
        (`sync_run.mode`, `error_message`) and a `sync_alert` is raised, committed before any work."""
        reason = self.source.full_sync_reason(self.spec, self.report.watermark_before)
        if not reason:
            return
        self.report.mode = "full"
        self.report.forced_full_reason = f"full sync forced: {reason}"
        self.connection.execute(sa.update(sync_run).where(sync_run.c.id == self.run_id)
                                .values(mode="full", error_message=self.report.forced_full_reason))
        self.connection.execute(sa.insert(sync_alert).values(
            kind="full_sync_forced", entity=self.spec.entity, message=reason, run_key=f"sync_run:{self.run_id}"))
        self.connection.commit()
        _log(self.spec).warning("%s: %s", self.spec.entity, self.report.forced_full_reason)

    def _extraction(self) -> contextlib.AbstractContextManager[Extraction]:
        if self.strategy.reads_open_keys_only:
            return self.source.extract_keys(self.spec, sorted(self.open_keys, key=repr))
        if self.strategy.reads_range:
            assert self.report.backfill is not None  # check_backfill
            return self.source.extract_range(self.spec, self.report.backfill)
        return self.source.extract(
            self.spec, None if self.strategy.reads_everything else self.report.watermark_before)

    def read(self, spill: RawSpill) -> None:
        """Reads the source: each batch decoded and validated while the next is fetched, then staged."""

        def stage(batch: ValidatedBatch) -> None:
            first = spill.add(batch.raw)
            valid = np.ones(batch.raw.num_rows, dtype=bool)
            valid[batch.failures.rows()] = False
            self.stage.add(batch.decoded, first, valid)
            for row, rules in batch.failures.by_row.items():
                self.failures[first + row] = dict(rules)
            if self.open_keys:
                for row, key in enumerate(self.source.record_keys(self.spec, batch.raw)):
                    if key in self.open_keys:
                        self.open_keys_read.setdefault(key, []).append(first + row)
            self.report.batches += 1
            self.report.processed += batch.raw.num_rows
            if self.on_batch:
                self.on_batch(self.report)

        with self._extraction() as extraction:
            with Prefetcher(extraction.batches()) as fetched, BackgroundWriter(stage) as background:
                for raw in fetched:
                    background.submit(decode_and_validate(self.spec, raw))
            if self.strategy.moves_watermark:
                self.report.watermark_after = extraction.watermark() or self.report.watermark_before
            if self.strategy.applies_reported_deletions:
                self._stage_deletions(extraction.deleted_keys())
            self.report.notes = dict(extraction.notes() or {})
            self.changes = extraction.changes()

    def _stage_deletions(self, deleted: pa.RecordBatch | None) -> None:
        """Keys the source reports deleted since the watermark (4D), decoded like the rows they name."""
        if deleted is None or deleted.num_rows == 0:
            return
        self.deleted_keys = self.source.record_keys(self.spec, deleted)
        self.stage.add_deleted_keys(decode_business_key(self.spec, deleted), "deleted at the source")

    def quarantine(self, spill: RawSpill) -> set[RecordKey]:
        """Stores every rejected record with its rules and raw values; returns their exact keys."""
        positions = sorted(self.failures)
        rejected_keys: set[RecordKey] = set()
        for raw, rows, read_positions in spill.records(positions):
            keys = self.source.record_keys(self.spec, raw.take(pa.array(rows, pa.int64())))
            rules = [self.failures[position] for position in read_positions]
            rejected_keys.update(keys)
            self.report.rejected_new += self.audit.record_errors(self.run_id, keys, raw_records(raw, rows), rules)
            self._sample(keys, rules)
        self.report.rejected = len(positions)
        return rejected_keys

    def _sample(self, keys: list[RecordKey], rules: list[dict[str, str]]) -> None:
        room = REJECTED_SAMPLE_SIZE - len(self.report.rejected_sample)
        self.report.rejected_sample.extend(
            {"source_key": shown_key(key), "reason": "; ".join(failed.values())}
            for key, failed in list(zip(keys, rules, strict=True))[: max(room, 0)]
        )

    def resolve(self, still_rejected: set[RecordKey]) -> None:
        """Closes the open entries whose record loaded or was unchanged (and is not rejected again), and,
        after a full read or a replay, those whose key the source no longer has."""
        positions = [p for ps in self.open_keys_read.values() for p in ps]
        accepted = self.stage.accepted_among(positions)
        closing = {key for key, ps in self.open_keys_read.items() if any(p in accepted for p in ps)}
        if self.strategy.sees_every_open_key:
            closing |= self.open_keys - set(self.open_keys_read)
        closing |= {key for key in self.deleted_keys if key in self.open_keys and key not in self.open_keys_read}
        self.report.resolved = self.audit.resolve_errors(self.run_id, sorted(closing - still_rejected, key=repr))

    def account(self) -> None:
        report = self.report
        accounted = report.created + report.updated + report.unchanged + report.rejected
        if accounted != report.processed:
            raise AccountingError(
                f"{self.spec.entity}: {report.processed} records read but {accounted} accounted for "
                f"(created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
                f"rejected {report.rejected}); nothing was committed"
            )

    def finish(self, started: float) -> None:
        report = self.report
        report.duration_seconds = time.perf_counter() - started
        live_rows = target_of(self.spec).count_live(self.connection)
        report.open_quarantined, report.table_rejected_share = self.audit.open_records_share(live_rows)
        report.status = "PARTIALLY_COMPLETED" if report.rejected or report.open_quarantined else "COMPLETED"
        messages = [report.forced_full_reason, report.rejected_share_message() if report.rejected_share_exceeded
                    else None]
        report.error_message = "; ".join(m for m in messages if m) or None
        self.audit.finish(self.run_id, report.status, report.counts(), watermark_after=report.watermark_after,
                          error_message=report.error_message)
        self.connection.commit()
        _log(self.spec).log(
            logging.WARNING if report.rejected_share_exceeded else logging.INFO,
            "%s (sync_run %s)%s", report.summary(), report.sync_run_id,
            f": {report.error_message}" if report.error_message else "",
        )

    def fail(self, engine: sa.Engine, exc: Exception, started: float) -> None:
        """Records the failure on a fresh connection (the sync's own may be what broke); nothing of the
        run was committed, so its counts are reported as zero."""
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            self.connection.rollback()
        report = self.report
        report.status = "FAILED"
        report.error_message = f"{type(exc).__name__}: {exc}"
        report.duration_seconds = time.perf_counter() - started
        report.created = report.updated = report.unchanged = report.rejected = report.rejected_new = 0
        report.deleted = 0
        with engine.begin() as fresh:
            Audit(fresh, self.spec).finish(self.run_id, "FAILED", report.counts(), error_message=report.error_message)
        _log(self.spec).error("%s: sync_run %s FAILED: %s", self.spec.entity, self.run_id, report.error_message)
