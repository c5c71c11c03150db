"""Db2 for i SQL: generated from validated identifiers with bound parameters, and guarded.

Every statement sent to the AS400 is built here and then passed through `guard_select`, which accepts
only one read-only SELECT over whitelisted tables. Values are never part of the text: they travel as
bound parameters. Only the common subset of Db2 for i and PostgreSQL is emitted (`FETCH FIRST n ROWS
ONLY`, `FOR READ ONLY`, quoted upper-case names, `?` markers).

A `streamed` statement (the table read) goes through a server-side cursor; on the stand-in psqlODBC then
writes its parameters into the cursor's text itself (escaped), which is why only integers the code
computed may be parameters of a streamed statement. Every other statement is sent with its values
bound at the server (see `As400Settings.connection_string`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from erp_pipelines.sources.base import PermanentSourceError

IDENTIFIER = re.compile(r"^[A-Z][A-Z0-9_#@$]{0,127}$")


class UnsafeSqlError(PermanentSourceError, ValueError):
    """A name, value or statement that must not reach the AS400."""


def quote_identifier(name: str) -> str:
    """A delimited Db2 identifier, after checking it is an ordinary upper-case system/SQL name."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise UnsafeSqlError(f"invalid IBM i identifier {name!r}: expected upper-case letters, digits, _#@$")
    return f'"{name}"'


@dataclass(frozen=True, order=True)
class QualifiedTable:
    """LIBRARY.TABLE, both validated."""

    library: str
    table: str

    @classmethod
    def parse(cls, text: str) -> QualifiedTable:
        parts = text.strip().upper().split(".")
        if len(parts) != 2:
            raise UnsafeSqlError(f"invalid table name {text!r}: expected LIBRARY.TABLE")
        quote_identifier(parts[0])
        quote_identifier(parts[1])
        return cls(parts[0], parts[1])

    @property
    def sql(self) -> str:
        return f"{quote_identifier(self.library)}.{quote_identifier(self.table)}"

    def __str__(self) -> str:
        return f"{self.library}.{self.table}"


def parse_whitelist(text: str) -> frozenset[QualifiedTable]:
    """AS400_ALLOWED_TABLES: comma-separated LIBRARY.TABLE names; a bad entry is an error, not skipped."""
    try:
        return frozenset(QualifiedTable.parse(item) for item in text.split(",") if item.strip())
    except UnsafeSqlError as exc:
        raise UnsafeSqlError(f"AS400_ALLOWED_TABLES: {exc}") from None


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: tuple[str, ...] = ()
    streamed: bool = False


def select_rows(
    table: QualifiedTable,
    columns: Sequence[str],
    *,
    changed_since: tuple[int, int] | None = None,
    change_columns: Sequence[str] = (),
    order_by: Sequence[str] = (),
) -> Statement:
    """The extraction query; with `changed_since` only rows whose (date, time) change stamp is ≥ it."""
    sql = f"SELECT {', '.join(quote_identifier(c) for c in columns)} FROM {table.sql}"
    parameters: tuple[str, ...] = ()
    if changed_since is not None:
        date_column, time_column = (quote_identifier(c) for c in change_columns)
        sql += f" WHERE ({date_column} > ? OR ({date_column} = ? AND {time_column} >= ?))"
        date, time = changed_since
        parameters = (str(int(date)), str(int(date)), str(int(time)))
    if order_by:
        sql += f" ORDER BY {', '.join(quote_identifier(c) for c in order_by)}"
    return Statement(sql + " FOR READ ONLY", parameters, streamed=True)


def select_keys(table: QualifiedTable, columns: Sequence[str], key_columns: Sequence[str],
                keys: Sequence[Sequence[str]]) -> Statement:
    """Rows by business key (replay of quarantined records): `(K1 = ? AND K2 = ?) OR …`, all bound."""
    if not keys:
        raise UnsafeSqlError("select_keys needs at least one key")
    match = " AND ".join(f"{quote_identifier(c)} = ?" for c in key_columns)
    if any(len(key) != len(key_columns) for key in keys):
        raise UnsafeSqlError(f"every key must have {len(key_columns)} value(s) for {', '.join(key_columns)}")
    for key in keys:
        if any("\x00" in str(value) for value in key):
            raise UnsafeSqlError(f"key {'|'.join(map(str, key))!r} holds a NUL character, which no driver can bind")
    where = " OR ".join(f"({match})" for _ in keys)
    sql = f"SELECT {', '.join(quote_identifier(c) for c in columns)} FROM {table.sql} WHERE {where} FOR READ ONLY"
    return Statement(sql, tuple(str(value) for key in keys for value in key))


def count_rows(table: QualifiedTable) -> Statement:
    return Statement(f"SELECT COUNT(*) FROM {table.sql} FOR READ ONLY")


def latest_change(table: QualifiedTable, change_columns: Sequence[str]) -> Statement:
    """The newest change stamp, read through the change-stamp index (one row, never a table scan)."""
    date_column, time_column = (quote_identifier(c) for c in change_columns)
    return Statement(
        f"SELECT {date_column}, {time_column} FROM {table.sql} "
        f"ORDER BY {date_column} DESC, {time_column} DESC FETCH FIRST 1 ROWS ONLY FOR READ ONLY"
    )


def table_columns(table: QualifiedTable) -> Statement:
    return Statement(
        'SELECT "COLUMN_NAME" FROM "QSYS2"."SYSCOLUMNS2" WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? '
        'ORDER BY "ORDINAL_POSITION" FOR READ ONLY',
        (table.library, table.table),
    )


def connection_probe() -> Statement:
    """Db2 for i has no FROM-less SELECT; SYSIBM.SYSDUMMY1 works on both systems."""
    return Statement('SELECT 1 FROM "SYSIBM"."SYSDUMMY1" FOR READ ONLY')


def source_clock() -> Statement:
    """The server's own time: a watermark never moves past it (CURRENT_TIMESTAMP is the special register
    CURRENT TIMESTAMP's synonym in Db2 for i, "Special registers", SQL reference; PostgreSQL knows it too)."""
    return Statement('SELECT CAST(CURRENT_TIMESTAMP AS TIMESTAMP) FROM "SYSIBM"."SYSDUMMY1" FOR READ ONLY')


_TOKEN = re.compile(
    r"""\s*(?:(?P<quoted>"[A-Z][A-Z0-9_#@$]{0,127}")|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<number>\d+)"""
    r"""|(?P<symbol><=|>=|<>|[(),.=<>?*])|(?P<other>\S))"""
)
_ALLOWED_WORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "ORDER", "BY", "ASC", "DESC", "FETCH", "FIRST", "ROWS",
    "ROW", "ONLY", "FOR", "READ", "COUNT", "MAX", "MIN", "IS", "NULL", "IN", "BETWEEN",
    "CAST", "AS", "CURRENT_TIMESTAMP", "TIMESTAMP",
}  # fmt: skip
_CATALOG_TABLES = frozenset({QualifiedTable("QSYS2", "SYSCOLUMNS2"), QualifiedTable("SYSIBM", "SYSDUMMY1")})


def guard_select(sql: str, allowed: Iterable[QualifiedTable]) -> None:
    """Refuses anything but one read-only SELECT over whitelisted (or catalog) tables.

    A token-level check, deliberately narrow: no string literals, comments, semicolons or keywords outside
    a small read-only vocabulary; every FROM names a whitelisted table; the statement ends FOR READ ONLY.
    """
    allowed_tables = frozenset(allowed) | _CATALOG_TABLES
    tokens: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "other"
        value = match.group(kind)
        if kind == "other":
            raise UnsafeSqlError(f"refused SQL: unexpected character {value!r}")
        if kind == "word" and value.upper() not in _ALLOWED_WORDS:
            raise UnsafeSqlError(f"refused SQL: keyword or name {value!r} is not allowed")
        tokens.append((kind, value.upper() if kind == "word" else value))
    if sql.strip() and sum(len(m.group(0)) for m in _TOKEN.finditer(sql)) != len(sql.rstrip()):
        raise UnsafeSqlError("refused SQL: unparsable text")
    words = [value for _, value in tokens]
    if not words or words[0] != "SELECT":
        raise UnsafeSqlError("refused SQL: only SELECT statements may reach the AS400")
    if words[-3:] != ["FOR", "READ", "ONLY"]:
        raise UnsafeSqlError("refused SQL: the statement must end with FOR READ ONLY")
    if words.count("SELECT") != 1:
        raise UnsafeSqlError("refused SQL: sub-selects are not allowed")
    if "FROM" not in words:
        raise UnsafeSqlError("refused SQL: a FROM clause is required")
    for i, (_, value) in enumerate(tokens):
        if value == "FROM":
            named = tokens[i + 1 : i + 4]
            if len(named) != 3 or named[0][0] != "quoted" or named[1][1] != "." or named[2][0] != "quoted":
                raise UnsafeSqlError('refused SQL: FROM must name one "LIBRARY"."TABLE"')
            table = QualifiedTable(named[0][1].strip('"'), named[2][1].strip('"'))
            if table not in allowed_tables:
                raise UnsafeSqlError(f"refused SQL: table {table} is not whitelisted")
            following = tokens[i + 4] if i + 4 < len(tokens) else ("word", "")
            if following[1] in {",", "."} or following[0] == "quoted":
                raise UnsafeSqlError("refused SQL: only one table may be read per statement")
