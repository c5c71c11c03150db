"""Before writing into a table the application owns, check that it still is what the spec maps onto.

An application migration may rename a column, change a type, drop the unique index the sync matches rows
by, or add a NOT NULL field the sync cannot fill. Any of these would make the merge write wrong rows or
fail half-way; the run stops before its first write instead, naming every difference. Read from
PostgreSQL's catalogs (`pg_attribute`, `format_type`, `pg_index`), which is what the database enforces.
"""

from __future__ import annotations

import sqlalchemy as sa

from erp_pipelines.core.source import PermanentSourceError
from erp_pipelines.core.spec import SoftDeleteFlag, SoftDeleteTimestamp, TableSpec
from erp_pipelines.engine.target import ApplicationTarget, sql_type, target_of


class ApplicationTableDriftError(PermanentSourceError):
    """The application table no longer matches the spec's mapping; nothing was written."""


def _normalized(type_name: str) -> str:
    return type_name.lower().replace(", ", ",")


def _columns(connection: sa.Connection, schema: str, table: str) -> dict[str, tuple[str, bool, bool]]:
    """column → (type, nullable, has a default or identity)."""
    rows = connection.exec_driver_sql(
        "select a.attname, format_type(a.atttypid, a.atttypmod), not a.attnotnull, "
        "a.atthasdef or a.attidentity <> '' or a.attgenerated <> '' "
        "from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %(schema)s and c.relname = %(table)s and a.attnum > 0 and not a.attisdropped",
        {"schema": schema, "table": table},
    ).all()
    return {name: (_normalized(kind), bool(nullable), bool(default)) for name, kind, nullable, default in rows}


def _unique_indexes(connection: sa.Connection, schema: str, table: str) -> list[set[str]]:
    """Column sets of the table's unique, non-partial indexes (what `on conflict` can match)."""
    rows = connection.exec_driver_sql(
        "select array_agg(a.attname::text) from pg_index i join pg_class c on c.oid = i.indrelid "
        "join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attnum = any(i.indkey) "
        "where n.nspname = %(schema)s and c.relname = %(table)s and i.indisunique and i.indpred is null "
        "and i.indimmediate group by i.indexrelid",
        {"schema": schema, "table": table},
    ).all()
    return [set(names) for (names,) in rows]


def application_table_differences(connection: sa.Connection, spec: TableSpec) -> list[str]:
    """Every way the application table differs from what the spec maps onto it (empty: it matches)."""
    target = target_of(spec)
    if not isinstance(target, ApplicationTarget):
        return []
    table, where = target.table, target.qualified_name
    present = _columns(connection, table.schema, table.table)
    if not present:
        return [f"table {where} does not exist (the application's migrations create it)"]
    problems: list[str] = []
    expected: dict[str, tuple[str, bool, str]] = {}
    referencing = target.replaced_by_references
    for column in spec.columns:
        if column.target not in referencing:
            expected[target.column(column.target)] = (_normalized(sql_type(column.sql_type)), column.nullable,
                                                      f"spec column {column.target}")
    for ref in target.references:
        nullable = any(spec.column(name).nullable for name in ref.fk.columns)
        expected[ref.column] = ("", nullable, f"reference to {ref.fk.parent.entity}")
    for name, (kind, nullable, why) in expected.items():
        if name not in present:
            problems.append(f"column {name} ({why}) is missing")
            continue
        actual, actual_nullable, _ = present[name]
        if kind and actual != kind:
            problems.append(f"column {name} ({why}) is {actual}, the spec writes {kind}")
        if nullable and not actual_nullable:
            problems.append(f"column {name} ({why}) is NOT NULL, but the spec lets it be NULL")
    deletion = table.deletion
    if isinstance(deletion, SoftDeleteFlag | SoftDeleteTimestamp):
        wanted = ("boolean",) if isinstance(deletion, SoftDeleteFlag) else (
            "timestamp with time zone", "timestamp without time zone")
        kind = present.get(deletion.column, ("",))[0]
        if kind not in wanted:
            problems.append(f"deletion column {deletion.column} is {kind or 'missing'}, expected {' or '.join(wanted)}")
    key = {target.column(name) for name in spec.business_key}
    if key not in _unique_indexes(connection, table.schema, table.table):
        problems.append(f"no unique, non-deferrable, non-partial index on the business key ({', '.join(sorted(key))}): "
                        f"rows could not be matched")
    for unique in spec.unique:
        for name in unique:
            if name in present and not present[target.column(name)][1]:
                problems.append(f"column {target.column(name)} holds a unique value that can move between rows and "
                                f"must be nullable (a moving value is cleared on its old row first)")
    for name, (_, nullable, has_default) in sorted(present.items()):
        if name not in expected and name != table.surrogate_key and not nullable and not has_default:
            problems.append(f"column {name} is not mapped, NOT NULL and has no database default: every insert would "
                            f"fail (a Django `default=` exists only in Python; give it `db_default=` or map it)")
    return problems


def check_application_table(connection: sa.Connection, spec: TableSpec) -> None:
    """Raises, naming every difference, when the application table no longer matches the mapping."""
    problems = application_table_differences(connection, spec)
    if problems:
        raise ApplicationTableDriftError(
            f"{spec.entity}: the application table {target_of(spec).qualified_name} does not match the spec; "
            f"nothing was written: " + "; ".join(problems))
