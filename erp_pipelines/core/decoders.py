"""Vectorised decoders that turn legacy source values into typed application values.

Each decoder takes the raw Arrow column(s) of one batch and returns the decoded column plus a mask of the
rows it could not decode, with a reason. Decoding never raises on bad data: a bad value becomes a
rejected row, the rest of the batch goes on.
"""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import re
from collections.abc import Sequence
from dataclasses import dataclass

import ebcdic  # noqa: F401  (registers the EBCDIC code pages Python lacks: cp277, cp278, cp1141 ... cp1149)
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


def _as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _is_binary(column: pa.Array | pa.ChunkedArray) -> bool:
    kind = column.type
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


def _all_rejected(columns: Sequence[pa.Array], arrow_type: pa.DataType, reason: str) -> Decoded:
    """Every row holding a value is rejected with `reason`; the values become NULL."""
    present = np.zeros(len(columns[0]), dtype=bool)
    for column in columns:
        present |= _as_array(column).is_valid().to_numpy(zero_copy_only=False)
    return Decoded(pa.nulls(len(present), arrow_type), present if present.any() else None, reason)


def _undeliverable(decoder: Decoder, columns: Sequence[pa.Array]) -> Decoded | None:
    """Binary where a number is expected: bytes the driver could not deliver as a number (see UNDELIVERABLE)."""
    if any(_is_binary(column) for column in columns):
        return _all_rejected(columns, decoder.arrow_type, UNDELIVERABLE)
    return None


def _to_int64(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Integer values and a null mask of a numeric (decimal, integer or numeric-text) column."""
    column = _as_array(column)
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
    """Slow path of `_to_int64`, only for a batch holding text that is no 64-bit integer: which rows."""
    numbers = np.zeros(len(texts), dtype=np.int64)
    nulls = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        try:
            numbers[i] = int(text.strip())  # type: ignore[union-attr]
        except (AttributeError, ValueError, OverflowError):
            nulls[i] = True
    return numbers, nulls


def _dates_from_parts(years: np.ndarray, months: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        column = _as_array(columns[0])
        if _is_binary(column):
            return _all_rejected([column], self.arrow_type, BINARY_NOT_TEXT)
        if not pa.types.is_string(column.type):
            column = pc.cast(column, pa.string())
        trimmed = pc.utf8_rtrim(column, characters=" ")
        if self.blank_as_null:
            trimmed = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
        return Decoded(trimmed)


# EBCDIC CCSIDs of IBM i systems (the system value QCCSID, or a file's CCSID): 37 US/Canada, 273 Germany/
# Austria, 277 Denmark/Norway, 278 Finland/Sweden, 280 Italy, 284 Spain, 285 UK, 297 France, 500
# International, 871 Iceland, 1140-1149 the same ten with the euro sign (IBM "CCSID values", globalization).
EBCDIC_CCSIDS = (37, 273, 277, 278, 280, 284, 285, 297, 500, 871, *range(1140, 1150))


class EbcdicText(Decoder):
    """CHAR ... FOR BIT DATA (CCSID 65535): the driver hands over the EBCDIC bytes untranslated.

    With TRANSLATE=0 IBM i returns CCSID 65535 character data as binary (IBM Support "CCSID 65535 data not
    converted", the .NET and JDBC analogues); CHAR(n) FOR BIT DATA arrives as fixed-size binary and VARCHAR
    FOR BIT DATA as variable-size binary (arrow-odbc schema.rs: SQL_BINARY → FixedSizeBinary(n),
    SQL_VARBINARY → Binary). The bytes are decoded with the code page of the configured CCSID as a byte
    lookup (vectorised, no per-row Python), trailing blanks dropped as for any CHAR. A byte that decodes to a
    control character (CONTROL_CHARACTERS: packed numbers, binary data, x'00' fill) means the column does not
    hold text in that row: rejected, not guessed. A driver that already translates delivers text, which
    passes through as blank-padded CHAR.
    """

    arrow_type = pa.string()

    def __init__(self, blank_as_null: bool = False, ccsid: int = 37) -> None:
        if ccsid not in EBCDIC_CCSIDS:
            raise ValueError(f"EbcdicText: CCSID {ccsid} is not an EBCDIC CCSID this decoder knows ({EBCDIC_CCSIDS})")
        self.blank_as_null = blank_as_null
        self.ccsid = ccsid
        self.reason = f"is not EBCDIC text (CCSID {ccsid})"
        characters = bytes(range(256)).decode(codecs.lookup(f"cp{ccsid:03d}").name)
        encoded = [character.encode("utf-8") for character in characters]
        self._lengths = np.array([len(code) for code in encoded], dtype=np.int64)
        self._starts = np.concatenate(([0], np.cumsum(self._lengths)[:-1]))
        self._utf8_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self._control = np.array([bool(_CONTROL.fullmatch(character)) for character in characters])

    def __repr__(self) -> str:
        return f"EbcdicText(ccsid={self.ccsid})"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        column = _as_array(columns[0])
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            return TrimmedText(self.blank_as_null)([column])
        column = pc.cast(column, pa.binary())
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset : column.offset + len(column) + 1]
        data = column.buffers()[2]
        raw = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]] if data else np.zeros(0, np.uint8)
        offsets = offsets - offsets[0]
        controls = np.concatenate(([0], np.cumsum(self._control[raw])))
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        invalid = (controls[offsets[1:]] > controls[offsets[:-1]]) & valid
        text = pc.utf8_rtrim(self._utf8(raw, offsets), characters=" ")
        keep = pa.array(valid & ~invalid)
        if self.blank_as_null:
            keep = pc.and_(keep, pc.not_equal(text, ""))
        values = pc.if_else(keep, text, pa.scalar(None, pa.string()))
        return Decoded(values, invalid if invalid.any() else None, self.reason)

    def _utf8(self, raw: np.ndarray, offsets: np.ndarray) -> pa.Array:
        """EBCDIC bytes → UTF-8: each byte becomes its character's 1 to 3 UTF-8 bytes, gathered by position."""
        lengths = self._lengths[raw]
        ends = np.concatenate(([0], np.cumsum(lengths)))
        out = np.empty(ends[-1], dtype=np.uint8)
        for position in range(int(self._lengths.max())):
            has = lengths > position
            out[ends[:-1][has] + position] = self._utf8_bytes[self._starts[raw[has]] + position]
        buffers = [None, pa.py_buffer(ends[offsets].astype(np.int32)), pa.py_buffer(out)]
        return pa.Array.from_buffers(pa.string(), len(offsets) - 1, buffers)


class Text(Decoder):
    """Text kept as it is (VARCHAR, 4D text); only NULL handling."""

    arrow_type = pa.string()

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        column = _as_array(columns[0])
        return Decoded(column if pa.types.is_string(column.type) else pc.cast(column, pa.string()))


class Template(Decoder):
    """Text built from a value, e.g. "Imported from legacy: {}" for get-or-create descriptions."""

    arrow_type = pa.string()

    def __init__(self, template: str) -> None:
        self.prefix, _, self.suffix = template.partition("{}")

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        column = pc.cast(_as_array(columns[0]), pa.string())
        return Decoded(pc.binary_join_element_wise(self.prefix, column, self.suffix, ""))


class CyymmddDate(Decoder):
    """IBM i CYYMMDD numeric date (DECIMAL(7,0)): C=0 → 19xx, C=1 → 20xx; 0 means "no date"."""

    arrow_type = pa.date32()
    reason = "is not a valid CYYMMDD date"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        if (undeliverable := _undeliverable(self, columns)) is not None:
            return undeliverable
        numbers, nulls = _to_int64(columns[0])
        century, rest = numbers // 1_000_000, numbers % 1_000_000
        dates, valid = _dates_from_parts(1900 + century * 100 + rest // 10_000, rest // 100 % 100, rest % 100)
        empty = (numbers == 0) | nulls
        valid &= (century >= 0) & (century <= 9)
        invalid = ~valid & ~empty
        values = pa.array(dates, type=pa.date32(), mask=~valid | empty)
        return Decoded(values, invalid if invalid.any() else None, self.reason)


def _seconds_of_day(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hours, minutes, seconds = numbers // 10_000, numbers // 100 % 100, numbers % 100
    valid = (numbers >= 0) & (hours <= 23) & (minutes <= 59) & (seconds <= 59)
    return hours * 3600 + minutes * 60 + seconds, valid


class HhmmssTime(Decoder):
    """IBM i HHMMSS numeric time (DECIMAL(6,0))."""

    arrow_type = pa.time64("us")
    reason = "is not a valid HHMMSS time"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        if (undeliverable := _undeliverable(self, columns)) is not None:
            return undeliverable
        numbers, nulls = _to_int64(columns[0])
        seconds, valid = _seconds_of_day(numbers)
        invalid = ~valid & ~nulls
        values = pa.array(np.where(valid, seconds, 0) * 1_000_000, type=pa.time64("us"), mask=~valid | nulls)
        return Decoded(values, invalid if invalid.any() else None, self.reason)


class CyymmddHhmmssTimestamp(Decoder):
    """A CYYMMDD date column plus an HHMMSS time column → one timestamp (change-tracking pairs)."""

    arrow_type = pa.timestamp("us")
    reason = "is not a valid CYYMMDD date with HHMMSS time"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        if (undeliverable := _undeliverable(self, columns)) is not None:
            return undeliverable
        date = CyymmddDate()([columns[0]])
        numbers, time_nulls = _to_int64(columns[1])
        seconds, time_valid = _seconds_of_day(numbers)
        date_valid = ~date.values.is_null().to_numpy(zero_copy_only=False)
        valid = date_valid & time_valid & ~time_nulls
        days = date.values.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        micros = (days * 86_400 + np.where(time_valid, seconds, 0)) * 1_000_000
        invalid = date.invalid_rows() | (date_valid & ~time_valid)
        values = pa.array(micros, type=pa.timestamp("us"), mask=~valid)
        return Decoded(values, invalid if invalid.any() else None, self.reason)


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
        column = pc.utf8_trim(_as_array(columns[0]), characters=" ")
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
        column = _as_array(columns[0])
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
        if (undeliverable := _undeliverable(self, columns)) is not None:
            return undeliverable
        column = _as_array(columns[0])
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
        if (undeliverable := _undeliverable(self, columns)) is not None:
            return undeliverable
        column = _as_array(columns[0])
        try:
            return Decoded(pc.cast(column, pa.int64()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            numbers, nulls = _to_int64(pc.cast(column, pa.string()))
            invalid = nulls & ~column.is_null().to_numpy(zero_copy_only=False)
            return Decoded(pa.array(numbers, pa.int64(), mask=nulls), invalid, self.reason)


class FourDDate(Decoder):
    """4D REST date text `d!m!yyyy` (no zero padding); `0!0!0` is the empty date."""

    arrow_type = pa.date32()
    reason = "is not a valid 4D date (d!m!yyyy)"
    _PATTERN = r"^(?P<day>\d{1,2})!(?P<month>\d{1,2})!(?P<year>\d{1,4})$"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        column = _as_array(columns[0])
        if not pa.types.is_string(column.type):
            column = pc.cast(column, pa.string())
        parts = pc.extract_regex(column, self._PATTERN)
        matched = parts.is_valid().to_numpy(zero_copy_only=False)
        numbers = {
            name: pc.cast(pc.fill_null(pc.struct_field(parts, name), "0"), pa.int64()).to_numpy(zero_copy_only=False)
            for name in ("day", "month", "year")
        }
        blank = pc.fill_null(pc.equal(column, ""), True).to_numpy(zero_copy_only=False)
        empty = blank | (matched & (numbers["day"] == 0) & (numbers["month"] == 0) & (numbers["year"] == 0))
        dates, valid = _dates_from_parts(numbers["year"], numbers["month"], numbers["day"])
        valid &= matched & ~empty
        invalid = ~valid & ~empty
        return Decoded(pa.array(dates, pa.date32(), mask=~valid), invalid if invalid.any() else None, self.reason)


class FourDTime(Decoder):
    """4D REST time: milliseconds since midnight (`duration`)."""

    arrow_type = pa.time64("us")
    reason = "is not a time of day in milliseconds"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        numbers, nulls = _to_int64(pc.cast(_as_array(columns[0]), pa.string()))
        valid = ~nulls & (numbers >= 0) & (numbers < 86_400_000)
        invalid = ~valid & ~_as_array(columns[0]).is_null().to_numpy(zero_copy_only=False)
        values = pa.array(np.where(valid, numbers, 0) * 1000, pa.time64("us"), mask=~valid)
        return Decoded(values, invalid if invalid.any() else None, self.reason)


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
