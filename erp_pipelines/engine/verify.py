"""Verify: the source and the target compared row by row on decoded values, writing to neither.

The source is read through the same adapter and decoders a sync uses, so a row compares equal exactly when
a sync would leave it unchanged. Db2 for i's HASH_ROW returns "the SHA512 hash value of the data content of
a row" (IBM i 7.4 SQL reference, HASH_ROW): raw values, blank-padded CHAR and CYYMMDD numbers, which is why
the hashing happens here, on decoded values. The target is read back in the spec's column names and
types (an application table's references turned back into the parent's business key).

Cost: each side is read once (the target alongside the source, on a thread of its own) and hashed on the
fly into a fixed number of key ranges (buckets of the key's hash, so neither side has to be sorted, and the
two systems' sort orders never have to agree: Db2 for i orders CHAR by its sort sequence, EBCDIC by
default); per range the row count and the sum of the row hashes are kept, so memory stays flat whatever the
table size. Only when ranges differ are both sides read a second time, keeping just the rows of those
ranges, which are then compared value by value. Records whose key is open in the quarantine
(`sync_error.resolved_at is null`) are left out on both sides and counted as still quarantined, not as
missing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from erp_pipelines.core.source import SourceAdapter
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.audit import Audit
from erp_pipelines.engine.drift import check_application_table
from erp_pipelines.engine.pipeline import Prefetcher
from erp_pipelines.engine.postgres import quote
from erp_pipelines.engine.target import Reference, Target, sql_type, target_of
from erp_pipelines.engine.validation import RowFailures, check_source_columns, decode, decode_business_key

DEFAULT_RANGE_BITS = 16
"""2**16 key ranges: about 15 rows per range at a million rows, 1 MiB of range hashes."""

DifferenceKind = Literal["missing_in_target", "not_in_source", "differs", "duplicate_in_source"]

_NULL = np.uint64(0x9E3779B97F4A7C15)
_SEED = np.uint64(0x2545F4914F6CDD1D)
_BASE = np.uint64(0x100000001B3)
_BYTE_CODES = np.random.default_rng(20261202).integers(1, 2**63, size=256, dtype=np.uint64) | np.uint64(1)
"""A fixed random 64-bit code per byte value (tabulation), so text hashes spread even for similar values."""


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit affects every output bit (vectorised, wrapping uint64)."""
    with np.errstate(over="ignore"):
        values = values ^ (values >> np.uint64(30))
        values = values * np.uint64(0xBF58476D1CE4E5B9)
        values = values ^ (values >> np.uint64(27))
        values = values * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


def _fixed_width(array: pa.Array, dtype: type[np.generic], lanes: int = 1) -> np.ndarray:
    """The values buffer of a fixed-width array as numpy (whatever lies under a null slot is masked later)."""
    buffer = array.buffers()[1]
    values = np.frombuffer(buffer, dtype=dtype) if buffer is not None else np.zeros(0, dtype=dtype)
    return values[array.offset * lanes:(array.offset + len(array)) * lanes]


_BASE_INVERSE = np.uint64(pow(int(_BASE), -1, 2**64))
_powers: tuple[np.ndarray, np.ndarray] = (np.ones(1, np.uint64), np.ones(1, np.uint64))


def _powers_up_to(size: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**i and BASE**-i modulo 2**64 for i < size, grown on demand (BASE is odd, so it has an inverse)."""
    global _powers
    powers, inverses = _powers
    if len(powers) < size:
        grown = max(size, 2 * len(powers))
        with np.errstate(over="ignore"):
            powers = np.cumprod(np.concatenate([[np.uint64(1)], np.full(grown - 1, _BASE)]), dtype=np.uint64)
            inverses = np.cumprod(np.concatenate([[np.uint64(1)], np.full(grown - 1, _BASE_INVERSE)]),
                                  dtype=np.uint64)
        _powers = (powers, inverses)
    return powers, inverses


def _text_hashes(array: pa.Array) -> np.ndarray:
    """A polynomial hash of each string's bytes, then mixed with its length.

    Vectorised over the batch's byte buffer, no Python object per value: prefix sums of code(byte) * BASE**i
    taken at the string boundaries, then multiplied by BASE**-start so a string hashes the same wherever it
    sits in the buffer.
    """
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset:array.offset + len(array) + 1]
    data = array.buffers()[2]
    first, last = int(offsets[0]), int(offsets[-1])
    raw = np.frombuffer(data, dtype=np.uint8)[first:last] if data is not None else np.zeros(0, np.uint8)
    starts, ends = (offsets[:-1] - first).astype(np.int64), (offsets[1:] - first).astype(np.int64)
    powers, inverses = _powers_up_to(last - first + 1)
    with np.errstate(over="ignore"):
        sums = np.empty(last - first + 1, dtype=np.uint64)
        sums[0] = 0
        np.cumsum(_BYTE_CODES[raw] * powers[:last - first], dtype=np.uint64, out=sums[1:])
        lengths = (ends - starts).astype(np.uint64)
        return _mix((sums[ends] - sums[starts]) * inverses[starts] + lengths * _NULL)


def column_hashes(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """One 64-bit hash per value; equal values of one Arrow type hash equal, a null hashes to a constant."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        hashes = _text_hashes(array)
    elif pa.types.is_boolean(kind):
        hashes = _mix(pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(np.uint64) + np.uint64(1))
    elif pa.types.is_decimal(kind) and kind.bit_width == 128:
        lanes = _fixed_width(array, np.uint64, lanes=2).reshape(-1, 2)
        hashes = _mix(_mix(lanes[:, 0]) ^ lanes[:, 1])
    elif (pa.types.is_integer(kind) or pa.types.is_temporal(kind) or pa.types.is_floating(kind)) \
            and kind.bit_width in (8, 16, 32, 64):
        width = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[kind.bit_width]
        hashes = _mix(_fixed_width(array, width).astype(np.uint64))
    else:
        hashes = _text_hashes(pc.cast(array, pa.string()))
    if array.null_count:
        hashes = np.where(array.is_valid().to_numpy(zero_copy_only=False), hashes, _NULL)
    return hashes


def combined(per_column: Sequence[np.ndarray], rows: int) -> np.ndarray:
    """One 64-bit hash per row from its columns' hashes, in order (a value moved to another column changes it)."""
    hashes = np.full(rows, _SEED, dtype=np.uint64)
    for position, column in enumerate(per_column):
        with np.errstate(over="ignore"):
            hashes = _mix(hashes ^ (column + np.uint64(position)))
    return hashes


def row_hashes(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    return combined([column_hashes(table.column(name)) for name in columns], table.num_rows)


def key_and_row_hashes(table: pa.Table, key: Sequence[str], columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The key's hash and the whole row's hash of every row, each column hashed once."""
    per_column = {name: column_hashes(table.column(name)) for name in columns}
    return (combined([per_column[name] for name in key], table.num_rows),
            combined([per_column[name] for name in columns], table.num_rows))


class RangeHashes:
    """Per key range (the top `bits` of the key's hash): the row count and the sum of the row hashes, modulo
    2**64. Order-independent, so the rows may arrive in any order, in batches of any size."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.counts = np.zeros(1 << bits, dtype=np.int64)
        self.sums = np.zeros(1 << bits, dtype=np.uint64)

    def ranges(self, key_hashes: np.ndarray) -> np.ndarray:
        return (key_hashes >> np.uint64(64 - self.bits)).astype(np.int64) if self.bits else \
            np.zeros(len(key_hashes), dtype=np.int64)

    def add(self, key_hashes: np.ndarray, hashes: np.ndarray) -> None:
        ranges = self.ranges(key_hashes)
        self.counts += np.bincount(ranges, minlength=len(self.counts))
        np.add.at(self.sums, ranges, hashes)

    def differing(self, other: RangeHashes) -> np.ndarray:
        """The ranges whose rows differ between the two sides."""
        return np.flatnonzero((self.counts != other.counts) | (self.sums != other.sums))


@dataclass(frozen=True)
class Difference:
    """One key at fault. `columns` names the differing columns of a `differs` row; `source` and `target` hold
    the values of those columns (of every column for a row present on one side only)."""

    kind: DifferenceKind
    key: tuple[Any, ...]
    columns: tuple[str, ...] = ()
    source: tuple[Any, ...] = ()
    target: tuple[Any, ...] = ()


@dataclass
class Comparison:
    """What verify found; `passed` when no difference (quarantined records are reported, not differences)."""

    key: tuple[str, ...]
    columns: tuple[str, ...]
    source_records: int = 0
    target_live_rows: int = 0
    quarantined_in_source: int = 0
    """Source records whose key is open in the quarantine: left out of the comparison."""
    quarantined_live: int = 0
    """Of those, the ones with a live target row too (the sync kept the row it had loaded before)."""
    ranges: int = 0
    ranges_differing: int = 0
    differences: list[Difference] = field(default_factory=list)
    quarantined_keys: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.differences

    def counts(self) -> dict[str, int]:
        found = {kind: 0 for kind in ("missing_in_target", "not_in_source", "differs", "duplicate_in_source")}
        for difference in self.differences:
            found[difference.kind] += 1
        return found

    @property
    def invariant_holds(self) -> bool:
        """source keys = live target keys + open quarantine keys (a quarantined record that also kept its old
        live row counted once)."""
        return self.source_records == self.target_live_rows - self.quarantined_live + self.quarantined_in_source


Read = Callable[[], Iterable[pa.Table]]
"""Reads one side from the start: batches in the spec's column names and decoded types."""


@dataclass
class _Side:
    ranges: RangeHashes
    rows: int = 0
    quarantined: int = 0
    quarantined_keys: set[tuple[Any, ...]] = field(default_factory=set)


def _excluded(key_hashes: np.ndarray, quarantined: np.ndarray) -> np.ndarray:
    return np.isin(key_hashes, quarantined) if len(quarantined) else np.zeros(len(key_hashes), dtype=bool)


def _digest(read: Read, key: Sequence[str], columns: Sequence[str], quarantined: np.ndarray, bits: int) -> _Side:
    side = _Side(RangeHashes(bits))
    for batch in read():
        key_hashes, hashes = key_and_row_hashes(batch, key, columns)
        held = _excluded(key_hashes, quarantined)
        side.rows += batch.num_rows
        if held.any():
            side.quarantined += int(held.sum())
            side.quarantined_keys.update(zip(*(batch.column(k).filter(pa.array(held)).to_pylist() for k in key),
                                             strict=True))
            key_hashes, hashes = key_hashes[~held], hashes[~held]
        side.ranges.add(key_hashes, hashes)
    return side


def _rows_in(read: Read, key: Sequence[str], columns: Sequence[str], ranges: np.ndarray, quarantined: np.ndarray,
             bits: int) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """(key, values) of every row in these ranges, for the drill-down."""
    chooser = RangeHashes(bits)
    for batch in read():
        key_hashes = row_hashes(batch, key)
        wanted = np.isin(chooser.ranges(key_hashes), ranges) & ~_excluded(key_hashes, quarantined)
        if not wanted.any():
            continue
        chosen = batch.filter(pa.array(wanted))
        values = list(zip(*(chosen.column(c).to_pylist() for c in columns), strict=True))
        keys = list(zip(*(chosen.column(k).to_pylist() for k in key), strict=True))
        yield from zip(keys, values, strict=True)


def _drill_down(comparison: Comparison, read_source: Read, read_target: Read, ranges: np.ndarray,
                quarantined: np.ndarray, bits: int, keeps_deleted: bool) -> list[Difference]:
    key, columns = list(comparison.key), list(comparison.columns)
    source: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    duplicated: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row_key, values in _rows_in(read_source, key, columns, ranges, quarantined, bits):
        if row_key in source:
            duplicated[row_key] = values
        source[row_key] = values
    differences = [Difference("duplicate_in_source", row_key, tuple(columns), values)
                   for row_key, values in duplicated.items()]
    for row_key, values in _rows_in(read_target, key, columns, ranges, quarantined, bits):
        expected = source.pop(row_key, None)
        if row_key in duplicated:
            continue
        if expected is None:
            if not keeps_deleted:
                differences.append(Difference("not_in_source", row_key, tuple(columns), (), values))
            continue
        changed = [i for i, (a, b) in enumerate(zip(expected, values, strict=True)) if a != b]
        if changed:
            differences.append(Difference("differs", row_key, tuple(columns[i] for i in changed),
                                          tuple(expected[i] for i in changed), tuple(values[i] for i in changed)))
    differences.extend(Difference("missing_in_target", row_key, tuple(columns), values)
                       for row_key, values in source.items() if row_key not in duplicated)
    return sorted(differences, key=lambda d: (d.kind, repr(d.key)))


def compare(read_source: Read, read_target: Read, key: Sequence[str], columns: Sequence[str], *,
            quarantined: pa.Table | None = None, bits: int = DEFAULT_RANGE_BITS,
            keeps_deleted: bool = False) -> Comparison:
    """Compares the two sides: one read of each (the target read alongside the source), and a second read of
    each only when key ranges differ. `quarantined` holds the decoded keys open in the quarantine;
    `keeps_deleted`: the target keeps rows the source deleted by design (get-or-create tables)."""
    if not 0 <= bits <= 24:
        raise ValueError(f"range bits={bits}: use 0 to 24")
    comparison = Comparison(tuple(key), tuple(columns), ranges=1 << bits)
    held = (np.unique(row_hashes(quarantined, key)) if quarantined is not None and quarantined.num_rows
            else np.zeros(0, dtype=np.uint64))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="erp-verify-target") as pool:
        target_side = pool.submit(_digest, read_target, key, columns, held, bits)
        source = _digest(read_source, key, columns, held, bits)
        target = target_side.result()
    comparison.source_records, comparison.target_live_rows = source.rows, target.rows
    comparison.quarantined_in_source = source.quarantined
    comparison.quarantined_live = len(source.quarantined_keys & target.quarantined_keys)
    comparison.quarantined_keys = sorted(source.quarantined_keys, key=repr)
    gone = [] if keeps_deleted else sorted(target.quarantined_keys - source.quarantined_keys, key=repr)
    comparison.differences = [Difference("not_in_source", row_key) for row_key in gone]
    differing = source.ranges.differing(target.ranges)
    if keeps_deleted and len(differing):
        differing = differing[source.ranges.counts[differing] > 0]
    comparison.ranges_differing = len(differing)
    if len(differing):
        comparison.differences += _drill_down(comparison, read_source, read_target, differing, held, bits,
                                              keeps_deleted)
    return comparison


# --- reading the two sides of one table -------------------------------------------------------------------


def key_references(spec: TableSpec) -> list[Reference]:
    """References of an application table made of business-key columns only (a measurement's item number):
    the key is compared as a column of its own, so whether the surrogate id points at the parent with that key
    is compared as one more column, named after the id column, true on the source side."""
    return [ref for ref in target_of(spec).references if set(ref.fk.columns) <= set(spec.business_key)]


def decoded_schema(spec: TableSpec) -> pa.Schema:
    """The compared columns typed as the spec's decoders type them: what both sides are brought to before
    hashing; then a boolean per key reference (`key_references`)."""
    return pa.schema([*((column.target, column.decoder.arrow_type) for column in spec.columns),
                      *((ref.column, pa.bool_()) for ref in key_references(spec))])


def read_source(spec: TableSpec, source: SourceAdapter) -> Read:
    """The whole table through the sync's adapter and decoders (fetching the next batch while one is
    decoded). Values a decoder cannot decode are NULL, as the sync stages them; the pandera model is not run:
    a record it would reject is either open in the quarantine (left out) or a difference either way."""
    schema = decoded_schema(spec)
    references = [ref.column for ref in key_references(spec)]

    def batches() -> Iterator[pa.Table]:
        with source.extract(spec, None) as extraction, Prefetcher(extraction.batches()) as fetched:
            for raw in fetched:
                check_source_columns(spec, raw)
                decoded = decode(spec, raw, RowFailures())
                for name in references:
                    decoded = decoded.append_column(name, pa.array(np.ones(decoded.num_rows, dtype=bool)))
                yield decoded.cast(schema)

    return batches


def _target_value(spec: TableSpec, target: Target, name: str) -> str:
    """SQL giving spec column `name` of target row `t`, as text of the spec's own type: an application
    table's reference read back as the parent's business key through its surrogate id."""
    pointing = next((ref for ref in key_references(spec) if ref.column == name), None)
    if pointing is not None:
        parent = pointing.parent
        same = " and ".join(f"p.{quote(parent.column(pc))} = t.{quote(target.column(c))}"
                            for c, pc in zip(pointing.fk.columns, pointing.fk.parent_columns, strict=True))
        return (f"(exists (select 1 from {parent.name} p where p.{quote(parent.table_surrogate_key)} = "
                f"t.{quote(pointing.column)} and {same}))::text")
    reference = next((ref for ref in target.references if name in ref.fk.columns and name not in spec.business_key),
                     None)
    if reference is None:
        expression = f"t.{quote(target.column(name))}"
    else:
        parent = reference.parent
        parent_column = reference.fk.parent_columns[reference.fk.columns.index(name)]
        expression = (f"(select p.{quote(parent.column(parent_column))} from {parent.name} p "
                      f"where p.{quote(parent.table_surrogate_key)} = t.{quote(reference.column)})")
    kind = spec.column(name).decoder.arrow_type
    typed = f"({expression})::{sql_type(spec.column(name).sql_type)}"
    if pa.types.is_time(kind):  # Arrow casts no text to a time: microseconds since midnight instead
        return f"(extract(epoch from {typed}) * 1000000)::bigint::text"
    return f"{typed}::text"


def _from_text(column: pa.Array, kind: pa.DataType) -> pa.Array:
    if pa.types.is_time(kind):
        return pc.cast(pc.cast(column, pa.int64()), kind)
    return pc.cast(column, kind)


def read_target(spec: TableSpec, engine: sa.Engine, batch_rows: int = 1 << 16) -> Read:
    """The live rows the spec owns, streamed out by one COPY in a READ ONLY transaction (PostgreSQL refuses
    any write in it: "SET TRANSACTION", PostgreSQL manual) and parsed by Arrow's CSV reader."""
    target = target_of(spec)
    schema = decoded_schema(spec)
    values = ", ".join(f"{_target_value(spec, target, name)} as {quote(name)}" for name in schema.names)
    statement = (f"copy (select {values} from {target.name} t where {target.live('t')} and {target.owned('t')}) "
                 "to stdout with (format csv)")
    # NULL is an unquoted empty field, an empty string a quoted one ("CSV Format", PostgreSQL manual, COPY).
    convert = pa_csv.ConvertOptions(column_types={name: pa.string() for name in schema.names},
                                    strings_can_be_null=True, quoted_strings_can_be_null=False)

    def batches() -> Iterator[pa.Table]:
        with engine.connect() as connection:
            connection.exec_driver_sql("set transaction read only")
            cursor = connection.connection.driver_connection.cursor()
            try:
                with _copy_out(cursor, statement) as stream:
                    reader = pa_csv.open_csv(stream, read_options=pa_csv.ReadOptions(
                        column_names=schema.names, block_size=batch_rows * 64), convert_options=convert)
                    for batch in reader:
                        yield pa.Table.from_arrays(
                            [_from_text(batch.column(i), field.type) for i, field in enumerate(schema)],
                            schema=schema)
            finally:
                cursor.close()
                connection.rollback()

    return batches


@contextlib.contextmanager
def _copy_out(cursor: Any, statement: str) -> Iterator[BinaryIO]:
    """COPY ... TO STDOUT written into a pipe by a background thread, read as a stream (memory stays flat)."""
    read_end, write_end = os.pipe()
    reader, writer = os.fdopen(read_end, "rb"), os.fdopen(write_end, "wb")
    failure: list[BaseException] = []

    def run() -> None:
        try:
            cursor.copy_expert(statement, writer, size=1 << 20)
        except BaseException as exc:
            failure.append(exc)
        finally:
            writer.close()

    thread = threading.Thread(target=run, name="erp-verify-copy", daemon=True)
    thread.start()
    try:
        yield reader
    finally:
        reader.close()  # a reader that stopped early breaks the pipe, which ends the COPY
        thread.join()
    if failure:
        raise failure[0]


def open_quarantine_keys(spec: TableSpec, engine: sa.Engine) -> pa.Table:
    """The decoded business keys of the records open in the quarantine (their exact keys run through the
    key columns' decoders, as the sync decodes the rows they name)."""
    with engine.connect() as connection:
        connection.exec_driver_sql("set transaction read only")
        keys = Audit(connection, spec).open_error_keys()
        connection.rollback()
    names = spec.source_key_columns
    raw = pa.RecordBatch.from_pydict({name: [key[i] if i < len(key) else None for key in keys]
                                      for i, name in enumerate(names)})
    return decode_business_key(spec, raw)


def verify_table(spec: TableSpec, source: SourceAdapter, engine: sa.Engine, *,
                 bits: int = DEFAULT_RANGE_BITS) -> Comparison:
    """Verifies one table; reads only (the source through its read-only connection, the target in a READ
    ONLY transaction)."""
    with engine.connect() as connection:
        check_application_table(connection, spec)
        connection.rollback()
    target = target_of(spec)
    return compare(read_source(spec, source), read_target(spec, engine), spec.business_key,
                   decoded_schema(spec).names,
                   quarantined=open_quarantine_keys(spec, engine), bits=bits, keeps_deleted=target.keeps_deleted)
