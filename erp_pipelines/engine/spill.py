"""The raw batches of one read, kept on local disk until the run knows which records it rejects.

Run-level rules (a duplicate key in a later batch, a unique value, a parent) reject records only once the
whole read is in; their raw records must then go to the quarantine exactly as the source sent them. Each
batch is written as it arrives in Arrow's IPC format (batches of one read may differ in inferred types, so
one file each) and read back memory-mapped, only for the batches that hold rejected rows.
"""

from __future__ import annotations

import bisect
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import pyarrow as pa


class RawSpill:
    """Raw batches by read position; a context manager that removes its files on exit."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="erp-sync-raw-")
        self._starts: list[int] = []
        self.rows = 0

    def __enter__(self) -> RawSpill:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._folder.cleanup()

    def _path(self, index: int) -> Path:
        return Path(self._folder.name) / f"batch-{index:07d}.arrow"

    def add(self, raw: pa.RecordBatch) -> int:
        """Keeps a batch; returns the read position of its first row."""
        first = self.rows
        with pa.OSFile(str(self._path(len(self._starts))), "wb") as sink, pa.ipc.new_stream(sink, raw.schema) as out:
            out.write_batch(raw)
        self._starts.append(first)
        self.rows += raw.num_rows
        return first

    def records(self, positions: Sequence[int]) -> Iterator[tuple[pa.RecordBatch, list[int], list[int]]]:
        """For read positions: (raw batch, rows within it, their read positions), one batch at a time."""
        grouped: dict[int, list[int]] = {}
        for position in sorted(positions):
            grouped.setdefault(bisect.bisect_right(self._starts, position) - 1, []).append(position)
        for index, chosen in sorted(grouped.items()):
            with pa.memory_map(str(self._path(index))) as source:
                raw = pa.ipc.open_stream(source).read_next_batch()
                yield raw, [position - self._starts[index] for position in chosen], chosen
