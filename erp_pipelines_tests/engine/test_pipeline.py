"""The stage overlap: batches keep their order, errors surface in the caller, and stopping early stops
the reader before the source is closed."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from erp_pipelines.engine.pipeline import BackgroundWriter, Prefetcher


class SourceFailedError(Exception):
    """What the test source raises part-way."""


def _numbers(count: int, fail_at: int | None = None, log: list[int] | None = None) -> Iterator[int]:
    for number in range(count):
        if number == fail_at:
            raise SourceFailedError(f"source failed at {number}")
        if log is not None:
            log.append(number)
        yield number


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_prefetcher_keeps_order(depth: int) -> None:
    with Prefetcher(_numbers(200), depth=depth) as fetched:
        assert list(fetched) == list(range(200))


def test_prefetcher_reads_on_another_thread() -> None:
    threads: list[str] = []

    def source() -> Iterator[int]:
        threads.append(threading.current_thread().name)
        yield 1

    with Prefetcher(source()) as fetched:
        assert list(fetched) == [1]
    assert threads == ["erp-reader"]


def test_source_error_reaches_the_consumer_after_the_good_items() -> None:
    seen: list[int] = []
    with pytest.raises(SourceFailedError, match="source failed at 3"), Prefetcher(_numbers(10, fail_at=3)) as fetched:
        seen.extend(fetched)
    assert seen == [0, 1, 2]


def test_stopping_early_stops_the_reader_within_its_depth() -> None:
    produced: list[int] = []
    with Prefetcher(_numbers(1_000, log=produced), depth=1) as fetched:
        for number in fetched:
            if number == 5:
                break
    count = len(produced)
    assert count <= 8  # the consumed six, one queued, one in hand
    assert not any(thread.name == "erp-reader" for thread in threading.enumerate())


def test_consumer_error_stops_the_reader() -> None:
    produced: list[int] = []

    def consume_until_three() -> None:
        with Prefetcher(_numbers(1_000, log=produced)) as fetched:
            for number in fetched:
                if number == 3:
                    raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        consume_until_three()
    assert len(produced) <= 6
    assert not any(thread.name == "erp-reader" for thread in threading.enumerate())


def test_background_writer_writes_in_order_and_raises_the_first_failure() -> None:
    written: list[int] = []

    def write(item: int) -> None:
        if item == 4:
            raise ValueError("cannot write 4")
        written.append(item)

    def submit_all() -> None:
        with BackgroundWriter(write) as background:
            for item in range(100):
                background.submit(item)

    with pytest.raises(ValueError, match="cannot write 4"):
        submit_all()
    assert written == [0, 1, 2, 3]
