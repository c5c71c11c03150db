"""Journal record images (ENTRY_DATA of QSYS2.DISPLAY_JOURNAL) decoded into the Arrow batches the ODBC read delivers.

A journal entry of code R carries the record as the file's fixed-length record format: every field in ordinal
order, no padding, each in its stored form (IBM Support, "How to extract and search ENTRY_DATA in DISPLAY_JOURNAL
table function": CHAR(32) at 1, VARCHAR(128) ALLOCATE(16) at 33 for 130 bytes, DECIMAL(11,2) 6 bytes, NUMERIC(11,2)
11 bytes, INT 4 bytes). The layout comes from QSYS2.SYSCOLUMNS2 (`RecordLayout.from_catalog`); an image of any
other length stops the read with schema drift, never a misdecoded row. The images are selected as
`HEX(ENTRY_DATA)` and `HEX(NULL_VALUE_INDICATORS)` and decoded column by column with numpy over all rows at once.

The Arrow type of each column is the one arrow-odbc gives the same column read through ODBC (arrow-odbc
schema.rs: DECIMAL/NUMERIC(p<=38, s) → decimal128(p, s), SMALLINT/INTEGER/BIGINT → int16/int32/int64, DATE →
date32, TIME(0) → time32[s], TIMESTAMP(p) → timestamp[s|ms|us|ns] by p, CHAR/VARCHAR → string with CHAR's
trailing blanks kept, CCSID 65535 CHAR(n)/VARCHAR → fixed_size_binary(n)/binary), so the table's decoders,
validation and quarantine apply unchanged to journal rows.

A field whose bytes are no valid value of its type (a packed or zoned decimal with a bad digit, zone or sign, a
date that is not *ISO) is handed over as the ODBC path hands over a field Db2 for i cannot deliver (SQL0802): the
row goes in a batch of its own with that field as its stored bytes (binary), which the decoders reject as
UNDELIVERABLE, naming the field (erp_pipelines.core.decoders.reject_undeliverable).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from erp_pipelines.core.decoders import dates_from_parts
from erp_pipelines.core.source import SchemaDriftError
from erp_pipelines.sources.as400.decoders import EBCDIC_CCSIDS, EbcdicText
from erp_pipelines.sources.as400.layout import FOR_BIT_DATA, SourceColumn

# The QSYS2.SYSCOLUMNS2 columns `RecordLayout.from_catalog` reads, by name, from each row.
CATALOG_COLUMNS = (
    "SYSTEM_COLUMN_NAME", "COLUMN_NAME", "ORDINAL_POSITION", "DATA_TYPE", "LENGTH", "NUMERIC_SCALE",
    "IS_NULLABLE", "CCSID",
)

# Null value indicators, "a character string with one character for each field in the physical file": '0' not
# NULL, '1' NULL, '9' not recorded (a minimized entry, MINENTDTA(*FLDBDY)); blanks when the file has no
# null-capable field (IBM i 7.6, Journal management, "Variable-length portion of the journal entry"). The
# characters are EBCDIC: '0' = x'F0', '1' = x'F1', '9' = x'F9', blank = x'40' (CCSID 37 code page).
NOT_NULL, NULL, NOT_RECORDED, BLANK = 0xF0, 0xF1, 0xF9, 0x40

# EBCDIC digits are x'F0'-x'F9'; '-' is x'60', '.' x'4B', ':' x'7A' in every CCSID listed in EBCDIC_CCSIDS
# (they are in the invariant character set; CCSID 37 code page).
HYPHEN, PERIOD, COLON = 0x60, 0x4B, 0x7A

# Packed and zoned decimal signs. IBM i: "The standard signs are used: hexadecimal F for positive numbers and
# hexadecimal D for negative numbers" (ILE RPG Reference, "Packed-Decimal Format" and "Zoned-Decimal Format");
# IBM MQ on IBM i also writes C (positive). A to F are the valid sign codes of IBM decimal data, A, C, E, F
# positive and B, D negative (the IBM decimal convention, as SAS documents it for IBM packed and zoned data);
# 0-9 in the sign position is no valid decimal, and Db2 for i answers it with SQL0802.
NEGATIVE_SIGNS = (0xB, 0xD)
SIGN_CODES = range(0xA, 0x10)

# Db2 for i DECIMAL goes up to 63 digits; arrow-odbc maps precision above 38 to text, which is not decoded here.
MAX_DECIMAL_PRECISION = 38


class RecordImageError(SchemaDriftError):
    """A journal entry does not match the file's layout from the catalog; decoding it would misdecode rows."""


@dataclass(frozen=True)
class FieldLayout:
    """One field of the record format: where it sits in the image, how many bytes it takes, its Arrow type."""

    column: SourceColumn
    ordinal: int
    nullable: bool
    offset: int
    width: int  # bytes in the record image

    @property
    def binary(self) -> bool:
        return self.column.ccsid == FOR_BIT_DATA

    def arrow_type(self) -> pa.DataType:
        kind, column = self.column.data_type, self.column
        if kind in ("DECIMAL", "NUMERIC"):
            return pa.decimal128(column.length, column.scale or 0)
        if kind in _INTEGER_TYPES:
            return _INTEGER_TYPES[kind][1]
        if kind == "DATE":
            return pa.date32()
        if kind == "TIME":
            return pa.time32("s")
        if kind == "TIMESTMP":
            return pa.timestamp(_timestamp_unit(_timestamp_precision(column)))
        if kind == "CHAR":
            return pa.binary(column.length) if self.binary else pa.string()
        return pa.binary() if self.binary else pa.string()


# Big-endian two's complement binary integers: SMALLINT 2 bytes, INTEGER 4, BIGINT 8 (Db2 for i SQL reference,
# "Numbers": small, large and big integers are binary integers of 16, 32 and 64 bits).
_INTEGER_TYPES = {"SMALLINT": (">i2", pa.int16()), "INTEGER": (">i4", pa.int32()), "BIGINT": (">i8", pa.int64())}


def _timestamp_precision(column: SourceColumn) -> int:
    """Fractional-second digits of a TIMESTAMP column: NUMERIC_SCALE when the catalog gives it, else 6, the only
    precision before IBM i 7.2 (the layout check catches any other: the image length differs)."""
    return 6 if column.scale is None else column.scale


def _timestamp_unit(precision: int) -> str:
    """arrow-odbc's unit for TIMESTAMP(p): 0 → s, 1-3 → ms, 4-6 → us, more → ns."""
    return "s" if precision == 0 else "ms" if precision <= 3 else "us" if precision <= 6 else "ns"


def _field_width(column: SourceColumn, where: str) -> int:
    """Bytes the field takes in the record format, or RecordImageError for a type this decoder does not read."""
    kind = column.data_type
    if kind == "CHAR" or (kind == "VARCHAR"):
        if column.ccsid != FOR_BIT_DATA and column.ccsid not in EBCDIC_CCSIDS:
            raise RecordImageError(
                f"{where}: column {column.name} is {kind} in CCSID {column.ccsid}, which the journal decoder does not "
                f"read (EBCDIC CCSIDs {', '.join(map(str, EBCDIC_CCSIDS))} and 65535 only)"
            )
        # VARCHAR: a 2-byte length, then the full allocated length whatever ALLOCATE says (IBM Support example:
        # VARCHAR(128) ALLOCATE(16) takes 130 bytes).
        return column.length + (2 if kind == "VARCHAR" else 0)
    if kind in ("DECIMAL", "NUMERIC"):
        if not 1 <= column.length <= MAX_DECIMAL_PRECISION:
            raise RecordImageError(f"{where}: column {column.name} is {kind}({column.length}): precision above "
                                   f"{MAX_DECIMAL_PRECISION} is read as text through ODBC and not decoded here")
        # Packed: two digits a byte, the last byte one digit and the sign, so p // 2 + 1 bytes; zoned: one digit a
        # byte (ILE RPG Reference, "Packed-Decimal Format", "Zoned-Decimal Format"; IBM Support example:
        # DECIMAL(11,2) 6 bytes, NUMERIC(11,2) 11 bytes).
        return column.length // 2 + 1 if kind == "DECIMAL" else column.length
    if kind in _INTEGER_TYPES:
        return np.dtype(_INTEGER_TYPES[kind][0]).itemsize
    # Date, time and timestamp fields are held in their character form: *ISO date yyyy-mm-dd 10 bytes, time
    # 8 bytes (*ISO hh.mm.ss), timestamp yyyy-mm-dd-hh.mm.ss.mmmmmm 26 bytes (IBM i 7.4 DDS for physical files,
    # "Date (L), Time (T), and Timestamp (Z)"; DATFMT and TIMFMT default to *ISO).
    if kind == "DATE":
        return 10
    if kind == "TIME":
        return 8
    if kind == "TIMESTMP":
        precision = _timestamp_precision(column)
        return 19 + (precision + 1 if precision else 0)
    raise RecordImageError(f"{where}: column {column.name} is {kind}, which the journal decoder does not read")


@dataclass(frozen=True)
class RecordLayout:
    """The fixed-length record format of a physical file, from its catalog columns."""

    table: str
    fields: tuple[FieldLayout, ...]

    @classmethod
    def from_catalog(cls, table: str, rows: Sequence[Mapping[str, object]]) -> RecordLayout:
        """From QSYS2.SYSCOLUMNS2 rows (keys: CATALOG_COLUMNS). Catalog values are CHAR-padded: trimmed."""
        ordered = sorted(rows, key=lambda row: _optional_int(row["ORDINAL_POSITION"]) or 0)
        fields: list[FieldLayout] = []
        offset = 0
        for row in ordered:
            name = str(row["COLUMN_NAME"]).strip()
            column = SourceColumn(
                name, str(row["SYSTEM_COLUMN_NAME"] or name).strip(), str(row["DATA_TYPE"]).strip(),
                _optional_int(row["LENGTH"]) or 0, _optional_int(row["NUMERIC_SCALE"]), _optional_int(row["CCSID"]),
            )
            width = _field_width(column, table)
            nullable = str(row["IS_NULLABLE"]).strip() == "Y"
            fields.append(FieldLayout(column, _optional_int(row["ORDINAL_POSITION"]) or 0, nullable, offset, width))
            offset += width
        if not fields:
            raise RecordImageError(f"{table}: no columns in the catalog, so no record layout")
        return cls(table, tuple(fields))

    @property
    def record_length(self) -> int:
        return sum(field.width for field in self.fields)

    def field(self, name: str) -> FieldLayout:
        """A field by its SQL name or its system name."""
        for field in self.fields:
            if name in (field.column.name, field.column.system_name):
                return field
        raise RecordImageError(f"{self.table}: no column {name} in the record layout from the catalog")

    def decode(
        self, images_hex: pa.Array | pa.ChunkedArray | Sequence[str | None],
        null_indicators_hex: pa.Array | pa.ChunkedArray | Sequence[str | None] | None,
        columns: Sequence[str],
    ) -> list[pa.RecordBatch]:
        """The `columns` (the spec's names, SQL or system) of every image, as batches whose rows concatenated are
        the images in their order. One batch, unless some rows hold undeliverable fields: each such row is a
        batch of its own with those fields as their stored bytes (binary), as the ODBC path delivers them."""
        fields = [self.field(name) for name in columns]
        images = self._image_matrix(_strings(images_hex))
        rows = images.shape[0]
        indicators = self._null_matrix(_strings(null_indicators_hex) if null_indicators_hex is not None else None,
                                       rows)
        arrays: list[pa.Array] = []
        invalid = np.zeros((rows, len(fields)), dtype=bool)
        for position, field in enumerate(fields):
            nulls = indicators[:, field.ordinal - 1] == NULL if indicators is not None else np.zeros(rows, bool)
            if nulls.any() and not field.nullable:
                raise RecordImageError(f"{self.table}: a null value indicator marks {field.column.name} NULL, which "
                                       "the catalog says is NOT NULL")
            values, bad = _decode_field(field, images[:, field.offset : field.offset + field.width])
            invalid[:, position] = bad & ~nulls
            arrays.append(_with_nulls(values, nulls))
        schema = pa.schema([pa.field(name, field.arrow_type(), field.nullable)
                            for name, field in zip(columns, fields, strict=True)])
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        return _split_undeliverable(batch, images, fields, invalid)

    def _image_matrix(self, images: pa.StringArray) -> np.ndarray:
        """The images as a (rows, record length) byte matrix; RecordImageError unless each is as long as the layout."""
        lengths = _value_lengths(images)
        expected = 2 * self.record_length
        wrong = (lengths != expected) | ~images.is_valid().to_numpy(zero_copy_only=False)
        if wrong.any():
            found = sorted({int(length) // 2 for length in lengths[wrong]})
            raise RecordImageError(
                f"{self.table}: {int(wrong.sum())} journal record image(s) of {', '.join(map(str, found))} bytes where "
                f"the layout from the catalog (QSYS2.SYSCOLUMNS2) has a record length of {self.record_length} bytes: "
                "the file's layout changed since the entries were written (or the entries are minimized, "
                "MINENTDTA); a full sync reads the file as it is now"
            )
        return _unhex(images).reshape(len(images), self.record_length)

    def _null_matrix(self, indicators: pa.StringArray | None, rows: int) -> np.ndarray | None:
        """One indicator byte per field and row, or None when no row marks any field NULL."""
        if indicators is None or not len(indicators):
            return None
        if len(indicators) != rows:
            raise ValueError(f"{self.table}: {len(indicators)} null value indicator strings for {rows} images")
        indicators = pc.fill_null(indicators, "")
        raw = _unhex(indicators)
        ends = np.cumsum(_value_lengths(indicators) // 2)
        starts = ends - _value_lengths(indicators) // 2
        fields = len(self.fields)
        blank = raw == BLANK
        blanks_before = np.concatenate(([0], np.cumsum(blank)))
        all_blank = blanks_before[ends] - blanks_before[starts] == ends - starts  # incl. empty: no null-capable field
        per_field = ~all_blank
        if (per_field & (ends - starts != fields)).any():
            found = sorted({int(n) for n in (ends - starts)[per_field & (ends - starts != fields)]})
            raise RecordImageError(
                f"{self.table}: null value indicators for {', '.join(map(str, found))} fields where the layout from "
                f"the catalog has {fields} fields: the file's layout changed since the entries were written"
            )
        if not per_field.any():
            return None
        matrix = np.full((rows, fields), NOT_NULL, dtype=np.uint8)
        picked = starts[per_field][:, None] + np.arange(fields)
        matrix[per_field] = raw[picked]
        if (matrix == NOT_RECORDED).any():
            raise RecordImageError(f"{self.table}: journal entries with fields not recorded (null value indicator "
                                   "'9': minimized entries, MINENTDTA(*FLDBDY)); journal the file with "
                                   "MINENTDTA(*NONE)")
        unknown = (matrix != NOT_NULL) & (matrix != NULL)
        if unknown.any():
            found = ", ".join(sorted({f"{byte:02X}" for byte in matrix[unknown]}))
            raise RecordImageError(f"{self.table}: null value indicator byte(s) {found} are neither '0' nor '1'")
        return matrix


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _strings(values: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> pa.StringArray:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(values, pa.string())
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    return values  # type: ignore[return-value]


def _value_lengths(strings: pa.StringArray) -> np.ndarray:
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[strings.offset : strings.offset + len(strings) + 1]
    return np.diff(offsets).astype(np.int64)


def _unhex(strings: pa.StringArray) -> np.ndarray:
    """The bytes of all hex strings, concatenated (bytes.fromhex over the whole buffer, in C)."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[strings.offset : strings.offset + len(strings) + 1]
    data = strings.buffers()[2]
    if data is None or offsets[-1] == offsets[0]:
        return np.zeros(0, dtype=np.uint8)
    text = memoryview(data)[offsets[0] : offsets[-1]]
    try:
        raw = bytes.fromhex(bytes(text).decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("a journal image is not hexadecimal: select it as HEX(ENTRY_DATA)") from None
    if 2 * len(raw) != len(text):
        raise ValueError("a journal image holds blanks between its hex digits: select it as HEX(ENTRY_DATA)")
    return np.frombuffer(raw, dtype=np.uint8)


def _with_nulls(values: pa.Array, nulls: np.ndarray) -> pa.Array:
    if not nulls.any():
        return values
    return pc.if_else(pa.array(~nulls), values, pa.scalar(None, values.type))


def _decode_field(field: FieldLayout, raw: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """A field's values in all rows (placeholders where invalid) and the rows whose bytes are no valid value."""
    kind = field.column.data_type
    if kind == "DECIMAL":
        return _decimal(field, *_packed_digits(raw))
    if kind == "NUMERIC":
        return _decimal(field, *_zoned_digits(raw))
    if kind in _INTEGER_TYPES:
        numbers = np.ascontiguousarray(raw).view(_INTEGER_TYPES[kind][0]).ravel()
        return pa.array(numbers.astype(numbers.dtype.newbyteorder("=")), field.arrow_type()), np.zeros(len(raw), bool)
    if kind == "CHAR":
        flat = np.ascontiguousarray(raw).ravel()
        offsets = np.arange(len(raw) + 1, dtype=np.int64) * field.width
        return _text(field, flat, offsets), np.zeros(len(raw), bool)
    if kind == "VARCHAR":
        return _varchar(field, raw)
    return _datetime(field, raw)


def _packed_digits(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digits (most significant first), negative mask and invalid mask of packed decimals: each byte two digit
    nibbles, the last byte one digit and the sign nibble (ILE RPG Reference, "Packed-Decimal Format"; e.g.
    +123.45 in DECIMAL(5,2) is x'12345F')."""
    nibbles = np.empty((raw.shape[0], 2 * raw.shape[1]), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 0x0F
    digits, sign = nibbles[:, :-1], nibbles[:, -1]
    invalid = (digits > 9).any(axis=1) | (sign < SIGN_CODES.start)
    return digits, np.isin(sign, NEGATIVE_SIGNS), invalid


def _zoned_digits(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digits, negative mask and invalid mask of zoned decimals: one digit a byte in its low nibble, zone F, the
    last byte's zone the sign (ILE RPG Reference, "Zoned-Decimal Format"). A zone other than F before the last
    byte (blanks, x'40') is no valid zoned number: Db2 for i answers it with SQL0802 (IT Jungle, "SQL and Invalid
    Decimal Data")."""
    zones, digits = raw >> 4, raw & 0x0F
    sign = zones[:, -1]
    invalid = (digits > 9).any(axis=1) | (zones[:, :-1] != 0xF).any(axis=1) | (sign < SIGN_CODES.start)
    return digits, np.isin(sign, NEGATIVE_SIGNS), invalid


def _decimal(field: FieldLayout, digits: np.ndarray, negative: np.ndarray, invalid: np.ndarray
             ) -> tuple[pa.Array, np.ndarray]:
    """decimal128(p, s) from digit matrices. DECIMAL(p) with p even has one digit nibble more than p: it must be
    0 (the value would not fit the precision otherwise)."""
    precision = field.column.length
    extra = digits.shape[1] - precision
    if extra:
        invalid = invalid | (digits[:, :extra] != 0).any(axis=1)
        digits = digits[:, extra:]
    digits = np.where(invalid[:, None], 0, digits)
    kind = field.arrow_type()
    if precision <= 18:
        weights = 10 ** np.arange(precision - 1, -1, -1, dtype=np.int64)
        numbers = digits.astype(np.int64) @ weights
        numbers = np.where(negative & ~invalid, -numbers, numbers)
        words = np.empty((len(numbers), 2), dtype=np.int64)  # decimal128: little-endian 128-bit two's complement
        words[:, 0], words[:, 1] = numbers, numbers >> 63
        return pa.Array.from_buffers(kind, len(numbers), [None, pa.py_buffer(words)]), invalid
    # Above 18 digits no machine integer holds the value: Arrow parses the digits as text, all rows at once.
    scale = kind.scale
    text = np.empty((len(digits), precision + 2), dtype=np.uint8)
    text[:, 0] = np.where(negative & ~invalid, ord("-"), ord("0"))
    text[:, 1 : precision - scale + 1] = digits[:, : precision - scale] + ord("0")
    text[:, precision - scale + 1] = ord(".")
    text[:, precision - scale + 2 :] = digits[:, precision - scale :] + ord("0")
    offsets = np.arange(len(digits) + 1, dtype=np.int32) * text.shape[1]
    strings = pa.Array.from_buffers(pa.string(), len(digits), [None, pa.py_buffer(offsets), pa.py_buffer(text)])
    return pc.cast(strings, kind), invalid


@functools.cache
def _code_page(ccsid: int) -> EbcdicText:
    return EbcdicText(ccsid=ccsid)


def _text(field: FieldLayout, flat: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """CHAR/VARCHAR bytes in the field's CCSID as text, blanks kept; CCSID 65535 stays bytes, as ODBC gives it."""
    rows = len(offsets) - 1
    if field.binary:
        if field.column.data_type == "CHAR":
            return pa.Array.from_buffers(field.arrow_type(), rows, [None, pa.py_buffer(flat)])
        return pa.Array.from_buffers(pa.binary(), rows, [None, pa.py_buffer(offsets.astype(np.int32)),
                                                         pa.py_buffer(flat)])
    return _code_page(field.column.ccsid).to_utf8(flat, offsets)  # type: ignore[arg-type]


def _varchar(field: FieldLayout, raw: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """A 2-byte big-endian length, then the allocated length of which the first `length` bytes are the value. A
    length beyond the allocated length is no valid field."""
    lengths = (raw[:, 0].astype(np.int64) << 8) | raw[:, 1]
    invalid = lengths > field.column.length
    lengths = np.where(invalid, 0, lengths)
    data = raw[:, 2:]
    keep = np.arange(data.shape[1]) < lengths[:, None]
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    return _text(field, data[keep], offsets), invalid


def _ebcdic_number(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The number an EBCDIC digit string spells (x'F0'-x'F9' each), and whether every byte was a digit."""
    digits = raw.astype(np.int64) - 0xF0
    valid = ((digits >= 0) & (digits <= 9)).all(axis=1)
    weights = 10 ** np.arange(raw.shape[1] - 1, -1, -1, dtype=np.int64)
    return np.where(valid[:, None], digits, 0) @ weights, valid


def _datetime(field: FieldLayout, raw: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """DATE yyyy-mm-dd, TIME hh.mm.ss (or hh:mm:ss, *HMS/*JIS, same length), TIMESTAMP yyyy-mm-dd-hh.mm.ss.nnnnnn,
    in EBCDIC (IBM i DDS for physical files, "Date (L), Time (T), and Timestamp (Z)"; DATFMT/TIMFMT *ISO). A
    date in another format of the same length (*USA mm/dd/yyyy, *EUR dd.mm.yyyy) fails the separator check: it
    is rejected, not misread. TIME 24.00.00, valid in Db2, has no Arrow time value: rejected too."""
    kind = field.column.data_type
    rows = len(raw)
    valid = np.ones(rows, dtype=bool)
    days = seconds = np.zeros(rows, dtype=np.int64)
    if kind in ("DATE", "TIMESTMP"):
        years, ok_y = _ebcdic_number(raw[:, 0:4])
        months, ok_m = _ebcdic_number(raw[:, 5:7])
        day, ok_d = _ebcdic_number(raw[:, 8:10])
        dates, ok_date = dates_from_parts(years, months, day)
        valid &= ok_y & ok_m & ok_d & ok_date & (raw[:, 4] == HYPHEN) & (raw[:, 7] == HYPHEN)
        days = np.where(valid, dates.astype(np.int64), 0)
    if kind in ("TIME", "TIMESTMP"):
        start = 11 if kind == "TIMESTMP" else 0
        clock = raw[:, start : start + 8]
        hours, ok_h = _ebcdic_number(clock[:, 0:2])
        minutes, ok_mi = _ebcdic_number(clock[:, 3:5])
        secs, ok_s = _ebcdic_number(clock[:, 6:8])
        separators = ((clock[:, 2] == PERIOD) & (clock[:, 5] == PERIOD)) if kind == "TIMESTMP" else (
            ((clock[:, 2] == PERIOD) & (clock[:, 5] == PERIOD)) | ((clock[:, 2] == COLON) & (clock[:, 5] == COLON)))
        valid &= ok_h & ok_mi & ok_s & separators & (hours <= 23) & (minutes <= 59) & (secs <= 59)
        seconds = np.where(valid, hours * 3600 + minutes * 60 + secs, 0)
    if kind == "DATE":
        return pa.array(days.astype(np.int32), pa.date32()), ~valid
    if kind == "TIME":
        return pa.array(seconds.astype(np.int32), pa.time32("s")), ~valid
    valid &= raw[:, 10] == HYPHEN
    precision = _timestamp_precision(field.column)
    unit = _timestamp_unit(precision)
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    epoch_seconds = days * 86_400 + seconds
    # timestamp[ns] spans 1677-09-21 to 2262-04-11 only: a later or earlier moment has no value in that unit.
    valid &= np.abs(epoch_seconds) < np.iinfo(np.int64).max // per_second - 1
    moments = np.where(valid, epoch_seconds, 0) * per_second
    if precision:
        fraction, ok_f = _ebcdic_number(raw[:, 20 : 20 + precision])
        valid &= ok_f & (raw[:, 19] == PERIOD)
        digits = {"ms": 3, "us": 6, "ns": 9}[unit]
        if precision <= digits:
            fraction = fraction * 10 ** (digits - precision)
        else:  # TIMESTAMP(10..12): picoseconds beyond what timestamp[ns] holds are cut, as in a nanosecond read
            fraction = fraction // 10 ** (precision - digits)
        moments = moments + np.where(valid, fraction, 0)
    return pa.array(np.where(valid, moments, 0), field.arrow_type()), ~valid


def _split_undeliverable(
    batch: pa.RecordBatch, images: np.ndarray, fields: list[FieldLayout], invalid: np.ndarray
) -> list[pa.RecordBatch]:
    """The batch, cut around each row with undeliverable fields; such a row carries those fields as their stored
    bytes (binary), as the ODBC path's field-by-field read does (adapter.As400Extraction._field_by_field)."""
    bad_rows = np.flatnonzero(invalid.any(axis=1))
    if not len(bad_rows):
        return [batch]
    batches: list[pa.RecordBatch] = []
    start = 0
    for row in bad_rows:
        if row > start:
            batches.append(batch.slice(start, row - start))
        arrays = [
            pa.array([images[row, field.offset : field.offset + field.width].tobytes()], pa.binary())
            if invalid[row, position] else batch.column(position).slice(row, 1)
            for position, field in enumerate(fields)
        ]
        batches.append(pa.RecordBatch.from_arrays(arrays, names=batch.schema.names))
        start = row + 1
    if start < batch.num_rows:
        batches.append(batch.slice(start))
    return batches
