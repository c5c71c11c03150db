"""The SQL sent to the AS400: generated from validated names, values bound, everything else refused."""

from __future__ import annotations

import pytest

from erp_pipelines.sources.as400.sql import (
    QualifiedTable,
    UnsafeSqlError,
    connection_probe,
    count_rows,
    guard_select,
    latest_change,
    parse_whitelist,
    quote_identifier,
    select_rows,
    table_columns,
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
]


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
    for generated in (statement, count_rows(PRODUCTS), latest_change(PRODUCTS, ["CHGDAT", "CHGTIM"]),
                      table_columns(PRODUCTS), connection_probe()):
        guard_select(generated.sql, [PRODUCTS])
        for postgres_only in ("LIMIT", "OFFSET", "::", "ILIKE", "RETURNING", "NOW()"):
            assert postgres_only not in generated.sql.upper()
    assert "FETCH FIRST 1 ROWS ONLY" in latest_change(PRODUCTS, ["CHGDAT", "CHGTIM"]).sql


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
]


@pytest.mark.parametrize("statement", REFUSED_STATEMENTS)
def test_guard_refuses(statement: str) -> None:
    with pytest.raises(UnsafeSqlError, match="refused SQL"):
        guard_select(statement, [PRODUCTS])
