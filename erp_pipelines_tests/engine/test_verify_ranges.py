"""The range-hash comparison of `engine.verify` against a tiny independent reference (plain dicts), on
generated keys with blanks and separators, differences anywhere, any batch split and any number of ranges."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erp_pipelines.engine.verify import RangeHashes, column_hashes, compare, row_hashes

KEY = ("code", "line")
COLUMNS = (*KEY, "name", "price", "active", "changed_at")
SCHEMA = pa.schema([("code", pa.string()), ("line", pa.int64()), ("name", pa.string()),
                    ("price", pa.decimal128(9, 2)), ("active", pa.bool_()), ("changed_at", pa.timestamp("us"))])

codes = st.text(alphabet=" ,;|:\x1f\"'\\aZ9é-", max_size=6)
values = st.tuples(
    st.one_of(st.none(), st.text(alphabet=" ,|:\x1fab\u00e9", max_size=5)),
    st.one_of(st.none(), st.decimals(min_value=-999, max_value=999, places=2, allow_nan=False)),
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1))),
)


def _table(rows: dict[tuple, tuple]) -> pa.Table:
    records = [dict(zip(COLUMNS, (*key, *vals), strict=True)) for key, vals in rows.items()]
    return pa.Table.from_pylist(records, schema=SCHEMA)


def _reader(table: pa.Table, cuts: list[int]):
    """Reads the table in batches split at these row positions (each read from the start)."""
    bounds = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})

    def read():
        for start, end in itertools.pairwise(bounds):
            yield table.slice(start, end - start)

    return read


def _reference(source: dict, target: dict, quarantined: set) -> set[tuple]:
    """What verify must report, by definition."""
    found: set[tuple] = set()
    for key, vals in source.items():
        if key in quarantined:
            continue
        if key not in target:
            found.add(("missing_in_target", key, ()))
        elif vals != target[key]:
            found.add(("differs", key, tuple(name for name, a, b in zip(COLUMNS[2:], vals, target[key], strict=True)
                                              if a != b)))
    found |= {("not_in_source", key, ()) for key in target if key not in source}
    return found


@st.composite
def sides(draw: st.DrawFn) -> tuple[dict, dict, set]:
    keys = draw(st.lists(st.tuples(codes, st.integers(-3, 3)), unique=True, max_size=40))
    source = {key: draw(values) for key in keys}
    target = dict(source)
    for key in draw(st.lists(st.sampled_from(keys), max_size=5)) if keys else []:
        target.pop(key, None)
    for key in draw(st.lists(st.sampled_from(keys), max_size=5)) if keys else []:
        if key in target:
            column = draw(st.integers(0, 3))
            changed = list(target[key])
            changed[column] = draw(values)[column]
            target[key] = tuple(changed)
    for key, vals in draw(st.dictionaries(st.tuples(codes, st.integers(-3, 3)), values, max_size=4)).items():
        target.setdefault(key, vals)
    quarantined = set(draw(st.lists(st.sampled_from(keys), max_size=4))) if keys else set()
    return source, target, quarantined


@settings(max_examples=300, deadline=None)
@given(sides(), st.integers(0, 6), st.lists(st.integers(0, 50), max_size=4), st.lists(st.integers(0, 50), max_size=4))
def test_compare_reports_exactly_what_the_reference_finds(
    case: tuple[dict, dict, set], bits: int, source_cuts: list[int], target_cuts: list[int]
) -> None:
    source, target, quarantined = case
    held = pa.Table.from_pylist([dict(zip(KEY, key, strict=True)) for key in quarantined],
                                schema=pa.schema([SCHEMA.field("code"), SCHEMA.field("line")]))
    result = compare(_reader(_table(source), source_cuts), _reader(_table(target), target_cuts), KEY, COLUMNS,
                     quarantined=held, bits=bits)
    expected = _reference(source, {k: v for k, v in target.items() if k not in quarantined}, quarantined)
    found = {(d.kind, d.key, d.columns if d.kind == "differs" else ()) for d in result.differences}
    assert found == expected
    assert result.passed == (not expected)
    assert result.source_records == len(source) and result.target_live_rows == len(target)
    assert result.quarantined_in_source == len(quarantined)
    if all(kind == "differs" for kind, _, _ in expected):
        assert result.invariant_holds


@given(st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=1, max_size=30), st.integers(0, 29))
def test_a_value_hashes_the_same_wherever_it_sits_in_a_batch(texts: list, start: int) -> None:
    whole = column_hashes(pa.array(texts, pa.string()))
    start %= len(texts)
    assert list(column_hashes(pa.array(texts, pa.string()).slice(start))) == list(whole[start:])
    assert list(column_hashes(pa.array(texts[start:], pa.large_string()))) == list(whole[start:])


def test_values_that_read_alike_hash_apart() -> None:
    """Separators, blanks, empty text and NULL are values of their own, and a value moved to the next column
    is a different row."""
    texts = pa.array(["a,b", "a", ",b", "", None, " ", "a ", " a"])
    assert len(set(column_hashes(texts).tolist())) == len(texts)
    split = pa.table({"x": ["a,", "a"], "y": ["b", ",b"]})
    assert len(set(row_hashes(split, ["x", "y"]).tolist())) == 2
    swapped = pa.table({"x": ["a", "b"], "y": ["b", "a"]})
    assert len(set(row_hashes(swapped, ["x", "y"]).tolist())) == 2
    numbers = pa.array([decimal.Decimal("1.00"), decimal.Decimal("-1.00"), None], pa.decimal128(9, 2))
    assert len(set(column_hashes(numbers).tolist())) == 3


def test_range_sums_do_not_depend_on_order_or_batching() -> None:
    rng = np.random.default_rng(7)
    keys, hashes = rng.integers(0, 2**63, 1000, dtype=np.uint64), rng.integers(0, 2**63, 1000, dtype=np.uint64)
    whole, parts = RangeHashes(8), RangeHashes(8)
    whole.add(keys, hashes)
    order = rng.permutation(1000)
    for chunk in np.array_split(order, 7):
        parts.add(keys[chunk], hashes[chunk])
    assert len(whole.differing(parts)) == 0
    hashes[3] += np.uint64(1)
    changed = RangeHashes(8)
    changed.add(keys, hashes)
    assert list(whole.differing(changed)) == [int(keys[3] >> np.uint64(56))]


def test_range_bits_out_of_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="range bits=30"):
        compare(lambda: [], lambda: [], KEY, COLUMNS, bits=30)
