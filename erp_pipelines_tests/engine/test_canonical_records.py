"""A quarantined record is the same record however a batch typed its columns (found by the 4D model-based test:
a price read as a float in one batch, as a decimal or as text in another, was quarantined twice)."""

from __future__ import annotations

import decimal
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from erp_pipelines.engine.audit import canonical_record, key_json, keys_json


@pytest.mark.parametrize("typed", [1e15, decimal.Decimal("1000000000000000.0000"), "1E+15", "1000000000000000.0",
                                   1_000_000_000_000_000])
def test_a_number_compares_by_value_whatever_its_type(typed: object) -> None:
    assert canonical_record({"Price": typed}) == canonical_record({"Price": "1000000000000000"})


def test_text_booleans_and_other_values_keep_their_text() -> None:
    assert canonical_record({"Flag": True}) == canonical_record({"Flag": "True"})
    assert canonical_record({"Name": "ABC"}) != canonical_record({"Name": "ABD"})
    assert canonical_record({"Price": 12.5}) != canonical_record({"Price": 12.51})
    assert canonical_record({"Price": float("nan")}) == canonical_record({"Price": "nan"})


_KEY_PART = st.one_of(
    st.text(), st.text(alphabet=st.sampled_from(' ,;|"\\\t\n\x00\x1fA\u00e9\u2028')), st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False),
)


@given(st.lists(st.lists(_KEY_PART, min_size=1, max_size=3).map(tuple), max_size=20))
def test_many_keys_have_the_text_of_each_key_alone(keys: list[tuple]) -> None:
    """The joined fast path of `keys_json` against the JSON encoder's text of every key: equal, and each parses
    back to its key (blanks, separators, quotes, backslashes and control characters kept)."""
    texts = keys_json(keys)
    assert texts == [key_json(key) for key in keys]
    assert [json.loads(text) for text in texts] == [[str(p) if isinstance(p, decimal.Decimal) else p for p in key]
                                                    for key in keys]


@given(st.lists(st.tuples(st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
                          st.text(alphabet="0123 ")), min_size=1, max_size=20))
def test_text_keys_take_the_joined_path_with_the_same_text(keys: list[tuple[str, str]]) -> None:
    assert keys_json(keys) == [json.dumps(list(key), ensure_ascii=False) for key in keys]
