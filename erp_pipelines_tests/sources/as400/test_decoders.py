"""IBM i decoders: CYYMMDD dates, HHMMSS times, change stamps, EBCDIC text; bad values flagged, not raised."""

from __future__ import annotations

import datetime as dt
import decimal

import pandas as pd
import pyarrow as pa
import pytest

from erp_pipelines.core.decoders import Decimal, Integer
from erp_pipelines.sources.as400.decoders import CyymmddDate, CyymmddHhmmssTimestamp, EbcdicText, HhmmssTime


def _decimal7(value: int) -> pa.Array:
    return pa.array([decimal.Decimal(value)], pa.decimal128(7, 0))


@pytest.mark.parametrize(
    ("raw", "expected", "invalid"),
    [
        (1030101, dt.date(2003, 1, 1), False),
        (911231, dt.date(1991, 12, 31), False),  # century 0: the leading zero is dropped
        (1000101, dt.date(2000, 1, 1), False),
        (1240229, dt.date(2024, 2, 29), False),  # leap day
        (1230229, None, True),  # no 29 February in 2023
        (1251341, None, True),  # month 13
        (1250431, None, True),  # 31 April
        (1250100, None, True),  # day 0
        (0, None, False),  # "no date"
        (1250001, None, True),  # month 0
        (101, dt.date(1900, 1, 1), False),  # 0000101: the smallest date
        (9991231, dt.date(2899, 12, 31), False),  # century 9 is the largest
    ],
)
def test_cyymmdd(raw: int, expected: dt.date | None, invalid: bool) -> None:
    decoded = CyymmddDate()([_decimal7(raw)])
    assert decoded.values.to_pylist() == [expected]
    assert bool(decoded.invalid_rows()[0]) is invalid


def test_cyymmdd_null_is_no_date() -> None:
    decoded = CyymmddDate()([pa.array([None], pa.decimal128(7, 0))])
    assert decoded.values.to_pylist() == [None]
    assert not decoded.invalid_rows().any()


@pytest.mark.parametrize(
    ("raw", "expected", "invalid"),
    [(0, dt.time(0, 0), False), (235959, dt.time(23, 59, 59), False), (240000, None, True),
     (126000, None, True), (125960, None, True), (-1, None, True)],
)
def test_hhmmss(raw: int, expected: dt.time | None, invalid: bool) -> None:
    decoded = HhmmssTime()([pa.array([raw], pa.int64())])
    assert decoded.values.to_pylist() == [expected]
    assert bool(decoded.invalid_rows()[0]) is invalid


@pytest.mark.parametrize(
    ("date", "time", "expected", "invalid"),
    [
        (1250315, 134501, dt.datetime(2025, 3, 15, 13, 45, 1), False),
        (1250315, 256199, None, True),
        (1251341, 0, None, True),
        (0, 0, None, False),
    ],
)
def test_change_stamp(date: int, time: int, expected: dt.datetime | None, invalid: bool) -> None:
    decoded = CyymmddHhmmssTimestamp()([pa.array([date], pa.int64()), pa.array([time], pa.int64())])
    assert decoded.values.to_pylist() == [expected]
    assert bool(decoded.invalid_rows()[0]) is invalid


def test_ebcdic_bytes_decode_with_code_page_037() -> None:
    """CCSID 65535 columns: EBCDIC in, text out (accents included), trailing EBCDIC blanks dropped."""
    raw = pa.array(["GRÖSSE ½ ZOLL   ".encode("cp037"), b"", None, "   ".encode("cp037")], pa.binary())
    decoded = EbcdicText()([raw])
    assert decoded.values.to_pylist() == ["GRÖSSE ½ ZOLL", "", None, ""]
    assert not decoded.invalid_rows().any()
    assert EbcdicText(blank_as_null=True)([raw]).values.to_pylist() == ["GRÖSSE ½ ZOLL", None, None, None]


def test_ebcdic_bytes_that_are_no_text_are_rejected() -> None:
    """A packed number or x'00' fill in a FOR BIT DATA column decodes to control characters: not text. The
    rule is the text columns' one (CONTROL_CHARACTERS): C1 (x'15' is NEL, U+0085) and DEL are controls, the
    line feed (x'25') is not."""
    raw = pa.array([b"\x00\x00\x12\x3f", "OK".encode("cp037"), b"\xc1\x15", b"\xc1\x07", b"\xc1\x25"], pa.binary())
    decoded = EbcdicText()([raw])
    assert decoded.invalid_rows().tolist() == [True, False, True, True, False]
    assert decoded.values.to_pylist() == [None, "OK", None, None, "A\n"]
    assert decoded.reason == "is not EBCDIC text (CCSID 37)"


def test_every_text_decoder_and_the_text_rule_agree_on_control_characters() -> None:
    """One rule: a character is a control in a translated CHAR column exactly when EbcdicText rejects the byte
    that decodes to it (issue 11 item 9: U+0085 and U+009F loaded from CHAR, were rejected from FOR BIT DATA)."""
    from erp_pipelines.core.fields import no_control_characters

    characters = bytes(range(256)).decode("cp037")
    rejected_by_rule = ~no_control_characters(pd.Series(list(characters), dtype="string"), flag=True).to_numpy()
    rejected_by_decoder = EbcdicText()([pa.array([bytes([b]) for b in range(256)], pa.binary())]).invalid_rows()
    assert rejected_by_rule.tolist() == rejected_by_decoder.tolist()
    for code in ("\x85", "\x9f", "\x80", "\x7f", "\x00", "\x1b"):
        assert rejected_by_rule[characters.index(code)], repr(code)
    for allowed in ("\t", "\n", "\r", "\xa0", "A"):
        assert not rejected_by_rule[characters.index(allowed)], repr(allowed)


@pytest.mark.parametrize("ccsid", [37, 273, 277, 278, 280, 284, 285, 297, 500, 871, *range(1140, 1150)])
def test_ebcdic_decodes_with_the_configured_ccsid(ccsid: int) -> None:
    """Each national EBCDIC code page puts letters such as Ä, Ø, Ñ, £ and € on different bytes."""
    codec = f"cp{ccsid:03d}"
    text = "".join(c for c in "ÄÖÜäöüßØÆÅñÑ£§éàç€¤ AZ09" if c in bytes(range(256)).decode(codec))
    raw = pa.array([(text + "  ").encode(codec)], pa.binary(len(text) + 2))  # CHAR(n) FOR BIT DATA: fixed size
    decoded = EbcdicText(ccsid=ccsid)([raw])
    assert decoded.values.to_pylist() == [text.rstrip(" ")]
    assert decoded.reason == f"is not EBCDIC text (CCSID {ccsid})"


def test_an_unknown_ccsid_is_refused_when_the_spec_is_built() -> None:
    with pytest.raises(ValueError, match="CCSID 1208 is not an EBCDIC CCSID"):
        EbcdicText(ccsid=1208)


@pytest.mark.parametrize("decoder", [Decimal(11, 4), Integer(), CyymmddDate(), HhmmssTime()], ids=repr)
def test_stored_bytes_of_an_undeliverable_number_are_rejected_naming_sql0802(decoder) -> None:
    """The AS400 adapter hands over HEX() bytes of a field Db2 for i could not deliver (SQL0802)."""
    decoded = decoder([pa.array([b"\x40\x40\x40", None], pa.binary())])
    assert decoded.invalid_rows().tolist() == [True, False]
    assert decoded.values.to_pylist() == [None, None]
    assert "SQL0802" in decoded.reason
    stamp = CyymmddHhmmssTimestamp()([pa.array([b"\x40"], pa.binary()), pa.array([decimal.Decimal(1)])])
    assert stamp.invalid_rows().tolist() == [True] and "SQL0802" in stamp.reason


def test_ebcdic_accepts_fixed_width_slices_and_translated_text() -> None:
    fixed = pa.array(["AB".encode("cp037"), "CD".encode("cp037"), "E ".encode("cp037")], pa.binary(2))
    assert EbcdicText()([fixed.slice(1)]).values.to_pylist() == ["CD", "E"]
    variable = pa.array([b"\x00", "FG ".encode("cp037")], pa.binary()).slice(1)
    assert EbcdicText()([variable]).values.to_pylist() == ["FG"]
    assert EbcdicText()([pa.array(["TRANSLATED  "])]).values.to_pylist() == ["TRANSLATED"]  # TRANSLATE=1


@pytest.mark.parametrize("ccsid", [37, 273, 500, 1141, 1148])
def test_ebcdic_text_matches_an_independent_model_on_random_fields(ccsid: int) -> None:
    """2,000 random CHAR(1..12) FOR BIT DATA fields against a model written without the decoder's tables:
    Python's codec, trailing blanks dropped, and "control" as Unicode category Cc less tab, LF and CR."""
    import random
    import unicodedata

    rng = random.Random(ccsid)
    fields = [bytes(rng.choice([0x40, 0xC1, 0x81, 0xF0, rng.randrange(256)]) for _ in range(rng.randint(1, 12)))
              for _ in range(2_000)]

    def model(raw: bytes) -> str | None:
        text = raw.decode(f"cp{ccsid:03d}")
        controls = [c for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n\r"]
        return None if controls else text.rstrip(" ")

    decoded = EbcdicText(ccsid=ccsid)([pa.array(fields, pa.binary())])
    expected = [model(raw) for raw in fields]
    assert decoded.values.to_pylist() == expected
    assert decoded.invalid_rows().tolist() == [value is None for value in expected]
