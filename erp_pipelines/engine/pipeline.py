"""Overlaps reading and writing: the source is fetched and validated while the previous batch loads.

One background thread owns the database work; a queue of one batch bounds memory. An error on either
side stops both and is raised in the caller, never swallowed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

Item = TypeVar("Item")
_DONE = object()


class BackgroundWriter(Generic[Item]):
    """Runs `write(item)` for each submitted item, in order, on one background thread."""

    def __init__(self, write: Callable[[Item], None], depth: int = 1) -> None:
        self._write = write
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="erp-writer", daemon=True)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._write(item)  # type: ignore[arg-type]
                except BaseException as exc:
                    self._error = exc

    def submit(self, item: Item) -> None:
        """Queues an item; raises at once if an earlier write failed."""
        self._raise_if_failed()
        self._queue.put(item)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundWriter[Item]:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._queue.put(_DONE)
        self._thread.join()
        if exc is None:
            self._raise_if_failed()
