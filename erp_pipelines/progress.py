"""Progress of a running table sync: rows read, rate and elapsed time, while a long sync is still under way.

A table sync is one transaction that reports its counts only at its end, so a 5M-row run would otherwise say
nothing for many minutes. The engine calls `on_batch` after each staged batch; `ProgressReporter` turns that
into a progress event in the Dagster run log every `ERP_PROGRESS_EVERY_BATCHES` batches, and into a record on
the `erp_pipelines.progress` Python logger at every batch, which `erp-sync` shows on stderr (`ProgressDisplay`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TextIO

from erp_pipelines.core.source import number_setting
from erp_pipelines.engine.sync import SyncReport

PROGRESS_LOGGER = "erp_pipelines.progress"
EVERY_BATCHES_SETTING = "ERP_PROGRESS_EVERY_BATCHES"
DEFAULT_EVERY_BATCHES = "10"
INTERVAL_SETTING = "ERP_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_SECONDS = "10"
TERMINAL_REFRESH_SECONDS = 0.2
"""How often the refreshing line on a terminal is redrawn (every batch would flicker on fast tables)."""


@dataclass(frozen=True)
class Progress:
    """Where one table's sync stands after a batch."""

    entity: str
    mode: str
    rows: int
    batches: int
    elapsed_seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def line(self) -> str:
        elapsed = dt.timedelta(seconds=round(self.elapsed_seconds))
        return (f"{self.entity} [{self.mode}]: {self.rows:,} rows read in {self.batches:,} batch(es), "
                f"{self.rows_per_second:,.0f} rows/s, {elapsed} elapsed")


class RunLog(Protocol):
    def info(self, msg: str) -> object: ...


class ProgressReporter:
    """The engine's `on_batch` callback for one asset run (called on the engine's writer thread)."""

    def __init__(self, run_log: RunLog, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.run_log = run_log
        self.every_batches = int(number_setting(env, EVERY_BATCHES_SETTING, DEFAULT_EVERY_BATCHES) or 1)
        self.started = time.monotonic()
        self.logger = logging.getLogger(PROGRESS_LOGGER)

    def __call__(self, report: SyncReport) -> None:
        progress = Progress(report.entity, report.mode, report.processed, report.batches,
                            time.monotonic() - self.started)
        if report.batches % self.every_batches == 0:
            self.run_log.info(f"progress: {progress.line()}")
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(progress.line(), extra={"progress": progress})


class ProgressDisplay(logging.Handler):
    """Shows the progress records on a stream: on a terminal one line per table, redrawn in place; otherwise
    (a log file, a pipe, CI) a plain line for a table's first batch and then at most every `interval` seconds."""

    def __init__(self, stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> None:
        super().__init__(logging.INFO)
        env = os.environ if env is None else env
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.interval = float(number_setting(env, INTERVAL_SETTING, DEFAULT_INTERVAL_SECONDS, float) or 0)
        self.entity: str | None = None
        self.shown_at = 0.0
        self.line_open = False

    def emit(self, record: logging.LogRecord) -> None:
        progress = getattr(record, "progress", None)
        if not isinstance(progress, Progress):
            return
        now = time.monotonic()
        first = progress.entity != self.entity
        due = now - self.shown_at >= (TERMINAL_REFRESH_SECONDS if self.terminal else self.interval)
        if not (first or due):
            return
        if self.terminal:
            self.stream.write(("\n" if first and self.line_open else "\r\x1b[K") + progress.line())
            self.line_open = True
        else:
            self.stream.write(progress.line() + "\n")
        self.stream.flush()
        self.entity, self.shown_at = progress.entity, now

    def close(self) -> None:
        """Ends the refreshing line, so what is printed next starts on a line of its own."""
        if self.line_open:
            self.stream.write("\n")
            self.stream.flush()
            self.line_open = False
        super().close()


@contextmanager
def showing_progress(stream: TextIO | None = None) -> Iterator[ProgressDisplay]:
    """Progress records shown on `stream` (stderr) while the block runs: the CLI's syncs."""
    display = ProgressDisplay(stream)
    logger = logging.getLogger(PROGRESS_LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(display)
    try:
        yield display
    finally:
        logger.removeHandler(display)
        logger.setLevel(logging.NOTSET)
        display.close()
