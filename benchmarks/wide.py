"""The benchmark-only spec of the wide master file (erp_sandbox/as400/wide.py): 150 fields into `bench_item_master`.

Benchmark-only on purpose: no application reads this table, so it stays out of the product's catalog and
migrations; the benchmark creates its target table from the spec (`ensure_target`). Each field gets the
decoder and pandera field its kind calls for, the same helpers the catalog's AS400 specs use.
"""

from __future__ import annotations

import pandera.pandas as pa_pandas
import sqlalchemy as sa

from benchmarks.tasks import WIDE_ENTITY
from erp_pipelines.app_db.tables import table_of
from erp_pipelines.core.decoders import Decimal, Decoder, Flag, TrimmedText
from erp_pipelines.core.fields import BOOL, DATE, TEXT, TIMESTAMP, decimal, text
from erp_pipelines.core.spec import Column, TableSpec
from erp_pipelines.sources.as400.decoders import CyymmddDate
from erp_pipelines.sources.as400.tables import CHANGED, SOURCE_CHANGED_AT
from erp_sandbox.as400.wide import FILE, KEY, LIBRARY, WIDE_FIELDS, WideField

SOURCE_TABLE = f"{LIBRARY}.{FILE}"


def _column(field: WideField) -> tuple[Column, object, object]:
    """The spec column, its pandera annotation and its pandera field."""
    name = field.name.lower()
    decoder: Decoder
    if field.kind == "char":
        key = field.name == KEY
        decoder = TrimmedText(blank_as_null=not key)
        return (Column.of(name, field.name, decoder, sa.Text(), nullable=not key), TEXT,
                text(required=key, max_length=field.length))
    if field.kind == "flag":
        return (Column.of(name, field.name, Flag(["Y"], ["N"]), sa.Boolean(), nullable=False), BOOL,
                pa_pandas.Field(nullable=False))
    if field.kind == "date":
        return Column.of(name, field.name, CyymmddDate(), sa.Date()), DATE, pa_pandas.Field(nullable=True)
    decoder = Decimal(field.length, field.scale)
    return (Column.of(name, field.name, decoder, sa.Numeric(field.length, field.scale), nullable=False),
            decimal(field.length, field.scale), pa_pandas.Field(ge=0, nullable=False))


def _spec() -> TableSpec:
    stamps = set(CHANGED.columns)
    parts = [_column(field) for field in WIDE_FIELDS if field.name not in stamps]
    columns = (*(column for column, _, _ in parts), SOURCE_CHANGED_AT)
    annotations = {column.target: annotation for column, annotation, _ in parts}
    annotations[SOURCE_CHANGED_AT.target] = TIMESTAMP
    attributes: dict[str, object] = {column.target: field for column, _, field in parts}
    attributes[SOURCE_CHANGED_AT.target] = pa_pandas.Field(nullable=False)
    config = type("Config", (), {"strict": True})
    model = type("ItemMasterModel", (pa_pandas.DataFrameModel,),
                 {"__annotations__": annotations, **attributes, "Config": config,
                  "__doc__": f"The wide item master {SOURCE_TABLE} (benchmark only)."})
    return TableSpec(
        entity=WIDE_ENTITY,
        source_system="as400",
        source_table=SOURCE_TABLE,
        target_table="bench_item_master",
        business_key=(KEY.lower(),),
        columns=columns,
        model=model,
        cadence="daily",
        description=f"The benchmark's wide item master, {len(WIDE_FIELDS)} fields of {SOURCE_TABLE}.",
        change_tracking=CHANGED,
    )


ITEM_MASTER = _spec()


def ensure_target(engine: sa.Engine) -> None:
    """The target table, built from the spec, created once in the benchmark's application database."""
    table_of(ITEM_MASTER).create(engine, checkfirst=True)
