"""JSON entities to Arrow batches: relations reduced to keys, mixed types kept as text for the decoders."""

from __future__ import annotations

import pyarrow as pa
import pytest

from erp_pipelines.sources.legacy_4d.adapter import records_to_batch
from erp_pipelines.sources.legacy_4d.client import deferred_key


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"__deferred": {"uri": "/rest/Customers(3)", "__KEY": "3"}}, "3"), (None, None), (7, 7), ("x", "x"),
     ({"__deferred": {"uri": "/rest/Company(1)/staff?$expand=staff"}}, None)],
)
def test_deferred_key(value: object, expected: object) -> None:
    assert deferred_key(value) == expected


def test_batch_types_follow_json() -> None:
    batch = records_to_batch(
        [{"ID": 1, "Price": 19.99, "Name": "a", "Paid": True}, {"ID": 2, "Price": None, "Name": None, "Paid": False}],
        ["ID", "Price", "Name", "Paid"],
    )
    assert batch.schema.types == [pa.int64(), pa.float64(), pa.string(), pa.bool_()]


def test_mixed_or_nested_values_become_text() -> None:
    batch = records_to_batch(
        [{"Price": 10, "Tags": {"a": 1}}, {"Price": "ten", "Tags": {"b": 2}}, {"Price": None}], ["Price", "Tags"]
    )
    assert batch.column(0).to_pylist() == ["10", "ten", None]
    assert batch.column(1).type == pa.string()


def test_relation_attribute_becomes_its_key() -> None:
    batch = records_to_batch(
        [{"customer": {"__deferred": {"uri": "/rest/Customers(3)", "__KEY": "3"}}}, {"customer": None}], ["customer"]
    )
    assert batch.column(0).to_pylist() == ["3", None]
