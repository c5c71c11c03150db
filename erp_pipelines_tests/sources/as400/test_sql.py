"""The SQL sent to the AS400: generated from validated names, values bound, everything else refused."""

from __future__ import annotations

import pytest

from erp_pipelines.sources.as400.sql import (
    ALL_ROWS,
    FIRST_ROW,
    QualifiedTable,
    UnsafeSqlError,
    column_hex,
    connection_probe,
    count_rows,
    guard_select,
    journaling,
    latest_change,
    parse_whitelist,
    quote_identifier,
    select_keys,
    select_rows,
    system_names,
    table_columns,
    table_indexes,
    table_statistics,
)

PRODUCTS = QualifiedTable("PRODUCTLIB", "PRODUCTS")

# Names that are not ordinary IBM i names; injection payloads through every name are in
# erp_pipelines_tests/security/test_injection_payloads.py.
BAD_NAMES = [
    "products",  # lower case is not an ordinary IBM i name
    "1TABLE",
    "TABLE NAME",
    "",
    "A" * 129,
    'A" OR "1"="1',
    "_X",  # _ may not begin a system name
    "9LIB",
]


@pytest.mark.parametrize("name", ["$ITEMS", "#QTY", "@PRICE", "ITM$#@_9", "Q$" + "X" * 126])
def test_names_beginning_with_dollar_hash_at_are_ibm_i_names(name: str) -> None:
    """IBM i system names may begin with $, # or @ (SQL reference, Identifiers); they were refused."""
    assert quote_identifier(name) == f'"{name}"'
    table = QualifiedTable.parse(f"$LIB.{name}")
    guard_select(select_rows(table, [name, "#B"], order_by=[name]).sql, [table])


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_identifiers_refused(name: str) -> None:
    with pytest.raises(UnsafeSqlError, match="invalid IBM i identifier"):
        quote_identifier(name)


@pytest.mark.parametrize("text", ["PRODUCTLIB", "A.B.C", "LIB.;DROP", 'LIB."X"', "LIB.X Y"])
def test_bad_table_names_refused(text: str) -> None:
    with pytest.raises(UnsafeSqlError):
        QualifiedTable.parse(text)


def test_whitelist_parsing() -> None:
    allowed = parse_whitelist(" productlib.products ,INVENTORYLIB.INVENTORY,")
    assert allowed == {PRODUCTS, QualifiedTable("INVENTORYLIB", "INVENTORY")}
    with pytest.raises(UnsafeSqlError, match=r"expected LIBRARY\.TABLE"):
        parse_whitelist("PRODUCTLIB.PRODUCTS,PRICING")


def test_extraction_query_is_db2_for_i() -> None:
    statement = select_rows(
        PRODUCTS, ["ITEMNO", "CHGDAT", "CHGTIM"], changed_since=(1250101, 93000),
        change_columns=["CHGDAT", "CHGTIM"], order_by=["ITEMNO"],
    )
    assert statement.sql == (
        'SELECT "ITEMNO", "CHGDAT", "CHGTIM" FROM "PRODUCTLIB"."PRODUCTS" '
        'WHERE ("CHGDAT" > ? OR ("CHGDAT" = ? AND "CHGTIM" >= ?)) ORDER BY "ITEMNO" FOR READ ONLY'
    )
    assert statement.parameters == ("1250101", "1250101", "93000")
    newest = latest_change(PRODUCTS, ["CHGDAT", "CHGTIM"], 1261202, FIRST_ROW)
    generated_statements = (
        statement, select_rows(PRODUCTS, ["ITEMNO"], order_by=["ITEMNO"], optimize=ALL_ROWS), count_rows(PRODUCTS),
        newest, table_columns(PRODUCTS), connection_probe(), table_statistics(PRODUCTS), table_indexes(PRODUCTS),
        system_names(PRODUCTS), journaling("PRODUCTLIB", "PRODUCTS"),
        column_hex(PRODUCTS, "CHGDAT", ["ITEMNO"], ["A"]), select_keys(PRODUCTS, ["ITEMNO"], ["ITEMNO"], [["A"]]),
    )
    for generated in generated_statements:
        guard_select(generated.sql, [PRODUCTS])
        for postgres_only in ("LIMIT", "OFFSET", "::", "ILIKE", "RETURNING", "NOW()"):
            assert postgres_only not in generated.sql.upper()
    assert newest.sql == (
        'SELECT "CHGDAT", "CHGTIM" FROM "PRODUCTLIB"."PRODUCTS" WHERE "CHGDAT" <= ? '
        'ORDER BY "CHGDAT" DESC, "CHGTIM" DESC FETCH FIRST 1 ROWS ONLY OPTIMIZE FOR 1 ROW FOR READ ONLY'
    )
    assert newest.parameters == ("1261202",)  # sentinel stamps such as 9991231 lie beyond it
    assert select_rows(PRODUCTS, ["ITEMNO"], optimize=ALL_ROWS).sql.endswith(" OPTIMIZE FOR ALL ROWS FOR READ ONLY")
    assert column_hex(PRODUCTS, "CHGDAT", ["ITEMNO"], ["A"]).sql == (
        'SELECT HEX("CHGDAT") FROM "PRODUCTLIB"."PRODUCTS" WHERE "ITEMNO" = ? FOR READ ONLY'
    )


REFUSED_STATEMENTS = [
    'DELETE FROM "PRODUCTLIB"."PRODUCTS"',
    'UPDATE "PRODUCTLIB"."PRODUCTS" SET "SKU" = ? FOR READ ONLY',
    'INSERT INTO "PRODUCTLIB"."PRODUCTS" VALUES (?) FOR READ ONLY',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS"; DROP TABLE "PRODUCTLIB"."PRODUCTS" FOR READ ONLY',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" WHERE "SKU" = \'x\' OR 1=1 FOR READ ONLY',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" -- FOR READ ONLY',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" /* x */ FOR READ ONLY',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS"',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" FOR UPDATE',
    'SELECT * FROM "PRODUCTLIB"."SECRETS" FOR READ ONLY',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS", "QSYS2"."USER_INFO" FOR READ ONLY',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" WHERE "ITEMNO" IN (SELECT "ITEMNO" FROM "X"."Y") FOR READ ONLY',
    'SELECT * FROM PRODUCTLIB.PRODUCTS FOR READ ONLY',
    'CALL QSYS2.QCMDEXC(?) FOR READ ONLY',
    'VALUES 1',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" UNION SELECT * FROM "QSYS2"."SYSUSERS" FOR READ ONLY',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" WITH UR FOR READ ONLY',
    'SELECT * INTO "X"."Y" FROM "PRODUCTLIB"."PRODUCTS" FOR READ ONLY',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" FOR READ ONLY; COMMIT',
    'select pg_sleep(10) from "PRODUCTLIB"."PRODUCTS" FOR READ ONLY',
    '',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" OPTIMIZE FOR 10 ROWS FOR READ ONLY',
    'SELECT ALL * FROM "PRODUCTLIB"."PRODUCTS" FOR READ ONLY',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" FOR READ ONLY OPTIMIZE FOR ALL ROWS',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" OPTIMIZE FOR ALL ROWS OPTIMIZE FOR ALL ROWS FOR READ ONLY',
    'SELECT * FROM "PRODUCTLIB"."PRODUCTS" UNION ALL SELECT * FROM "PRODUCTLIB"."PRODUCTS" '
    'OPTIMIZE FOR ALL ROWS FOR READ ONLY',
    'SELECT * FROM "QSYS2"."USER_INFO" FOR READ ONLY',
]


@pytest.mark.parametrize("statement", REFUSED_STATEMENTS)
def test_guard_refuses(statement: str) -> None:
    with pytest.raises(UnsafeSqlError, match="refused SQL"):
        guard_select(statement, [PRODUCTS])


def test_backfill_range_query_is_db2_for_i_with_integer_markers_only() -> None:
    """A backfill's range: both bounds spelled out with basic predicates (Db2 for i compares row values only with
    = and <>), every value an integer parameter marker, the end excluded."""
    statement = select_rows(
        PRODUCTS, ["ITEMNO", "CHGDAT", "CHGTIM"], changed_since=(1261101, 0), changed_before=(1261115, 120000),
        change_columns=["CHGDAT", "CHGTIM"], order_by=["ITEMNO"], optimize=ALL_ROWS,
    )
    assert statement.sql == (
        'SELECT "ITEMNO", "CHGDAT", "CHGTIM" FROM "PRODUCTLIB"."PRODUCTS" '
        'WHERE ("CHGDAT" > ? OR ("CHGDAT" = ? AND "CHGTIM" >= ?)) '
        'AND ("CHGDAT" < ? OR ("CHGDAT" = ? AND "CHGTIM" < ?)) '
        'ORDER BY "ITEMNO" OPTIMIZE FOR ALL ROWS FOR READ ONLY'
    )
    assert statement.parameters == ("1261101", "1261101", "0", "1261115", "1261115", "120000")
    assert statement.streamed and all(value.isdigit() for value in statement.parameters)
    guard_select(statement.sql, [PRODUCTS])
