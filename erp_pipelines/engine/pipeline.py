"""Overlaps the three stages of a sync: the next batch is fetched from the source while the current one
is decoded and validated, and the previous one loads.

One background thread reads the source (`Prefetcher`), one owns the database work (`BackgroundWriter`);
queues of one batch bound memory. An error on any side stops the others and is raised in the caller,
never swallowed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
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


class Prefetcher(Generic[Item]):
    """Iterates `items` on a background thread, one item ahead of the consumer.

    Fetching waits on the network or the driver (the GIL is released there), so the next batch arrives
    while the current one is processed. Leaving the context stops the reader and waits for it, so the
    source connection is never closed under a fetch in flight.
    """

    def __init__(self, items: Iterable[Item], depth: int = 1) -> None:
        self._items = items
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="erp-reader", daemon=True)

    def _run(self) -> None:
        try:
            for item in self._items:
                if self._stop.is_set():
                    return
                self._queue.put(item)
        except BaseException as exc:
            self._error = exc
        finally:
            self._queue.put(_DONE)

    def __iter__(self) -> Iterator[Item]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                if self._error is not None:
                    raise self._error
                return
            yield item  # type: ignore[misc]

    def __enter__(self) -> Prefetcher[Item]:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
        self._thread.join()
