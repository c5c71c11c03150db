"""4D decoders: REST dates and times; bad values flagged rather than raised."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from erp_pipelines.sources.legacy_4d.decoders import FourDDate, FourDTime


@pytest.mark.parametrize(
    ("raw", "expected", "invalid"),
    [("6!3!2017", dt.date(2017, 3, 6), False), ("31!12!1999", dt.date(1999, 12, 31), False),
     ("29!2!2024", dt.date(2024, 2, 29), False), ("06!03!2017", dt.date(2017, 3, 6), False),
     ("0!0!0", None, False), ("00!00!0000", None, False), ("", None, False), (None, None, False),
     ("31!2!2020", None, True), ("29!2!2023", None, True), ("2020-01-01", None, True), ("1!13!2020", None, True),
     ("6/3/2017", None, True), ("6!3", None, True), ("abc", None, True), ("a!b!c", None, True)],
)
def test_4d_date(raw: str | None, expected: dt.date | None, invalid: bool) -> None:
    decoded = FourDDate()([pa.array([raw], pa.string())])
    assert decoded.values.to_pylist() == [expected]
    assert bool(decoded.invalid_rows()[0]) is invalid
    assert not invalid or "4D date" in decoded.reason


@pytest.mark.parametrize(
    ("raw", "expected", "invalid"),
    [(0, dt.time(0), False), (45_296_000, dt.time(12, 34, 56), False), (36_730_000, dt.time(10, 12, 10), False),
     (86_399_999, dt.time(23, 59, 59, 999_000), False), ("1500", dt.time(0, 0, 1, 500_000), False),
     (86_400_000, None, True), (-5, None, True), (-1, None, True), (1.5, None, True), ("noon", None, True),
     (True, None, True)],
)
def test_4d_time(raw: object, expected: dt.time | None, invalid: bool) -> None:
    """Milliseconds as JSON sends them: a number, or text where the server sends one (never a fraction)."""
    decoded = FourDTime()([pa.array([raw])])
    assert decoded.values.to_pylist() == [expected]
    assert bool(decoded.invalid_rows()[0]) is invalid
