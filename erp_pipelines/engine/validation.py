"""Decode and validate one batch: every row either passes or is rejected with its reasons."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.errors
import pyarrow as pa
import pyarrow.compute as pc

from erp_pipelines.core.decoders import python_value
from erp_pipelines.core.source import STRUCTURED_VALUES, SchemaDriftError, require_source_columns
from erp_pipelines.core.spec import TableSpec


@dataclass
class RowFailures:
    """Why rows of one batch were rejected: row position → rule → message."""

    by_row: dict[int, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, row: int, rule: str, message: str) -> None:
        self.by_row[row].setdefault(rule, message)

    def rows(self) -> np.ndarray:
        return np.fromiter(sorted(self.by_row), dtype=np.int64, count=len(self.by_row))

    def __len__(self) -> int:
        return len(self.by_row)


@dataclass
class ValidatedBatch:
    """The decoded rows that passed (target columns), their positions in the raw batch, and the rejects."""

    raw: pa.RecordBatch
    decoded: pa.Table
    passed: np.ndarray
    failures: RowFailures

    @property
    def good(self) -> pa.Table:
        return self.decoded.take(pa.array(self.passed))


def decode_business_key(spec: TableSpec, raw: pa.RecordBatch) -> pa.Table:
    """The business key columns of raw rows, decoded as the rows themselves are (deletions, reconciliation)."""
    return pa.Table.from_arrays(
        [spec.column(c).decoder([raw.column(n) for n in spec.column(c).source]).values for c in spec.business_key],
        names=list(spec.business_key),
    )


def check_source_columns(spec: TableSpec, raw: pa.RecordBatch) -> None:
    """Schema drift: the batch must carry every source column the spec reads."""
    require_source_columns(spec, raw.schema.names, spec.source_table)


def _describe(value: object) -> str:
    """A short, unambiguous rendering of a raw value: text quoted (blanks visible), numbers bare."""
    text = repr(value) if isinstance(value, str) else str(python_value(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _structured_rows(raw: pa.RecordBatch) -> dict[str, np.ndarray]:
    """Source column → rows whose value was a JSON object or array (listed by the adapter)."""
    if STRUCTURED_VALUES not in raw.schema.names:
        return {}
    listed = raw.column(STRUCTURED_VALUES)
    names = pc.list_flatten(listed).to_numpy(zero_copy_only=False)
    rows = pc.list_parent_indices(listed).to_numpy(zero_copy_only=False)
    return {name: rows[names == name] for name in set(names.tolist())}


def decode(spec: TableSpec, raw: pa.RecordBatch, failures: RowFailures) -> pa.Table:
    """Runs every column's decoder; undecodable values become NULL and a failure of that row."""
    arrays = []
    structured = _structured_rows(raw)
    for column in spec.columns:
        for name in column.source:
            for row in structured.get(name, ()):
                failures.add(int(row), f"{column.target}:decode", f"{column.target}: {name}="
                             f"{_describe(raw.column(name)[row].as_py())} is a JSON object or array, not a value")
        decoded = column.decoder([raw.column(name) for name in column.source])
        if decoded.invalid is not None:
            sources = [raw.column(name) for name in column.source]
            for row in np.flatnonzero(decoded.invalid):
                shown = ", ".join(f"{name}={_describe(src[row].as_py())}" for name, src in
                                  zip(column.source, sources, strict=True))
                failures.add(int(row), f"{column.target}:decode", f"{column.target}: {shown} {decoded.reason}")
        arrays.append(decoded.values)
    return pa.Table.from_arrays(arrays, names=spec.column_names)


def apply_model(spec: TableSpec, frame: pd.DataFrame, failures: RowFailures) -> None:
    """Pandera, lazily: every failing check of every row is recorded, nothing raises for bad data."""
    try:
        spec.model.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        structural = cases[cases["index"].isna()]
        if not structural.empty:
            problems = "; ".join(f"{r.column}: {r.check}" for r in structural.itertuples())
            raise SchemaDriftError(f"decoded frame of '{spec.entity}' does not match its model: {problems}") from exc
        for case in cases.itertuples():
            if case.schema_context == "DataFrameSchema":  # a rule across columns: one failure, not one per column
                failures.add(int(case.index), f"{spec.entity}:{case.check}", f"{spec.entity}: {case.check}")
                continue
            column = case.column if isinstance(case.column, str) else spec.entity
            if f"{column}:decode" in failures.by_row.get(int(case.index), {}):
                continue
            failures.add(
                int(case.index),
                f"{column}:{case.check}",
                f"{column} failed {case.check} (value {_describe(case.failure_case)})",
            )


def decode_and_validate(spec: TableSpec, raw: pa.RecordBatch) -> ValidatedBatch:
    """Row by row rules of one batch. Rules across rows (duplicate keys, unique values, parents) need the
    whole read and are the loader's (`RunStage.merge`)."""
    check_source_columns(spec, raw)
    failures = RowFailures()
    decoded = decode(spec, raw, failures)
    frame = decoded.to_pandas(types_mapper=pd.ArrowDtype)
    apply_model(spec, frame, failures)
    passed = np.setdiff1d(np.arange(raw.num_rows), failures.rows())
    return ValidatedBatch(raw, decoded, passed, failures)
