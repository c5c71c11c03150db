"""A journal row decodes to the same Arrow schema and values as the ODBC read of the same row, so the table's
decoders, validation and quarantine apply unchanged to journal rows.

The layout comes from the stand-in's QSYS2.SYSCOLUMNS2; each row read through `As400Source.extract` is encoded
as its record image with the test's encoder from IBM's documented formats (test_record_image.py) and decoded.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable

import pyarrow as pa
import pytest

from erp_pipelines.catalog import get_spec
from erp_pipelines.sources.as400.record_image import CATALOG_COLUMNS, FieldLayout, RecordLayout
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines_tests.sources.as400.test_record_image import packed
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration


def image_of(layout: RecordLayout, row: dict[str, object]) -> str:
    """The record image of a row as IBM i would journal it: CHAR in its CCSID, DECIMAL packed with sign F or D."""
    parts = []
    for field in layout.fields:
        value = row[field.column.name]
        if isinstance(value, decimal.Decimal):
            number = int(value.scaleb(field.column.scale or 0))
            parts.append(packed(number, field.column.length, "D" if number < 0 else "F"))
        else:
            parts.append(str(value).encode(f"cp{field.column.ccsid:03d}").hex())
    return "".join(parts)


def catalog_layout(as400: As400Resource, table: str) -> RecordLayout:
    library, name = table.split(".")
    with as400.connect() as connection:
        rows = connection.cursor().execute(
            "SELECT " + ", ".join(f'"{column}"' for column in CATALOG_COLUMNS)
            + ' FROM "QSYS2"."SYSCOLUMNS2" WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? ORDER BY "ORDINAL_POSITION"',
            library, name,
        ).fetchall()
    return RecordLayout.from_catalog(table, [dict(zip(CATALOG_COLUMNS, row, strict=True)) for row in rows])


@pytest.mark.parametrize("entity", ["product", "product_stock"])
def test_journal_rows_have_the_arrow_types_and_values_of_the_odbc_read(
    entity: str, seed: Callable[..., SeedManifest], as400: As400Resource,
) -> None:
    seed(products=20, bad_share=0.0)
    spec = get_spec(entity)
    with as400.source().extract(spec, None) as extraction:
        odbc = pa.Table.from_batches(list(extraction.batches())).combine_chunks().to_batches()[0]
    layout = catalog_layout(as400, spec.source_table)
    assert all(isinstance(field, FieldLayout) for field in layout.fields)
    images = [image_of(layout, row) for row in odbc.to_pylist()]
    journal = layout.decode(images, None, spec.source_columns)
    assert len(journal) == 1
    assert journal[0].schema == odbc.schema
    assert journal[0].to_pylist() == odbc.to_pylist()
