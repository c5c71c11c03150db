"""A quarantined record is the same record however a batch typed its columns (found by the 4D model-based test:
a price read as a float in one batch, as a decimal or as text in another, was quarantined twice)."""

from __future__ import annotations

import decimal

import pytest

from erp_pipelines.engine.audit import canonical_record


@pytest.mark.parametrize("typed", [1e15, decimal.Decimal("1000000000000000.0000"), "1E+15", "1000000000000000.0",
                                   1_000_000_000_000_000])
def test_a_number_compares_by_value_whatever_its_type(typed: object) -> None:
    assert canonical_record({"Price": typed}) == canonical_record({"Price": "1000000000000000"})


def test_text_booleans_and_other_values_keep_their_text() -> None:
    assert canonical_record({"Flag": True}) == canonical_record({"Flag": "True"})
    assert canonical_record({"Name": "ABC"}) != canonical_record({"Name": "ABD"})
    assert canonical_record({"Price": 12.5}) != canonical_record({"Price": 12.51})
    assert canonical_record({"Price": float("nan")}) == canonical_record({"Price": "nan"})
