"""Reconciliation by keys, not counts: lost rows and live orphans cannot cancel out.

Every source record must be live in the target (by its decoded key) or open in the quarantine (by its exact
key), and every live target key must still exist at the source. Only key columns are compared: one read of
the source's keys and two anti-joins in the application database.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pyarrow as pa
import sqlalchemy as sa

from erp_pipelines.core.source import SourceAdapter
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.audit import keys_json
from erp_pipelines.engine.postgres import copy_arrow, quote
from erp_pipelines.engine.target import target_of, typed_columns
from erp_pipelines.engine.validation import decode_business_key

SAMPLE_SIZE = 10


@dataclass
class Reconciliation:
    """Key sets compared: what is missing on either side, with a few examples of each."""

    source_records: int = 0
    unaccounted: int = 0
    live_not_in_source: int = 0
    unaccounted_sample: list[str] = field(default_factory=list)
    live_not_in_source_sample: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.unaccounted == 0 and self.live_not_in_source == 0


def keys_only(spec: TableSpec) -> TableSpec:
    """The spec reduced to its business key: a read of the key columns alone (the others are known, not
    drift), which is all reconciliation needs."""
    key_columns = tuple(spec.column(name) for name in spec.business_key)
    read = {name for column in key_columns for name in column.source}
    return dataclasses.replace(
        spec, columns=key_columns, change_tracking=None, extra_source_columns=(),
        ignored_source_columns=tuple(n for n in [*spec.source_columns, *spec.ignored_source_columns] if n not in read),
    )


def reconcile(spec: TableSpec, source: SourceAdapter, engine: sa.Engine) -> Reconciliation:
    target = target_of(spec)
    key = list(spec.business_key)
    keys_table = f"reconcile_{spec.entity}"
    result = Reconciliation()
    with engine.connect() as connection:
        connection.exec_driver_sql(f"drop table if exists {quote(keys_table)}")
        connection.exec_driver_sql(
            f"create temporary table {quote(keys_table)} ({typed_columns(spec, key)}, exact text)")
        with source.extract(keys_only(spec), None) as extraction:
            for raw in extraction.batches():
                exact = pa.array(keys_json(source.record_keys(spec, raw)), pa.string())
                copy_arrow(connection, keys_table, decode_business_key(spec, raw).append_column("exact", exact))
                result.source_records += raw.num_rows
        match = " and ".join(f"t.{quote(target.column(k))} = r.{quote(k)}" for k in key)
        unaccounted = connection.exec_driver_sql(
            f"select r.exact from {quote(keys_table)} r where not exists (select 1 from {target.name} t "
            f"where {match} and {target.live('t')}) and not exists (select 1 from sync_error e "
            f"where e.entity = %(entity)s and e.resolved_at is null and e.source_key = r.exact::jsonb)",
            {"entity": spec.entity},
        ).scalars().all()
        # A table that keeps deleted rows (`KeepDeleted`) holds keys the source no longer has by design.
        orphans = [] if target.keeps_deleted else connection.exec_driver_sql(
            f"select {target.columns(key, 't')} from {target.name} t where {target.live('t')} "
            f"and {target.owned('t')} and not exists (select 1 from {quote(keys_table)} r where {match})"
        ).all()
        connection.rollback()
    result.unaccounted, result.unaccounted_sample = len(unaccounted), list(unaccounted[:SAMPLE_SIZE])
    result.live_not_in_source = len(orphans)
    result.live_not_in_source_sample = [", ".join(repr(v) for v in row) for row in orphans[:SAMPLE_SIZE]]
    return result


def live_counts(spec: TableSpec, engine: sa.Engine) -> tuple[int, int]:
    """Live rows this sync owns, and their distinct business keys (equal when no key is live twice)."""
    target = target_of(spec)
    key = target.columns(spec.business_key, "t")
    with engine.connect() as connection:
        total, distinct = connection.exec_driver_sql(
            f"select count(*), count(distinct ({key})) from {target.name} t "
            f"where {target.live('t')} and {target.owned('t')}"
        ).one()
    return int(total), int(distinct)
