"""JSON entities to Arrow batches: relations reduced to keys, mixed types kept as text for the decoders."""

from __future__ import annotations

import pyarrow as pa
import pytest

from erp_pipelines.core.source import STRUCTURED_VALUES
from erp_pipelines.sources.legacy_4d.adapter import deferred_key, records_to_batch


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
    assert batch.column(1).to_pylist() == ['{"a": 1}', '{"b": 2}', None]


def test_objects_and_arrays_are_listed_for_the_validator() -> None:
    batch = records_to_batch([{"Name": "a"}, {"Name": {"en": "b"}}, {"Name": ["c"]}], ["Name"])
    assert batch.column(STRUCTURED_VALUES).to_pylist() == [None, ["Name"], ["Name"]]
    assert STRUCTURED_VALUES not in records_to_batch([{"Name": "a"}], ["Name"]).schema.names


def test_unpaired_surrogates_and_huge_integers_do_not_break_the_batch() -> None:
    """Valid JSON that Arrow cannot hold becomes text: U+FFFD for the surrogate, digits for the integer."""
    batch = records_to_batch([{"Name": "ok", "Ref": 1}, {"Name": "bad \ud800", "Ref": 10**20}], ["Name", "Ref"])
    assert batch.column(0).to_pylist() == ["ok", "bad \ufffd"]
    assert batch.column(1).to_pylist() == ["1", "100000000000000000000"]


def test_relation_attribute_becomes_its_key() -> None:
    batch = records_to_batch(
        [{"customer": {"__deferred": {"uri": "/rest/Customers(3)", "__KEY": "3"}}}, {"customer": None}], ["customer"]
    )
    assert batch.column(0).to_pylist() == ["3", None]
