"""The memory system's adapter: its rows come from MEMORY_SOURCE_ROWS ("id:text;id:text"), read in full."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pyarrow as pa

from erp_pipelines.core.source import (
    ChangeRange,
    ChangeRangeError,
    RecordKey,
    SourceChange,
    Watermark,
    exact_keys,
)
from erp_pipelines.core.spec import TableSpec

log = logging.getLogger("erp_pipelines.sync.memory")


class MemoryExtraction:
    def __init__(self, rows: pa.RecordBatch) -> None:
        self.rows = rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        yield self.rows

    def watermark(self) -> Watermark | None:
        return None

    def deleted_keys(self) -> pa.RecordBatch | None:
        return None

    def notes(self) -> dict[str, object]:
        return {}

    def changes(self) -> list[SourceChange]:
        return []


class MemorySource:
    system = "memory"

    def __init__(self, rows: list[tuple[int, str]], token: str) -> None:
        self.rows = rows
        self.token = token

    def _batch(self, keep: set[int] | None = None) -> pa.RecordBatch:
        rows = [row for row in self.rows if keep is None or row[0] in keep]
        return pa.record_batch({"NOTE_ID": pa.array([r[0] for r in rows], pa.int64()),
                                "BODY": pa.array([r[1] for r in rows], pa.string())})

    @contextmanager
    def extract(self, spec: TableSpec, since: Watermark | None) -> Iterator[MemoryExtraction]:
        # Careless on purpose: a source that logs its secret, which the sync log's filter must redact.
        log.info("memory source opened with token %s", self.token)
        yield MemoryExtraction(self._batch())

    @contextmanager
    def extract_keys(self, spec: TableSpec, keys: list[RecordKey]) -> Iterator[MemoryExtraction]:
        yield MemoryExtraction(self._batch({int(key[0]) for key in keys}))

    def check_range(self, spec: TableSpec, changes: ChangeRange) -> None:
        raise ChangeRangeError("since", f"{spec.entity}: the memory system keeps no change markers to backfill by")

    @contextmanager
    def extract_range(self, spec: TableSpec, changes: ChangeRange) -> Iterator[MemoryExtraction]:
        self.check_range(spec, changes)
        yield MemoryExtraction(self._batch())

    def record_keys(self, spec: TableSpec, raw: pa.RecordBatch) -> list[RecordKey]:
        return exact_keys(raw, spec.source_key_columns, trailing_blanks_significant=True)

    def full_sync_reason(self, spec: TableSpec, since: Watermark | None) -> str | None:
        return None

    def position_warning(self, spec: TableSpec, since: Watermark | None) -> str | None:
        return None

    def count_rows(self, spec: TableSpec) -> int:
        return len(self.rows)

    def change_markers(self, specs: list[TableSpec], previous: Mapping[str, str] | None = None) -> dict[str, str]:
        digest = hashlib.sha256(repr(self.rows).encode()).hexdigest()  # the same in every process
        return {spec.entity: digest for spec in specs}
