"""Generic decoders: text, decimals, flags, booleans, integers; bad values flagged rather than raised."""

from __future__ import annotations

import decimal

import pyarrow as pa
import pytest

from erp_pipelines.core.decoders import Boolean, Decimal, Flag, Integer, TrimmedText


@pytest.mark.parametrize(
    ("raw", "blank_as_null", "expected"),
    [("ABC   ", False, "ABC"), ("      ", False, ""), ("      ", True, None), ("  A B ", False, "  A B"),
     (None, False, None)],
)
def test_trimmed_text(raw: str | None, blank_as_null: bool, expected: str | None) -> None:
    assert TrimmedText(blank_as_null)([pa.array([raw], pa.string())]).values.to_pylist() == [expected]


@pytest.mark.parametrize(
    ("raw", "expected", "invalid"),
    [("1.5", decimal.Decimal("1.500"), False), ("-2", decimal.Decimal("-2.000"), False),
     ("abc", None, True), ("NaN", None, True), ("inf", None, True), ("1.0001", None, True),
     ("123456789", None, True), (None, None, False)],
)
def test_decimal_text(raw: str | None, expected: decimal.Decimal | None, invalid: bool) -> None:
    decoded = Decimal(11, 3)([pa.array(["0", raw], pa.string())])
    assert decoded.values.to_pylist()[1] == expected
    assert bool(decoded.invalid_rows()[1]) is invalid
    assert not decoded.invalid_rows()[0]


def test_decimal_from_floats_is_exact() -> None:
    decoded = Decimal(12, 4)([pa.array([19.99, 0.1, float("nan"), float("inf")], pa.float64())])
    assert decoded.values.to_pylist()[:2] == [decimal.Decimal("19.9900"), decimal.Decimal("0.1000")]
    assert decoded.invalid_rows().tolist() == [False, False, True, True]


def test_flag_rejects_unknown_values() -> None:
    decoded = Flag(["Y"], ["N"])([pa.array(["Y", "N ", "X", None])])
    assert decoded.values.to_pylist() == [True, False, None, None]
    assert decoded.invalid_rows().tolist() == [False, False, True, True]


def test_boolean_and_integer() -> None:
    assert Boolean()([pa.array([True, False])]).values.to_pylist() == [True, False]
    decoded = Integer()([pa.array(["12", "x", None])])
    assert decoded.values.to_pylist() == [12, None, None]
    assert decoded.invalid_rows().tolist() == [False, True, False]


def test_boolean_and_integer_name_their_own_reason() -> None:
    assert Boolean()([pa.array(["yes"])]).reason == "is not a boolean"
    decoded = Integer()([pa.array([" 7 ", "99999999999999999999", "-3"])])  # beyond 64 bits: a reject, no crash
    assert decoded.values.to_pylist() == [7, None, -3]
    assert decoded.invalid_rows().tolist() == [False, True, False]


def test_binary_where_text_is_expected_is_rejected_not_a_crash() -> None:
    """FOR BIT DATA bytes reaching a text decoder (the catalog check stops such a spec before reading)."""
    raw = pa.array(["AB".encode("cp037"), None], pa.binary(2))
    for decoder in (TrimmedText(), Flag(["Y"], ["N"])):
        decoded = decoder([raw])
        assert decoded.invalid_rows().tolist() == [True, False]
        assert "FOR BIT DATA, CCSID 65535" in decoded.reason
