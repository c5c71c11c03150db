"""Journal record images decode to the values IBM's documented formats give them, and a layout that does not fit
is refused.

Expected bytes are written by hand from IBM's examples (ILE RPG Reference: 21544 packed is x'21544F', zoned
x'F2F1F5F4F4'; packed +123.45 in DECIMAL(5,2) is x'12345F'), and the property tests encode random rows with a
small encoder written here from the same documentation, independent of the decoder's numpy code.
"""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import re
import struct
from collections.abc import Sequence

import ebcdic  # noqa: F401  (registers cp273, cp277 ... cp1149)
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erp_pipelines.core.decoders import UNDELIVERABLE, Decimal
from erp_pipelines.core.source import SchemaDriftError
from erp_pipelines.sources.as400.decoders import EBCDIC_CCSIDS
from erp_pipelines.sources.as400.record_image import RecordImageError, RecordLayout

Column = tuple  # (name, DATA_TYPE, LENGTH, NUMERIC_SCALE, IS_NULLABLE, CCSID)


def catalog(*columns: Column) -> list[dict[str, object]]:
    return [
        {"SYSTEM_COLUMN_NAME": name[:10], "COLUMN_NAME": name, "ORDINAL_POSITION": position, "DATA_TYPE": kind,
         "LENGTH": length, "NUMERIC_SCALE": scale, "IS_NULLABLE": "Y" if nullable else "N", "CCSID": ccsid}
        for position, (name, kind, length, scale, nullable, ccsid) in enumerate(columns, start=1)
    ]


def layout_of(*columns: Column) -> RecordLayout:
    return RecordLayout.from_catalog("LIB.FILE", catalog(*columns))


def decoded(layout: RecordLayout, images: Sequence[str], nulls: Sequence[str] | None = None,
            columns: Sequence[str] | None = None) -> list[dict[str, object]]:
    names = columns or [field.column.name for field in layout.fields]
    return pa.Table.from_batches(layout.decode(images, nulls, names)).to_pylist() if images else []


def hex_ebcdic(text: str, ccsid: int = 37) -> str:
    return text.encode(f"cp{ccsid:03d}").hex().upper()


# --- hand-computed examples ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "precision", "scale", "image", "value"), [
    ("DECIMAL", 5, 2, "12345F", "123.45"),     # ILE RPG / the brief: +123.45 in DECIMAL(5,2)
    ("DECIMAL", 5, 2, "12345D", "-123.45"),
    ("DECIMAL", 5, 2, "12345C", "123.45"),     # C: positive (IBM MQ, packed encoding on IBM i)
    ("DECIMAL", 5, 2, "12345B", "-123.45"),    # B: negative (IBM decimal sign convention)
    ("DECIMAL", 5, 0, "21544F", "21544"),      # ILE RPG Reference, "Packed-Decimal Format" figure
    ("DECIMAL", 6, 2, "0123456F", "1234.56"),  # even precision: a leading 0 nibble, p // 2 + 1 = 4 bytes
    ("DECIMAL", 7, 0, "0000000F", "0"),
    ("DECIMAL", 7, 0, "1250727F", "1250727"),  # a CYYMMDD date, as PRODUCTS.CHGDAT holds it
    ("NUMERIC", 5, 0, "F2F1F5F4F4", "21544"),  # ILE RPG Reference, "Zoned-Decimal Format" figure
    ("NUMERIC", 5, 2, "F1F2F3F4D5", "-123.45"),
    ("NUMERIC", 5, 2, "F1F2F3F4C5", "123.45"),
    ("NUMERIC", 1, 0, "D0", "0"),              # negative zero is zero
    ("DECIMAL", 31, 5, "9" * 31 + "D", "-" + "9" * 26 + ".99999"),  # max DDS precision, beyond 64 bits
    ("NUMERIC", 38, 0, "F9" * 37 + "F9", "9" * 38),
])
def test_decimals_decode_as_documented(kind: str, precision: int, scale: int, image: str, value: str) -> None:
    layout = layout_of(("N", kind, precision, scale, False, None))
    assert layout.record_length == len(image) // 2
    batch = layout.decode([image], None, ["N"])[0]
    assert batch.schema.field("N").type == pa.decimal128(precision, scale)
    assert batch.column(0).to_pylist() == [decimal.Decimal(value)]


def test_a_record_is_its_fields_in_ordinal_order_without_padding() -> None:
    """The shape of IBM's own example table (IBM Support, "How to extract and search ENTRY_DATA"): CHAR(32) at
    1, VARCHAR(128) at 33 for 130 bytes, DECIMAL(11,2) 6 bytes, NUMERIC(11,2) 11 bytes, INT 4 bytes."""
    layout = layout_of(("F1", "CHAR", 32, None, True, 37), ("F2", "VARCHAR", 128, None, True, 37),
                       ("N1", "DECIMAL", 11, 2, True, None), ("N2", "NUMERIC", 11, 2, True, None),
                       ("N3", "INTEGER", 4, 0, True, None))
    assert [(field.offset + 1, field.width) for field in layout.fields] == [
        (1, 32), (33, 130), (163, 6), (169, 11), (180, 4)]
    image = (hex_ebcdic("A".ljust(32)) + "000A" + hex_ebcdic("ABCDEFGHIJ") + "00" * 118 + "00000001234F"
             + "F0F0F0F0F0F0F0F5F6F7F8" + "0000005A")
    assert decoded(layout, [image], ["F0F0F0F0F0"]) == [
        {"F1": "A".ljust(32), "F2": "ABCDEFGHIJ", "N1": decimal.Decimal("12.34"), "N2": decimal.Decimal("56.78"),
         "N3": 90}]


def test_binary_integers_are_big_endian_twos_complement() -> None:
    layout = layout_of(("S", "SMALLINT", 2, 0, False, None), ("I", "INTEGER", 4, 0, False, None),
                       ("B", "BIGINT", 8, 0, False, None))
    rows = decoded(layout, ["FFFE" + "7FFFFFFF" + "8000000000000000", "0001" + "80000000" + "FFFFFFFFFFFFFFFF"])
    assert rows == [{"S": -2, "I": 2**31 - 1, "B": -(2**63)}, {"S": 1, "I": -(2**31), "B": -1}]
    types = layout.decode(["0" * 28], None, ["S", "I", "B"])[0].schema.types
    assert types == [pa.int16(), pa.int32(), pa.int64()]


def test_char_is_text_in_the_fields_ccsid_with_trailing_blanks_kept() -> None:
    layout = layout_of(("US", "CHAR", 4, None, False, 37), ("DE", "CHAR", 3, None, False, 273),
                       ("EU", "CHAR", 1, None, False, 1140), ("RAW", "CHAR", 2, None, False, 65535))
    # CCSID 37: 'A' x'C1', blank x'40'; CCSID 273 (Germany): 'Ä' x'4A', '@' x'B5'; CCSID 1140: '€' x'9F'.
    rows = decoded(layout, ["C1404040" + "4AB540" + "9F" + "C1F0"])
    assert rows == [{"US": "A   ", "DE": "Ä@ ", "EU": "€", "RAW": b"\xc1\xf0"}]
    types = layout.decode(["40" * 10], None, ["US", "RAW"])[0].schema.types
    assert types == [pa.string(), pa.binary(2)]


def test_varchar_is_a_two_byte_length_then_the_allocated_length() -> None:
    layout = layout_of(("V", "VARCHAR", 5, None, False, 37), ("X", "CHAR", 1, None, False, 37))
    assert layout.record_length == 8
    assert decoded(layout, ["0002C1C2" + "FFFFFF" + "C3", "0000" + "00" * 5 + "C4", "0005" + "C1" * 5 + "C5"]) == [
        {"V": "AB", "X": "C"}, {"V": "", "X": "D"}, {"V": "AAAAA", "X": "E"}]


def test_dates_times_and_timestamps_are_their_iso_character_form() -> None:
    """*ISO date yyyy-mm-dd (10 bytes), time hh.mm.ss (8), timestamp yyyy-mm-dd-hh.mm.ss.mmmmmm (26) (IBM i DDS
    for physical files, "Date (L), Time (T), and Timestamp (Z)")."""
    layout = layout_of(("D", "DATE", 4, None, False, 37), ("T", "TIME", 3, None, False, 37),
                       ("TS", "TIMESTMP", 10, 6, False, 37), ("T0", "TIMESTMP", 10, 0, False, 37))
    assert [field.width for field in layout.fields] == [10, 8, 26, 19]
    image = (hex_ebcdic("2024-02-29") + hex_ebcdic("23.59.58") + hex_ebcdic("0001-01-01-00.00.00.000001")
             + hex_ebcdic("9999-12-31-23.59.59"))
    assert image.startswith("F2F0F2F460F0F260F2F9")  # hand-encoded: digits x'F0'-x'F9', '-' x'60'
    batch = layout.decode([image], None, ["D", "T", "TS", "T0"])[0]
    assert batch.schema.types == [pa.date32(), pa.time32("s"), pa.timestamp("us"), pa.timestamp("s")]
    assert batch.to_pylist() == [{"D": dt.date(2024, 2, 29), "T": dt.time(23, 59, 58),
                                  "TS": dt.datetime(1, 1, 1, 0, 0, 0, 1), "T0": dt.datetime(9999, 12, 31, 23, 59, 59)}]


def test_null_value_indicators_mark_fields_null_by_ordinal() -> None:
    """One character per field: '0' (x'F0') not NULL, '1' (x'F1') NULL; blanks when the file has no null-capable
    field (IBM i Journal management, "Variable-length portion of the journal entry"). The bytes of a NULL field
    are not read: here they are blanks, no valid packed decimal."""
    layout = layout_of(("K", "CHAR", 1, None, False, 37), ("N", "DECIMAL", 5, 2, True, None),
                       ("C", "CHAR", 2, None, True, 37))
    images = ["C1" + "12345F" + "C1C2", "C2" + "404040" + "C1C2", "C3" + "00001F" + "4040"]
    assert decoded(layout, images, ["F0F0F0", "F0F1F1", None]) == [
        {"K": "A", "N": decimal.Decimal("123.45"), "C": "AB"}, {"K": "B", "N": None, "C": None},
        {"K": "C", "N": decimal.Decimal("0.01"), "C": "  "}]
    assert decoded(layout, images[:1], ["404040"]) == decoded(layout, images[:1], [""])
    assert decoded(layout, images[:1], ["4040"]) == decoded(layout, images[:1], None)  # blanks of any length


def test_columns_are_named_as_the_spec_reads_them_by_sql_or_system_name() -> None:
    layout = RecordLayout.from_catalog("LIB.FILE", [
        {"SYSTEM_COLUMN_NAME": "ITEMDESC  ", "COLUMN_NAME": "ITEM_DESCRIPTION", "ORDINAL_POSITION": 2,
         "DATA_TYPE": "CHAR", "LENGTH": 2, "NUMERIC_SCALE": None, "IS_NULLABLE": "N", "CCSID": 37},
        {"SYSTEM_COLUMN_NAME": "ITEMNO", "COLUMN_NAME": "ITEMNO", "ORDINAL_POSITION": 1, "DATA_TYPE": "CHAR",
         "LENGTH": 1, "NUMERIC_SCALE": None, "IS_NULLABLE": "N", "CCSID": 37}])
    batch = layout.decode(["C1C2C3"], None, ["ITEMDESC", "ITEMNO"])[0]
    assert batch.to_pylist() == [{"ITEMDESC": "BC", "ITEMNO": "A"}]
    assert not batch.schema.field("ITEMNO").nullable


# --- undeliverable fields ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "precision", "image"), [
    ("DECIMAL", 5, "404040"),       # blanks (CPYF FMTOPT(*NOCHK))
    ("DECIMAL", 5, "1A345F"),       # a digit nibble above 9
    ("DECIMAL", 5, "123450"),       # a digit where the sign belongs
    ("DECIMAL", 6, "1123456F"),     # the pad nibble of an even precision is not 0: 7 digits in DECIMAL(6)
    ("NUMERIC", 3, "F1F240"),       # zoned with a blank
    ("NUMERIC", 3, "F140F3"),       # zone 4 before the last byte
    ("NUMERIC", 3, "F1F209"),       # no sign zone
    ("DATE", 0, hex_ebcdic("02/29/2024")),    # *USA format, same length: rejected, not misread
    ("DATE", 0, hex_ebcdic("2023-02-29")),    # no such day
    ("TIME", 0, hex_ebcdic("24.00.00")),      # valid in Db2, no Arrow time
    ("VARCHAR", 3, "0004C1C2C3"),         # a length beyond the allocated 3 bytes
])
def test_invalid_field_bytes_are_handed_over_as_undeliverable(kind: str, precision: int, image: str) -> None:
    layout = layout_of(("K", "CHAR", 1, None, False, 37), ("N", kind, precision, 0, False, 37))
    good = {"DECIMAL": "0" * (2 * (precision // 2 + 1) - 1) + "F", "NUMERIC": "F0" * precision,
            "DATE": hex_ebcdic("2024-01-01"), "TIME": hex_ebcdic("12.00.00"),
            "VARCHAR": "0000" + "40" * precision}[kind]
    batches = layout.decode(["C1" + good, "C2" + image, "C3" + good, "C4" + good], None, ["K", "N"])
    assert [batch.num_rows for batch in batches] == [1, 1, 2]
    assert pa.Table.from_batches(batches[::2]).column("K").to_pylist() == ["A", "C", "D"]
    bad = batches[1]
    assert bad.column("K").to_pylist() == ["B"]
    assert bad.schema.field("N").type == pa.binary()
    assert bad.column("N").to_pylist() == [bytes.fromhex(image)]


def test_an_undeliverable_decimal_is_quarantined_by_the_tables_decoder_naming_sql0802() -> None:
    layout = layout_of(("N", "DECIMAL", 11, 4, False, None))
    batches = layout.decode(["00000001234F", "404040404040"], None, ["N"])
    assert Decimal(11, 4)([batches[0].column(0)]).values.to_pylist() == [decimal.Decimal("0.1234")]
    rejected = Decimal(11, 4)([batches[1].column(0)])
    assert rejected.invalid_rows().tolist() == [True]
    assert rejected.reason == UNDELIVERABLE


# --- refusals ----------------------------------------------------------------------------------------------------


def test_an_image_of_another_length_is_schema_drift_naming_file_and_lengths() -> None:
    layout = layout_of(("A", "CHAR", 2, None, False, 37), ("N", "DECIMAL", 5, 2, False, None))
    with pytest.raises(SchemaDriftError, match=r"LIB\.FILE: 1 journal record image\(s\) of 6 bytes where .* record "
                                               r"length of 5 bytes"):
        layout.decode(["C1C212345F", "C1C212345F00"], None, ["A"])
    with pytest.raises(RecordImageError, match="of 0 bytes"):
        layout.decode([None], None, ["A"])


def test_null_indicators_for_another_number_of_fields_are_schema_drift() -> None:
    layout = layout_of(("A", "CHAR", 1, None, True, 37), ("B", "CHAR", 1, None, True, 37))
    with pytest.raises(SchemaDriftError, match=r"null value indicators for 3 fields where .* has 2 fields"):
        layout.decode(["C1C2"], ["F0F0F0"], ["A"])


@pytest.mark.parametrize(("indicators", "message"), [
    ("F0F9", "MINENTDTA"), ("F0F2", "F2 are neither"), ("F040", "40 are neither")])
def test_unknown_or_minimized_null_indicators_are_refused(indicators: str, message: str) -> None:
    layout = layout_of(("A", "CHAR", 1, None, True, 37), ("B", "CHAR", 1, None, True, 37))
    with pytest.raises(RecordImageError, match=message):
        layout.decode(["C1C2"], [indicators], ["A"])


def test_a_null_in_a_not_null_column_is_refused() -> None:
    layout = layout_of(("A", "CHAR", 1, None, False, 37))
    with pytest.raises(RecordImageError, match="marks A NULL, which the catalog says is NOT NULL"):
        layout.decode(["C1"], ["F1"], ["A"])


@pytest.mark.parametrize(("column", "message"), [
    (("G", "GRAPHIC", 4, None, False, 1200), "GRAPHIC, which the journal decoder does not read"),
    (("U", "CHAR", 4, None, False, 1208), "CCSID 1208"),
    (("C", "CHAR", 4, None, False, None), "CCSID None"),
    (("P", "DECIMAL", 63, 0, False, None), "precision above 38"),
])
def test_layouts_the_decoder_cannot_read_are_refused_before_any_row(column: Column, message: str) -> None:
    with pytest.raises(RecordImageError, match=message):
        layout_of(column)


def test_a_column_not_in_the_layout_is_refused() -> None:
    with pytest.raises(RecordImageError, match="no column CHGDAT"):
        layout_of(("A", "CHAR", 1, None, False, 37)).decode(["C1"], None, ["CHGDAT"])


def test_images_that_are_not_hex_are_refused() -> None:
    layout = layout_of(("A", "CHAR", 1, None, False, 37))
    with pytest.raises(ValueError, match="not hexadecimal"):
        layout.decode(["ZZ"], None, ["A"])


# --- property tests: an independent encoder from the documented formats ----------------------------------------

POSITIVE_SIGNS, NEGATIVE_SIGNS = "FCAE", "DB"


def packed(value: int, precision: int, sign: str) -> str:
    return str(abs(value)).rjust(2 * (precision // 2 + 1) - 1, "0") + sign


def zoned(value: int, precision: int, sign: str) -> str:
    digits = str(abs(value)).rjust(precision, "0")
    return "".join("F" + digit for digit in digits[:-1]) + sign + digits[-1]


def text_alphabet(ccsid: int) -> str:
    """Characters the code page has at x'41'-x'FE', less controls (blank is x'40' and added by padding)."""
    characters = bytes(range(0x41, 0xFF)).decode(codecs.lookup(f"cp{ccsid:03d}").name)
    return "".join(c for c in characters if not re.fullmatch(r"[\x00-\x1f\x7f-\x9f]", c))


@st.composite
def field_and_values(draw: st.DrawFn, rows: int) -> tuple[Column, list[tuple[str, object]]]:
    """A random column and, per row, its image bytes (hex) and the value the decoder must give (None = NULL)."""
    kind = draw(st.sampled_from(["CHAR", "VARCHAR", "DECIMAL", "NUMERIC", "SMALLINT", "INTEGER", "BIGINT", "DATE",
                                 "TIME", "TIMESTMP"]))
    nullable = draw(st.booleans())
    length, scale, ccsid = 0, None, None
    if kind in ("CHAR", "VARCHAR"):
        length, ccsid = draw(st.integers(1, 12)), draw(st.sampled_from([*EBCDIC_CCSIDS, 65535]))
    elif kind in ("DECIMAL", "NUMERIC"):
        length = draw(st.integers(1, 38))
        scale = draw(st.integers(0, length))
    elif kind == "TIMESTMP":
        scale = draw(st.sampled_from([0, 3, 6, 9]))
    column = (f"C{draw(st.integers(0, 10**6))}", kind, length, scale, nullable, ccsid)
    cells: list[tuple[str, object]] = []
    for _ in range(rows):
        null = nullable and draw(st.booleans())
        cells.append(draw(cell(column, null)))
    return column, cells


@st.composite
def cell(draw: st.DrawFn, column: Column, null: bool) -> tuple[str, object]:
    _, kind, length, scale, _, ccsid = column
    if kind in ("CHAR", "VARCHAR"):
        if ccsid == 65535:
            raw = draw(st.binary(min_size=0 if kind == "VARCHAR" else length, max_size=length))
            value: object = raw
            body = raw.hex()
        else:
            text = draw(st.text(text_alphabet(ccsid), max_size=length))
            if kind == "CHAR":
                text = text.ljust(length)
            value, body = text, text.encode(f"cp{ccsid:03d}").hex()
        if kind == "VARCHAR":
            body = f"{len(body) // 2:04X}" + body + "00" * (length - len(body) // 2)
    elif kind in ("DECIMAL", "NUMERIC"):
        number = draw(st.integers(-(10**length) + 1, 10**length - 1))
        sign = draw(st.sampled_from(NEGATIVE_SIGNS if number < 0 else POSITIVE_SIGNS))
        body = packed(number, length, sign) if kind == "DECIMAL" else zoned(number, length, sign)
        value = decimal.Decimal(number).scaleb(-scale, decimal.Context(prec=40))
    elif kind in ("SMALLINT", "INTEGER", "BIGINT"):
        bits, code = {"SMALLINT": (16, ">h"), "INTEGER": (32, ">i"), "BIGINT": (64, ">q")}[kind]
        value = draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
        body = struct.pack(code, value).hex()
    elif kind == "DATE":
        value = draw(st.dates())
        body = hex_ebcdic(value.isoformat())  # type: ignore[union-attr]
    elif kind == "TIME":
        value = draw(st.times()).replace(microsecond=0)
        body = hex_ebcdic(value.strftime("%H.%M.%S"))  # type: ignore[union-attr]
    else:
        earliest, latest = (dt.datetime(1678, 1, 1), dt.datetime(2262, 1, 1)) if scale == 9 else (
            dt.datetime.min, dt.datetime.max)  # timestamp[ns] spans 1677-2262
        moment = draw(st.datetimes(earliest, latest)).replace(microsecond=0)
        step = 1000 if scale == 9 else 1  # nanoseconds a datetime can hold
        fraction = draw(st.integers(0, (10**scale - 1) // step)) * step if scale else 0
        value = moment.replace(microsecond=fraction * 10 ** (6 - scale) if scale <= 6 else fraction // 1000)
        text = (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}-{moment.hour:02d}.{moment.minute:02d}."
                f"{moment.second:02d}" + (f".{fraction:0{scale}d}" if scale else ""))
        body = hex_ebcdic(text)
    if null:
        return "40" * (len(body) // 2), None  # a NULL field's bytes are not read: blanks, valid or not
    return body, value


@st.composite
def files(draw: st.DrawFn) -> tuple[list[Column], list[str], list[str] | None, list[dict[str, object]]]:
    rows = draw(st.integers(1, 12))
    drawn = draw(st.lists(field_and_values(rows), min_size=1, max_size=8))
    columns = [(f"F{position}", *column[1:]) for position, (column, _) in enumerate(drawn)]
    images = ["".join(cells[row][0] for _, cells in drawn) for row in range(rows)]
    expected = [{column[0]: cells[row][1] for column, (_, cells) in zip(columns, drawn, strict=True)}
                for row in range(rows)]
    if any(column[4] for column in columns):
        indicators: list[str] | None = [
            "".join("F1" if cells[row][1] is None and column[4] else "F0"
                    for column, (_, cells) in zip(columns, drawn, strict=True))
            for row in range(rows)]
    else:
        indicators = draw(st.sampled_from([None, [""] * rows, ["40" * len(columns)] * rows]))
    return columns, images, indicators, expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files())
def test_random_layouts_decode_what_the_documented_format_encodes(
    file: tuple[list[Column], list[str], list[str] | None, list[dict[str, object]]],
) -> None:
    columns, images, indicators, expected = file
    layout = layout_of(*columns)
    assert layout.record_length == len(images[0]) // 2
    batches = layout.decode(images, indicators, [column[0] for column in columns])
    assert len(batches) == 1  # every drawn value is valid: nothing undeliverable
    assert batches[0].to_pylist() == expected
    assert batches[0].schema.types == [field.arrow_type() for field in layout.fields]
