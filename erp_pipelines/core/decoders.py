"""Vectorised decoders that turn legacy source values into typed application values.

Each decoder takes the raw Arrow column(s) of one batch and returns the decoded column plus a mask of the
rows it could not decode, with a reason. Decoding never raises on bad data: a bad value becomes a
rejected row, the rest of the batch goes on.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The one rule for control characters in text, for every text column and every decoder: C0 controls other
# than tab, line feed and carriage return, DEL, and the C1 controls U+0080-U+009F (NEL, the EBCDIC NL, is
# U+0085). They break exports and terminals, NUL cannot even be stored, and C1 codes in text are the mark of
# bytes decoded with the wrong code page.
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_CONTROL = re.compile(CONTROL_CHARACTERS)

# A binary value where a number or text was expected. The AS400 adapter hands over the stored bytes (read
# with HEX) of a field the driver could not deliver (SQL0802, invalid packed/zoned decimal data), so the row
# is quarantined showing them; a FOR BIT DATA column read with a text decoder lands here too.
UNDELIVERABLE = (
    "could not be delivered by the driver (SQL0802 data mapping error: the stored bytes, shown in hex, are no "
    "valid packed or zoned decimal)"
)
BINARY_NOT_TEXT = "is binary (FOR BIT DATA, CCSID 65535), not text: the spec must read it with EbcdicText"


@dataclass(frozen=True)
class Decoded:
    """A decoded column and the rows whose raw value was not acceptable."""

    values: pa.Array
    invalid: np.ndarray | None = None
    reason: str = ""

    def invalid_rows(self) -> np.ndarray:
        return np.zeros(len(self.values), dtype=bool) if self.invalid is None else self.invalid


class Decoder:
    """Base class: `__call__` decodes the source columns of one batch into one target column."""

    arrow_type: pa.DataType
    reason: str = "cannot be decoded"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__


def as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _is_binary(column: pa.Array | pa.ChunkedArray) -> bool:
    kind = column.type
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


def _all_rejected(columns: Sequence[pa.Array], arrow_type: pa.DataType, reason: str) -> Decoded:
    """Every row holding a value is rejected with `reason`; the values become NULL."""
    present = np.zeros(len(columns[0]), dtype=bool)
    for column in columns:
        present |= as_array(column).is_valid().to_numpy(zero_copy_only=False)
    return Decoded(pa.nulls(len(present), arrow_type), present if present.any() else None, reason)


def reject_undeliverable(decoder: Decoder, columns: Sequence[pa.Array]) -> Decoded | None:
    """Binary where a number is expected: bytes the driver could not deliver as a number (see UNDELIVERABLE)."""
    if any(_is_binary(column) for column in columns):
        return _all_rejected(columns, decoder.arrow_type, UNDELIVERABLE)
    return None


def to_int64(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Integer values and a null mask of a numeric (decimal, integer or numeric-text) column."""
    column = as_array(column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            column = pc.cast(pc.utf8_trim_whitespace(column), pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _text_to_int64(column.to_pylist())
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_decimal(column.type):
        column = pc.cast(column, pa.int64(), safe=False)
    numbers = column.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return numbers, nulls


def _text_to_int64(texts: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Slow path of `to_int64`, only for a batch holding text that is no 64-bit integer: which rows."""
    numbers = np.zeros(len(texts), dtype=np.int64)
    nulls = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        try:
            numbers[i] = int(text.strip())  # type: ignore[union-attr]
        except (AttributeError, ValueError, OverflowError):
            nulls[i] = True
    return numbers, nulls


def dates_from_parts(years: np.ndarray, months: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """datetime64[D] values and a validity mask; rejects month 13, 30 February and the like."""
    valid = (months >= 1) & (months <= 12) & (days >= 1) & (days <= 31) & (years >= 1) & (years <= 9999)
    safe_months = np.where(valid, (years - 1970) * 12 + (months - 1), 0).astype("datetime64[M]")
    dates = safe_months.astype("datetime64[D]") + np.where(valid, days - 1, 0).astype("timedelta64[D]")
    valid &= dates.astype("datetime64[M]") == safe_months
    return dates, valid


class TrimmedText(Decoder):
    """Blank-padded CHAR → text without trailing blanks; blank becomes '' (or NULL when asked)."""

    arrow_type = pa.string()

    def __init__(self, blank_as_null: bool = False) -> None:
        self.blank_as_null = blank_as_null

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        column = as_array(columns[0])
        if _is_binary(column):
            return _all_rejected([column], self.arrow_type, BINARY_NOT_TEXT)
        if not pa.types.is_string(column.type):
            column = pc.cast(column, pa.string())
        trimmed = pc.utf8_rtrim(column, characters=" ")
        if self.blank_as_null:
            trimmed = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
        return Decoded(trimmed)


class Text(Decoder):
    """Text kept as it is (VARCHAR, 4D text); only NULL handling."""

    arrow_type = pa.string()

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        column = as_array(columns[0])
        return Decoded(column if pa.types.is_string(column.type) else pc.cast(column, pa.string()))


class Template(Decoder):
    """Text built from a value, e.g. "Imported from legacy: {}" for get-or-create descriptions."""

    arrow_type = pa.string()

    def __init__(self, template: str) -> None:
        self.prefix, _, self.suffix = template.partition("{}")

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        column = pc.cast(as_array(columns[0]), pa.string())
        return Decoded(pc.binary_join_element_wise(self.prefix, column, self.suffix, ""))


class Flag(Decoder):
    """A one-character flag (e.g. 'Y'/'N', 'A'/'I') → boolean; values outside both sets are rejected."""

    arrow_type = pa.bool_()
    reason = "is not a known flag value"

    def __init__(self, true_values: Sequence[str], false_values: Sequence[str]) -> None:
        self.true_values = pa.array(list(true_values))
        self.false_values = pa.array(list(false_values))

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        if _is_binary(columns[0]):
            return _all_rejected(columns, self.arrow_type, BINARY_NOT_TEXT)
        column = pc.utf8_trim(as_array(columns[0]), characters=" ")
        is_true = pc.is_in(column, value_set=self.true_values)
        known = pc.or_(is_true, pc.is_in(column, value_set=self.false_values))
        invalid = ~known.to_numpy(zero_copy_only=False)
        values = pc.if_else(known, is_true, pa.scalar(None, pa.bool_()))
        return Decoded(values, invalid if invalid.any() else None, self.reason)


class Boolean(Decoder):
    """JSON booleans (4D `bool`) and their text forms → boolean."""

    arrow_type = pa.bool_()
    reason = "is not a boolean"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        column = as_array(columns[0])
        if pa.types.is_boolean(column.type):
            return Decoded(column)
        decoded = Flag(["true", "True", "1"], ["false", "False", "0"])([pc.cast(column, pa.string())])
        return Decoded(decoded.values, decoded.invalid, self.reason)


class Decimal(Decoder):
    """Exact decimal of a given precision and scale; rejects NaN, infinities, text and overflow."""

    reason = "is not a decimal number that fits"

    def __init__(self, precision: int, scale: int) -> None:
        self.precision, self.scale = precision, scale
        self.arrow_type = pa.decimal128(precision, scale)

    def __repr__(self) -> str:
        return f"Decimal({self.precision}, {self.scale})"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        if (undeliverable := reject_undeliverable(self, columns)) is not None:
            return undeliverable
        column = as_array(columns[0])
        try:
            if pa.types.is_floating(column.type):
                column = pc.cast(column, pa.string())
            return Decoded(pc.cast(column, self.arrow_type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return self._decode_each(column)

    def _decode_each(self, column: pa.Array) -> Decoded:
        """Slow path, only for a batch that holds at least one bad value: find exactly which rows."""
        quantum = decimal.Decimal(1).scaleb(-self.scale)
        limit = decimal.Decimal(10) ** (self.precision - self.scale)
        values: list[decimal.Decimal | None] = []
        invalid = np.zeros(len(column), dtype=bool)
        for i, raw in enumerate(column.to_pylist()):
            if raw is None:
                values.append(None)
                continue
            try:
                number = decimal.Decimal(str(raw).strip())
                rounded = number.quantize(quantum)
                ok = number.is_finite() and rounded == number and abs(rounded) < limit
            except (decimal.InvalidOperation, ValueError):
                ok = False
            values.append(rounded if ok else None)
            invalid[i] = not ok
        return Decoded(pa.array(values, type=self.arrow_type), invalid, self.reason)


class Integer(Decoder):
    """Whole numbers (4D `long`/`long64`, IBM i INTEGER/BIGINT)."""

    arrow_type = pa.int64()
    reason = "is not a whole number"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        if (undeliverable := reject_undeliverable(self, columns)) is not None:
            return undeliverable
        column = as_array(columns[0])
        try:
            return Decoded(pc.cast(column, pa.int64()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            numbers, nulls = to_int64(pc.cast(column, pa.string()))
            invalid = nulls & ~column.is_null().to_numpy(zero_copy_only=False)
            return Decoded(pa.array(numbers, pa.int64(), mask=nulls), invalid, self.reason)


def python_value(value: object) -> object:
    """A JSON-safe form of a raw source value, for the quarantine's raw record."""
    if isinstance(value, decimal.Decimal | dt.date | dt.time | dt.datetime):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str) and "\x00" in value:  # PostgreSQL text and JSON cannot hold NUL
        return value.replace("\x00", "\\u0000")
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value
