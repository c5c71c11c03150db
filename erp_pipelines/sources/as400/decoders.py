"""Decoders of IBM i data: CYYMMDD dates, HHMMSS times, their timestamp pair, EBCDIC CCSID 65535 text."""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence

import ebcdic  # noqa: F401  (registers the EBCDIC code pages Python lacks: cp277, cp278, cp1141 ... cp1149)
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from erp_pipelines.core.decoders import (
    CONTROL_CHARACTERS,
    Decoded,
    Decoder,
    TrimmedText,
    as_array,
    dates_from_parts,
    reject_undeliverable,
    to_int64,
)

_CONTROL = re.compile(CONTROL_CHARACTERS)

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
        column = as_array(columns[0])
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
        text = pc.utf8_rtrim(self.to_utf8(raw, offsets), characters=" ")
        keep = pa.array(valid & ~invalid)
        if self.blank_as_null:
            keep = pc.and_(keep, pc.not_equal(text, ""))
        values = pc.if_else(keep, text, pa.scalar(None, pa.string()))
        return Decoded(values, invalid if invalid.any() else None, self.reason)

    def to_utf8(self, raw: np.ndarray, offsets: np.ndarray) -> pa.Array:
        """EBCDIC bytes → UTF-8 text as it is (blanks kept, no control check): each byte becomes its character's
        1 to 3 UTF-8 bytes, gathered by position; `offsets` delimit the values in `raw`. Also used by the
        journal record image decoder (record_image.py) for CHAR and VARCHAR fields."""
        lengths = self._lengths[raw]
        ends = np.concatenate(([0], np.cumsum(lengths)))
        out = np.empty(ends[-1], dtype=np.uint8)
        for position in range(int(self._lengths.max())):
            has = lengths > position
            out[ends[:-1][has] + position] = self._utf8_bytes[self._starts[raw[has]] + position]
        buffers = [None, pa.py_buffer(ends[offsets].astype(np.int32)), pa.py_buffer(out)]
        return pa.Array.from_buffers(pa.string(), len(offsets) - 1, buffers)


CYYMMDD_YEARS = range(1900, 2900)
"""The years a CYYMMDD date can hold: its digit C (0 to 9) counts the centuries after 1900."""


class CyymmddDate(Decoder):
    """IBM i CYYMMDD numeric date (DECIMAL(7,0)): C=0 → 19xx, C=1 → 20xx; 0 means "no date"."""

    arrow_type = pa.date32()
    reason = "is not a valid CYYMMDD date"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        if (undeliverable := reject_undeliverable(self, columns)) is not None:
            return undeliverable
        numbers, nulls = to_int64(columns[0])
        century, rest = numbers // 1_000_000, numbers % 1_000_000
        years = CYYMMDD_YEARS.start + century * 100 + rest // 10_000
        dates, valid = dates_from_parts(years, rest // 100 % 100, rest % 100)
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
        if (undeliverable := reject_undeliverable(self, columns)) is not None:
            return undeliverable
        numbers, nulls = to_int64(columns[0])
        seconds, valid = _seconds_of_day(numbers)
        invalid = ~valid & ~nulls
        values = pa.array(np.where(valid, seconds, 0) * 1_000_000, type=pa.time64("us"), mask=~valid | nulls)
        return Decoded(values, invalid if invalid.any() else None, self.reason)


class CyymmddHhmmssTimestamp(Decoder):
    """A CYYMMDD date column plus an HHMMSS time column → one timestamp (change-tracking pairs)."""

    arrow_type = pa.timestamp("us")
    reason = "is not a valid CYYMMDD date with HHMMSS time"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        if (undeliverable := reject_undeliverable(self, columns)) is not None:
            return undeliverable
        date = CyymmddDate()([columns[0]])
        numbers, time_nulls = to_int64(columns[1])
        seconds, time_valid = _seconds_of_day(numbers)
        date_valid = ~date.values.is_null().to_numpy(zero_copy_only=False)
        valid = date_valid & time_valid & ~time_nulls
        days = date.values.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        micros = (days * 86_400 + np.where(time_valid, seconds, 0)) * 1_000_000
        invalid = date.invalid_rows() | (date_valid & ~time_valid)
        values = pa.array(micros, type=pa.timestamp("us"), mask=~valid)
        return Decoded(values, invalid if invalid.any() else None, self.reason)
