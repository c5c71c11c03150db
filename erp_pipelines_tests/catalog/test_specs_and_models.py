"""Each spec and its pandera model agree on every column: name, order, nullability and type.

The spec declares a column's SQL type and nullability (the table the migrations create); the model adds the
rules. A model that drifted from its spec would validate something other than what is stored.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import CATALOG
from erp_pipelines.core.spec import TableSpec


def arrow_type_of(sql_type: sa.types.TypeEngine) -> pa.DataType:
    """The Arrow type a validated column must have to be stored in a column of this SQL type."""
    if isinstance(sql_type, sa.Numeric) and not isinstance(sql_type, sa.Float):
        return pa.decimal128(sql_type.precision, sql_type.scale)
    by_kind: list[tuple[type, pa.DataType]] = [
        (sa.Boolean, pa.bool_()), (sa.Integer, pa.int64()), (sa.DateTime, pa.timestamp("us")),
        (sa.Date, pa.date32()), (sa.Time, pa.time64("us")), (sa.String, pa.string()),
    ]
    return next(arrow for kind, arrow in by_kind if isinstance(sql_type, kind))


@pytest.mark.parametrize("spec", CATALOG, ids=lambda spec: spec.entity)
def test_model_columns_follow_the_spec(spec: TableSpec) -> None:
    schema = spec.model.to_schema()
    assert list(schema.columns) == spec.column_names
    for column in spec.columns:
        field = schema.columns[column.target]
        assert field.nullable == column.nullable, f"{spec.entity}.{column.target}: nullability differs"
        dtype = field.dtype.type
        assert isinstance(dtype, pd.ArrowDtype), f"{spec.entity}.{column.target}: {dtype} is not an Arrow type"
        assert dtype.pyarrow_dtype == arrow_type_of(column.sql_type), f"{spec.entity}.{column.target}"


@pytest.mark.parametrize("spec", CATALOG, ids=lambda spec: spec.entity)
def test_key_and_unique_columns_are_required(spec: TableSpec) -> None:
    for name in [*spec.business_key, *(name for unique in spec.unique for name in unique)]:
        assert not spec.column(name).nullable, f"{spec.entity}.{name} is a key but nullable"
