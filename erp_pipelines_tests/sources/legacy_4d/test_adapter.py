"""JSON entities to Arrow batches: relations reduced to keys, mixed types kept as text for the decoders."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erp_pipelines.core.source import STRUCTURED_VALUES
from erp_pipelines.sources.legacy_4d.adapter import coalesce_batches, deferred_key, records_to_batch


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


JSON_VALUES = st.one_of(st.none(), st.integers(-(2**70), 2**70), st.booleans(), st.text(max_size=4),
                        st.floats(allow_nan=False), st.dictionaries(st.just("a"), st.integers(0, 3), max_size=1))
PAGES = st.lists(st.lists(st.fixed_dictionaries({}, optional={"A": JSON_VALUES, "B": JSON_VALUES}), min_size=1,
                          max_size=6), max_size=8)


@settings(max_examples=300, deadline=None)
@given(pages=PAGES, rows=st.integers(1, 12), uniform=st.booleans())
def test_coalesced_pages_keep_every_row_and_value_of_their_own_conversion(
    pages: list[list[dict]], rows: int, uniform: bool
) -> None:
    """Joining converted pages changes no value: each page's rows read back as `records_to_batch` made them,
    in order; pages are joined only into batches of one type per column, and a batch passes `rows` by at most
    the page that reached it. `uniform` makes most pages share types (A an integer or absent, B text)."""
    if uniform:
        pages = [[{"A": i, "B": str(i)} if i % 3 else {"B": None} for i in range(len(page))] for page in pages]
    converted = [records_to_batch(page, ["A", "B"]) for page in pages]
    joined = list(coalesce_batches(iter(converted), rows))
    expected = [row for batch in converted for row in batch.to_pylist()]
    assert [row for batch in joined for row in batch.to_pylist()] == expected
    largest_page = max((batch.num_rows for batch in converted), default=0)
    assert all(batch.num_rows < rows + largest_page for batch in joined)
    assert len(joined) <= len(converted)


def test_pages_of_other_types_are_not_joined_and_empty_columns_take_the_others_type() -> None:
    text = records_to_batch([{"A": 1}, {"A": "one"}], ["A"])
    numbers = records_to_batch([{"A": 2}], ["A"])
    empty = records_to_batch([{"A": None}], ["A"])
    joined = list(coalesce_batches(iter([numbers, empty, numbers, text, numbers]), 100))
    assert [batch.schema.types for batch in joined] == [[pa.int64()], [pa.string()], [pa.int64()]]
    assert [batch.column(0).to_pylist() for batch in joined] == [[2, None, 2], ["1", "one"], [2]]
