"""The stand-in's IBM i journal, read as the client reads it: through the ODBC driver as the read-only reader,
with `QSYS2.DISPLAY_JOURNAL` and the journal catalog views. Record images are decoded here by a decoder written
from IBM's format description (EBCDIC CCSID 37 text, packed and zoned decimals), independent of the stand-in."""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg2
import pyodbc
import pytest

from erp_pipelines.sources.as400.resource import As400Resource
from erp_sandbox.as400 import journal
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration

PRODUCTS = {"OBJECT_LIBRARY": "PRODUCTLIB", "OBJECT_NAME": "PRODUCTS"}
ITEM = "ITM000000001"


@dataclass(frozen=True)
class Field:
    name: str
    data_type: str
    length: int
    scale: int

    @property
    def size(self) -> int:
        """Bytes in the fixed-length record format."""
        return {"DECIMAL": self.length // 2 + 1, "NUMERIC": self.length, "INTEGER": 4, "SMALLINT": 2,
                "BIGINT": 8, "VARCHAR": self.length + 2}.get(self.data_type, self.length)

    def decode(self, raw: bytes) -> object:
        if self.data_type == "CHAR":
            return raw.decode("cp037")
        digits = raw.hex()
        if self.data_type == "DECIMAL":  # two digits a byte, the sign in the last nibble
            sign, digits = digits[-1], digits[:-1]
        elif self.data_type == "NUMERIC":  # zoned: the digit in each low nibble, the sign in the last zone
            sign, digits = digits[-2], digits[1::2]
        else:
            return int.from_bytes(raw, "big", signed=True)
        value = decimal.Decimal(int(digits)).scaleb(-self.scale)
        return -value if sign in "bd" else value


def layout(reader: pyodbc.Connection, library: str, table: str) -> list[Field]:
    rows = reader.cursor().execute(
        'SELECT "SYSTEM_COLUMN_NAME", "DATA_TYPE", "LENGTH", "NUMERIC_SCALE" FROM "QSYS2"."SYSCOLUMNS2" '
        'WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? ORDER BY "ORDINAL_POSITION"', library, table).fetchall()
    return [Field(row[0].strip(), row[1].strip(), row[2], row[3] or 0) for row in rows]


def decode(fields: list[Field], image: bytes) -> dict[str, object]:
    record, offset = {}, 0
    for field in fields:
        record[field.name] = field.decode(image[offset:offset + field.size])
        offset += field.size
    assert offset == len(image), "the image is longer or shorter than the layout"
    return record


@pytest.fixture
def reader(as400: As400Resource) -> Iterator[pyodbc.Connection]:
    """The client's connection: the read-only reader through psqlODBC (ReadOnly=1)."""
    with as400.connect() as connection:
        yield connection


def display_journal(connection: pyodbc.Connection, **parameters: object) -> list[dict[str, object]]:
    """DISPLAY_JOURNAL in PostgreSQL's named notation (Db2's unquoted parameter names), bound as markers."""
    named = {"JOURNAL_LIBRARY": "PRODUCTLIB", "JOURNAL_NAME": "QSQJRN", **parameters}
    arguments = ", ".join(f"{name} => ?" for name in named)
    cursor = connection.cursor().execute(
        'SELECT "SEQUENCE_NUMBER", "JOURNAL_CODE", "JOURNAL_ENTRY_TYPE", "COUNT_OR_RRN", "OBJECT", "OBJECT_TYPE", '
        '"COMMIT_CYCLE", "RECEIVER_NAME", "RECEIVER_LIBRARY", "JOB_NAME", "JOB_USER", "JOB_NUMBER", "USER_NAME", '
        '"PROGRAM_NAME", "PROGRAM_LIBRARY", "ENTRY_TIMESTAMP", HEX("ENTRY_DATA") AS "DATA", '
        'HEX("NULL_VALUE_INDICATORS") AS "NULLS" '
        f'FROM "QSYS2"."DISPLAY_JOURNAL"({arguments}) AS J', *named.values())
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def records(entries: list[dict[str, object]]) -> list[dict[str, object]]:
    return [entry for entry in entries if entry["JOURNAL_CODE"] == "R"]


@pytest.fixture
def owner(as400_owner_url: str) -> Iterator[psycopg2.extensions.connection]:
    connection = psycopg2.connect(as400_owner_url)
    connection.autocommit = True
    yield connection
    connection.close()


def position(owner: psycopg2.extensions.connection, library: str = "PRODUCTLIB") -> dict[str, object]:
    """Where the journal's next entry goes: the attached receiver and the next sequence number."""
    with owner.cursor() as cursor:
        cursor.execute('SELECT "ATTACHED_JOURNAL_RECEIVER_NAME" FROM "QSYS2"."JOURNAL_INFO" '
                       'WHERE "JOURNAL_LIBRARY" = %s', (library,))
        receiver = cursor.fetchone()[0]
        cursor.execute("select next_sequence from as400_journal.journal where library = %s", (library,))
        return {"STARTING_RECEIVER_LIBRARY": library, "STARTING_RECEIVER_NAME": receiver,
                "STARTING_SEQUENCE": int(cursor.fetchone()[0])}


def run(owner: psycopg2.extensions.connection, *statements: str) -> None:
    """One transaction (one commit cycle)."""
    owner.autocommit = False
    with owner.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    owner.commit()
    owner.autocommit = True


def product(owner: psycopg2.extensions.connection, item: str) -> tuple:
    with owner.cursor() as cursor:
        cursor.execute('select * from "PRODUCTLIB"."PRODUCTS" where "ITEMNO" = %s', (item,))
        return cursor.fetchone()


def as_row(record: dict[str, object]) -> tuple:
    return tuple(value.rstrip() if isinstance(value, str) else value for value in record.values())


def as_table_row(row: tuple) -> tuple:
    return tuple(value.rstrip() if isinstance(value, str) else value for value in row)


def test_each_operation_writes_its_entries_and_the_images_decode_back(
    seed: Callable[..., SeedManifest], owner: psycopg2.extensions.connection, reader: pyodbc.Connection,
) -> None:
    """*BOTH (the default): an insert is PT, an update UB + UP, a delete DL with the deleted image, a key
    change an update of the same record (RRN); every image decodes to the row, packed fields included."""
    seed(products=5, bad_share=0.0)
    start = position(owner)
    before = product(owner, ITEM)
    deleted = product(owner, "ITM000000002")
    run(owner, f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'ÉCROU 12', "CHGDAT" = 1260131
                   where "ITEMNO" = '{ITEM}'""")
    run(owner, """delete from "PRODUCTLIB"."PRODUCTS" where "ITEMNO" = 'ITM000000002'""")
    run(owner, """insert into "PRODUCTLIB"."PRODUCTS" ("ITEMNO", "ITEMDESC", "CRTDAT") values ('NEW1', 'NEU', -5)""")
    run(owner, """update "PRODUCTLIB"."PRODUCTS" set "ITEMNO" = 'NEW2' where "ITEMNO" = 'NEW1'""")
    entries = records(display_journal(reader, **start, **PRODUCTS))
    assert [entry["JOURNAL_ENTRY_TYPE"] for entry in entries] == ["UB", "UP", "DL", "PT", "UB", "UP"]
    fields = layout(reader, "PRODUCTLIB", "PRODUCTS")
    images = [decode(fields, bytes.fromhex(entry["DATA"])) for entry in entries]
    assert as_row(images[0]) == as_table_row(before)
    assert as_row(images[1]) == as_table_row(product(owner, ITEM))
    assert images[1]["ITEMDESC"].rstrip() == "ÉCROU 12" and images[1]["CHGDAT"] == 1260131
    assert as_row(images[2]) == as_table_row(deleted)
    assert images[3]["ITEMNO"].rstrip() == "NEW1" and images[3]["CRTDAT"] == -5
    assert (images[4]["ITEMNO"].rstrip(), images[5]["ITEMNO"].rstrip()) == ("NEW1", "NEW2")
    assert entries[0]["COUNT_OR_RRN"] == entries[1]["COUNT_OR_RRN"]
    assert entries[3]["COUNT_OR_RRN"] == entries[4]["COUNT_OR_RRN"] == entries[5]["COUNT_OR_RRN"]
    assert {entry["OBJECT"] for entry in entries} == {"PRODUCTS  PRODUCTLIBPRODUCTS  "}
    assert {entry["OBJECT_TYPE"] for entry in entries} == {"*QDDS"}
    assert {entry["NULLS"] for entry in entries} == {"40" * len(fields)}  # no null-capable field: blanks
    sequences = [entry["SEQUENCE_NUMBER"] for entry in entries]
    assert sequences == sorted(sequences) and sequences[0] > start["STARTING_SEQUENCE"]


def test_with_after_images_only_there_is_no_before_image_and_a_delete_carries_only_its_rrn(
    seed: Callable[..., SeedManifest], owner: psycopg2.extensions.connection, reader: pyodbc.Connection,
    as400_owner_url: str,
) -> None:
    seed(products=3, warehouses=2, bad_share=0.0)
    journal.start_journaling(as400_owner_url, "INVENTORYLIB.INVENTORY", "*AFTER")
    try:
        objects = reader.cursor().execute(
            'SELECT "JOURNAL_LIBRARY", "JOURNAL_NAME", "OBJECT_LIBRARY", "OBJECT_NAME", "JOURNAL_IMAGES" '
            'FROM "QSYS2"."JOURNALED_OBJECTS" ORDER BY "OBJECT_LIBRARY", "OBJECT_NAME"').fetchall()
        assert [tuple(row) for row in objects] == [("INVENTORYL", "QSQJRN", "INVENTORYL", "INVENTORY", "*AFTER"),
                                                   ("PRODUCTLIB", "QSQJRN", "PRODUCTLIB", "PRODUCTS", "*BOTH")]
        start = position(owner, "INVENTORYL")
        run(owner, f"""update "INVENTORYLIB"."INVENTORY" set "ONHAND" = -12.345 where "ITEMNO" = '{ITEM}'
                       and "WHSE" = '001'""")
        run(owner, f"""delete from "INVENTORYLIB"."INVENTORY" where "ITEMNO" = '{ITEM}' and "WHSE" = '001'""")
        entries = records(display_journal(reader, JOURNAL_LIBRARY="INVENTORYL", **start,
                                          OBJECT_LIBRARY="INVENTORYL", OBJECT_NAME="INVENTORY"))
        assert [entry["JOURNAL_ENTRY_TYPE"] for entry in entries] == ["UP", "DL"]
        updated = decode(layout(reader, "INVENTORYLIB", "INVENTORY"), bytes.fromhex(entries[0]["DATA"]))
        assert updated["ONHAND"] == decimal.Decimal("-12.345")
        assert entries[1]["DATA"] == "" and entries[1]["COUNT_OR_RRN"] == entries[0]["COUNT_OR_RRN"]
    finally:
        journal.start_journaling(as400_owner_url, "INVENTORYLIB.INVENTORY", "*BOTH")


def test_commit_cycles_rollbacks_and_work_outside_commitment_control(
    seed: Callable[..., SeedManifest], owner: psycopg2.extensions.connection, reader: pyodbc.Connection,
    as400_owner_url: str,
) -> None:
    """A transaction is a commit cycle: C SC, its R entries, C CM, each carrying the cycle (the SC's sequence).
    A rollback leaves the R entries, their rollback images newest first and C RB, and the data unchanged. The
    reader must name objects, so it sees the R entries of both cycles and no C entries."""
    seed(products=5, bad_share=0.0)
    start = position(owner)
    run(owner, "set local as400.job_name = 'ERPBATCH'", "set local as400.program_name = 'ORD100'",
        f"""update "PRODUCTLIB"."PRODUCTS" set "ITEMSTS" = 'I' where "ITEMNO" = '{ITEM}'""",
        """delete from "PRODUCTLIB"."PRODUCTS" where "ITEMNO" = 'ITM000000003'""")
    before = product(owner, ITEM)
    journal.journal_rolled_back(as400_owner_url, f"""
        update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'NEVER' where "ITEMNO" = '{ITEM}';
        delete from "PRODUCTLIB"."PRODUCTS" where "ITEMNO" = 'ITM000000004';
        insert into "PRODUCTLIB"."PRODUCTS" ("ITEMNO") values ('GHOST')""")
    assert product(owner, ITEM) == before and product(owner, "GHOST") is None
    assert product(owner, "ITM000000004") is not None
    run(owner, "set local as400.commitment_control = 'off'",
        f"""update "PRODUCTLIB"."PRODUCTS" set "UOM" = 'KG' where "ITEMNO" = '{ITEM}'""")
    with owner.cursor() as cursor:  # the owner has *OBJEXIST: the whole journal, C entries included
        cursor.execute('select "JOURNAL_CODE" || "JOURNAL_ENTRY_TYPE", "SEQUENCE_NUMBER", "COMMIT_CYCLE", '
                       '"JOB_NAME", "PROGRAM_NAME", hex("ENTRY_DATA") from "QSYS2"."DISPLAY_JOURNAL"('
                       'JOURNAL_LIBRARY => %s, JOURNAL_NAME => %s, STARTING_RECEIVER_NAME => %s, '
                       'STARTING_SEQUENCE => %s)',
                       ("PRODUCTLIB", "QSQJRN", start["STARTING_RECEIVER_NAME"], start["STARTING_SEQUENCE"]))
        everything = cursor.fetchall()
    assert [row[0] for row in everything] == [
        "CSC", "RUB", "RUP", "RDL", "CCM",
        "CSC", "RUB", "RUP", "RDL", "RPT", "RDR", "RUR", "RBR", "RUR", "CRB",
        "RUB", "RUP"]
    committed, rolled_back, outside = everything[:5], everything[5:15], everything[15:]
    assert {row[2] for row in committed} == {committed[0][1]}
    assert {row[2] for row in rolled_back} == {rolled_back[0][1]}
    assert {row[2] for row in outside} == {0}
    assert {(row[3], row[4]) for row in committed} == {("ERPBATCH", "ORD100")}
    # Newest first: DR removes the record PT added, UR puts back what DL removed, BR + UR reverse the update.
    assert rolled_back[5][5] == rolled_back[4][5] and rolled_back[6][5] == rolled_back[3][5]
    assert rolled_back[7][5] == rolled_back[2][5] and rolled_back[8][5] == rolled_back[1][5]
    types = [entry["JOURNAL_ENTRY_TYPE"] for entry in display_journal(reader, **start, **PRODUCTS)]
    assert types == ["UB", "UP", "DL", "UB", "UP", "DL", "PT", "DR", "UR", "BR", "UR", "UB", "UP"]


def test_receiver_changes_with_and_without_sequence_reset_and_a_deleted_receiver(
    seed: Callable[..., SeedManifest], owner: psycopg2.extensions.connection, reader: pyodbc.Connection,
    as400_owner_url: str,
) -> None:
    seed(products=3, bad_share=0.0)
    start = position(owner)
    first = start["STARTING_RECEIVER_NAME"]
    update = f"""update "PRODUCTLIB"."PRODUCTS" set "CHGTIM" = "CHGTIM" + 1 where "ITEMNO" = '{ITEM}'"""
    run(owner, update)
    second = journal.change_receiver(as400_owner_url, "PRODUCTLIB")
    run(owner, update)
    third = journal.change_receiver(as400_owner_url, "PRODUCTLIB", reset_sequence=True)
    run(owner, update)
    receivers = {row[0]: row for row in reader.cursor().execute(
        'SELECT "JOURNAL_RECEIVER_NAME", "STATUS", "FIRST_SEQUENCE_NUMBER", "LAST_SEQUENCE_NUMBER", '
        '"PREVIOUS_JOURNAL_RECEIVER", "NEXT_JOURNAL_RECEIVER", "DETACH_TIMESTAMP" '
        'FROM "QSYS2"."JOURNAL_RECEIVER_INFO" WHERE "JOURNAL_LIBRARY" = ?', "PRODUCTLIB").fetchall()}
    assert receivers[second][1:2] == ("ONLINE",) and receivers[third][1] == "ATTACHED"
    assert receivers[second][2] == receivers[first][3] + 1  # numbering continues ...
    assert receivers[third][2] == 1  # ... or restarts with SEQOPT(*RESET)
    assert (receivers[third][4], receivers[second][5], receivers[third][6]) == (second, third, None)
    entries = records(display_journal(reader, **start, **PRODUCTS))
    assert [(entry["RECEIVER_NAME"], entry["JOURNAL_ENTRY_TYPE"]) for entry in entries] == [
        (first, "UB"), (first, "UP"), (second, "UB"), (second, "UP"), (third, "UB"), (third, "UP")]
    assert entries[4]["SEQUENCE_NUMBER"] < entries[0]["SEQUENCE_NUMBER"]  # a reset: numbers repeat
    chain = records(display_journal(reader, STARTING_RECEIVER_NAME="*CURCHAIN", **PRODUCTS))
    assert chain[-6:] == entries
    current = records(display_journal(reader, **PRODUCTS))  # *CURRENT, the default: the attached receiver
    assert [entry["RECEIVER_NAME"] for entry in current] == [third, third]
    with pytest.raises(psycopg2.Error, match="CPF7022"):
        journal.delete_receiver(as400_owner_url, "PRODUCTLIB", third)
    for receiver in sorted(name for name in receivers if name < third):
        journal.delete_receiver(as400_owner_url, "PRODUCTLIB", receiver)
    assert reader.cursor().execute('SELECT "JOURNAL_RECEIVER_NAME" FROM "QSYS2"."JOURNAL_RECEIVER_INFO" '
                                   'WHERE "JOURNAL_LIBRARY" = ?', "PRODUCTLIB").fetchall()[0][0] == third
    with pytest.raises(pyodbc.Error, match=rf"CPF9801 Object {first} in library PRODUCTLIB not found"):
        display_journal(reader, **start, **PRODUCTS)
    assert [entry["RECEIVER_NAME"] for entry in records(display_journal(
        reader, STARTING_RECEIVER_NAME="*CURCHAIN", **PRODUCTS))] == [third, third]


def test_the_reader_must_name_objects_and_may_not_give_two_starting_points(
    seed: Callable[..., SeedManifest], owner: psycopg2.extensions.connection, reader: pyodbc.Connection,
) -> None:
    seed(products=3, bad_share=0.0)
    with pytest.raises(pyodbc.Error, match=r"CPF9802 .*\*OBJEXIST authority is required when OBJECT_NAME is omitted"):
        display_journal(reader)
    with pytest.raises(pyodbc.Error, match=r"\*OBJEXIST .* does not exist \(NOSUCHFILE\)"):
        display_journal(reader, OBJECT_LIBRARY="PRODUCTLIB", OBJECT_NAME="PRODUCTS NOSUCHFILE")
    with pytest.raises(pyodbc.Error, match="STARTING_TIMESTAMP and STARTING_SEQUENCE cannot both be specified"):
        display_journal(reader, STARTING_SEQUENCE=1, STARTING_TIMESTAMP="2020-01-01 00:00:00", **PRODUCTS)
    with pytest.raises(pyodbc.Error, match="CPF9801 Object QSQJRN in library INVENTORYLIB not found"):
        display_journal(reader, JOURNAL_LIBRARY="INVENTORYLIB", OBJECT_LIBRARY="INVENTORYL", OBJECT_NAME="INVENTORY")
    start = position(owner)
    run(owner, f"""update "PRODUCTLIB"."PRODUCTS" set "UOM" = 'LB' where "ITEMNO" = '{ITEM}'""",
        f"""update "PRODUCTLIB"."PRICING" set "CURCDE" = 'CHF' where "ITEMNO" = '{ITEM}'""")
    assert display_journal(reader, **start, OBJECT_LIBRARY="PRODUCTLIB", OBJECT_NAME="PRICING") == []
    both = display_journal(reader, **start, OBJECT_LIBRARY="PRODUCTLIB", OBJECT_NAME="PRICING, PRODUCTS",
                           JOURNAL_CODES="R", JOURNAL_ENTRY_TYPES="UP")
    assert [entry["JOURNAL_ENTRY_TYPE"] for entry in both] == ["UP"]
    stamp = both[0]["ENTRY_TIMESTAMP"]
    by_time = display_journal(reader, STARTING_TIMESTAMP=stamp, JOURNAL_ENTRY_TYPES="*RCD", **PRODUCTS)
    assert [entry["JOURNAL_ENTRY_TYPE"] for entry in by_time] == ["UB", "UP"]
    assert by_time[0]["USER_NAME"] == "AS400_OWNE" and by_time[0]["JOB_NAME"] == "QZDASOINIT"


def test_a_layout_change_gives_later_images_the_new_layout_and_null_indicators(
    seed: Callable[..., SeedManifest], owner: psycopg2.extensions.connection, reader: pyodbc.Connection,
    as400_owner_url: str,
) -> None:
    seed(products=3, bad_share=0.0)
    start = position(owner)
    old_fields = layout(reader, "PRODUCTLIB", "PRODUCTS")
    run(owner, f"""update "PRODUCTLIB"."PRODUCTS" set "UOM" = 'CS' where "ITEMNO" = '{ITEM}'""")
    journal.add_column(as400_owner_url, "PRODUCTLIB.PRODUCTS", "NOTE", "numeric(5, 1)", zoned=True)
    try:
        run(owner, f"""update "PRODUCTLIB"."PRODUCTS" set "NOTE" = -123.4 where "ITEMNO" = '{ITEM}'""")
        new_fields = layout(reader, "PRODUCTLIB", "PRODUCTS")
        assert new_fields[-1] == Field("NOTE", "NUMERIC", 5, 1)
        entries = display_journal(reader, **start, **PRODUCTS)
        assert [entry["JOURNAL_CODE"] + entry["JOURNAL_ENTRY_TYPE"] for entry in entries] == [
            "RUB", "RUP", "DCG", "RUB", "RUP"]
        assert len(bytes.fromhex(entries[1]["DATA"])) == sum(field.size for field in old_fields)
        assert decode(new_fields, bytes.fromhex(entries[4]["DATA"]))["NOTE"] == decimal.Decimal("-123.4")
        assert bytes.fromhex(entries[4]["DATA"])[-5:] == bytes.fromhex("f0f1f2f3d4")
        assert entries[3]["NULLS"] == "F0" * (len(new_fields) - 1) + "F1"  # NOTE was null before
        assert entries[4]["NULLS"] == "F0" * len(new_fields)
    finally:
        journal.drop_column(as400_owner_url, "PRODUCTLIB.PRODUCTS", "NOTE")


def test_entry_data_reaches_the_client_as_bytes_and_the_catalog_describes_the_journals(
    seed: Callable[..., SeedManifest], reader: pyodbc.Connection,
) -> None:
    seed(products=2, bad_share=0.0)
    cursor = reader.cursor().execute(
        'SELECT "ENTRY_DATA", HEX("ENTRY_DATA") FROM "QSYS2"."DISPLAY_JOURNAL"(JOURNAL_LIBRARY => ?, '
        'JOURNAL_NAME => ?, OBJECT_LIBRARY => ?, OBJECT_NAME => ?, JOURNAL_ENTRY_TYPES => ?) AS J '
        "FETCH FIRST 1 ROWS ONLY", "PRODUCTLIB", "QSQJRN", "PRODUCTLIB", "PRODUCTS", "PT")
    raw, hexed = cursor.fetchone()
    assert bytes(raw) == bytes.fromhex(hexed) and bytes(raw)[:3].decode("cp037") == "ITM"
    info = {tuple(row[:2]): row[2:] for row in reader.cursor().execute(
        'SELECT "JOURNAL_LIBRARY", "JOURNAL_NAME", "ATTACHED_JOURNAL_RECEIVER_LIBRARY", '
        '"ATTACHED_JOURNAL_RECEIVER_NAME" FROM "QSYS2"."JOURNAL_INFO"').fetchall()}
    assert set(info) == {("PRODUCTLIB", "QSQJRN"), ("INVENTORYL", "QSQJRN")}
    attached = {tuple(row) for row in reader.cursor().execute(
        'SELECT "JOURNAL_RECEIVER_LIBRARY", "JOURNAL_RECEIVER_NAME" FROM "QSYS2"."JOURNAL_RECEIVER_INFO" '
        "WHERE \"STATUS\" = 'ATTACHED'").fetchall()}
    assert attached == {tuple(value) for value in info.values()}
