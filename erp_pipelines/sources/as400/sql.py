"""Db2 for i SQL: generated from validated identifiers with bound parameters, and guarded.

Every statement sent to the AS400 is built here and then passed through `guard_select`, which accepts
only one read-only SELECT over whitelisted tables. Values are never part of the text: they travel as
bound parameters. Db2 for i syntax is emitted (`FETCH FIRST n ROWS ONLY`, `FOR READ ONLY`, quoted upper-case
names, `?` markers, `HEX()`, which the stand-in defines as a function), and the optimize clause (`OPTIMIZE
FOR ALL ROWS`, `OPTIMIZE FOR 1 ROW`) for the `ibmi` driver profile only: the PostgreSQL stand-in's grammar
has no such clause (`ALL_ROWS`, `FIRST_ROW` below).

A `streamed` statement (the table read) goes through a server-side cursor; on the stand-in psqlODBC then
writes its parameters into the cursor's text itself (escaped), which is why only integers the code
computed may be parameters of a streamed statement. Every other statement is sent with its values
bound at the server (see `As400Settings.connection_string`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from erp_pipelines.core.source import PermanentSourceError

# IBM i system names (libraries, files, fields) may begin with A-Z, $, # or @ and go on with those, digits and _
# (IBM Db2 for i SQL reference, "Identifiers" / "SQL identifiers", rbafzsqlidts; system names are at most
# 10 characters, SQL names 128, "SQL limits" rbafzlimtabs). Every name is sent delimited and upper case,
# which Db2 for i treats as the same name as the ordinary identifier.
IDENTIFIER = re.compile(r"^[A-Z$#@][A-Z0-9_#@$]{0,127}$")


class UnsafeSqlError(PermanentSourceError, ValueError):
    """A name, value or statement that must not reach the AS400."""


def quote_identifier(name: str) -> str:
    """A delimited Db2 identifier, after checking it is an ordinary upper-case system/SQL name."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise UnsafeSqlError(
            f"invalid IBM i identifier {name!r}: expected an upper-case letter, $, # or @, then letters, digits, _#@$"
        )
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


# Db2 for i optimize-clause (select-statement, rbafzintsel): "OPTIMIZE FOR ALL ROWS" tells the optimizer the
# whole result is read, so it plans a scan (and a sort) rather than row-by-row index probing; "OPTIMIZE FOR 1
# ROW" asks for the first row fast. Without it the goal is the interface's default (QAQQINI
# OPTIMIZATION_GOAL: "determined by the interface (ODBC, ..., OPTIMIZE FOR nnn ROWS clause)").
ALL_ROWS, FIRST_ROW = "OPTIMIZE FOR ALL ROWS", "OPTIMIZE FOR 1 ROW"


def _finish(sql: str, optimize: str | None) -> str:
    """Trailing clauses: the optimize clause (IBM i only) and FOR READ ONLY, which lets Db2 for i block rows
    and take no update locks (read-only-clause, rbafzreadonly). The select-statement's trailing clauses may
    come "in any order, each once" (rbafzintsel)."""
    return f"{sql} {optimize} FOR READ ONLY" if optimize else f"{sql} FOR READ ONLY"


def changed_since_condition(
    date_column: str, time_column: str, changed_since: tuple[int, int]
) -> tuple[str, tuple[str, ...]]:
    """`(D > ? OR (D = ? AND T >= ?))`: Db2 for i basic predicates allow row values only with = and <>, so
    the (date, time) comparison is spelled out (basic predicate, IBM i 7.1 SQL reference)."""
    date, time = (quote_identifier(date_column), quote_identifier(time_column))
    stamp_date, stamp_time = changed_since
    return (
        f"({date} > ? OR ({date} = ? AND {time} >= ?))",
        (str(int(stamp_date)), str(int(stamp_date)), str(int(stamp_time))),
    )


def changed_before_condition(
    date_column: str, time_column: str, changed_before: tuple[int, int]
) -> tuple[str, tuple[str, ...]]:
    """`(D < ? OR (D = ? AND T < ?))`: the (date, time) stamp strictly before a backfill's end, spelled out for
    the same reason as `changed_since_condition`."""
    date, time = (quote_identifier(date_column), quote_identifier(time_column))
    stamp_date, stamp_time = changed_before
    return (
        f"({date} < ? OR ({date} = ? AND {time} < ?))",
        (str(int(stamp_date)), str(int(stamp_date)), str(int(stamp_time))),
    )


def select_rows(
    table: QualifiedTable,
    columns: Sequence[str],
    *,
    changed_since: tuple[int, int] | None = None,
    changed_before: tuple[int, int] | None = None,
    change_columns: Sequence[str] = (),
    order_by: Sequence[str] = (),
    optimize: str | None = None,
) -> Statement:
    """The extraction query; with `changed_since` only rows whose (date, time) change stamp is ≥ it, with
    `changed_before` (a backfill's end) only those stamped before that. Every value is an integer marker."""
    sql = f"SELECT {', '.join(quote_identifier(c) for c in columns)} FROM {table.sql}"
    conditions = [
        condition(*change_columns, stamp)
        for condition, stamp in ((changed_since_condition, changed_since), (changed_before_condition, changed_before))
        if stamp is not None
    ]
    parameters: tuple[str, ...] = tuple(value for _, values in conditions for value in values)
    if conditions:
        sql += " WHERE " + " AND ".join(text for text, _ in conditions)
    if order_by:
        sql += f" ORDER BY {', '.join(quote_identifier(c) for c in order_by)}"
    return Statement(_finish(sql, optimize), parameters, streamed=True)


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


def column_hex(table: QualifiedTable, column: str, key_columns: Sequence[str], key: Sequence[str]) -> Statement:
    """One field of one row as the hex of its stored bytes. HEX works on the internal representation, so it
    reads a packed or zoned field whose bytes are no valid number (blanks, x'40') without the SQL0802 a
    plain fetch raises: IT Jungle "SQL and Invalid Decimal Data" (2013) finds such rows with
    `hex(customerid) = '40404040'`; Db2 for i SQL reference, HEX scalar function."""
    match = " AND ".join(f"{quote_identifier(c)} = ?" for c in key_columns)
    return Statement(
        f"SELECT HEX({quote_identifier(column)}) FROM {table.sql} WHERE {match} FOR READ ONLY",
        tuple(str(value) for value in key),
    )


def count_rows(table: QualifiedTable) -> Statement:
    """`COUNT(*)` runs a query over the file; through SQL it sees only the first member of a multi-member
    file (MC Press, "Using Multiple Member Files with ODBC"), which `check_members` refuses to read."""
    return Statement(f"SELECT COUNT(*) FROM {table.sql} FOR READ ONLY")


def latest_change(
    table: QualifiedTable, change_columns: Sequence[str], not_after: int, optimize: str | None = None
) -> Statement:
    """The newest plausible change stamp: stamps after `not_after` (a CYYMMDD; sentinels such as 9991231
    that some programs write for "never") are skipped, or one such row would freeze the marker. Cheap only
    when an index leads with the two stamp columns: otherwise Db2 for i sorts the file or builds a
    temporary index for every call ("Ordering optimization", rzajq orderingopt); `stamp_index` checks."""
    date_column, time_column = (quote_identifier(c) for c in change_columns)
    return Statement(
        _finish(
            f"SELECT {date_column}, {time_column} FROM {table.sql} WHERE {date_column} <= ? "
            f"ORDER BY {date_column} DESC, {time_column} DESC FETCH FIRST 1 ROWS ONLY",
            optimize,
        ),
        (str(int(not_after)),),
    )


def table_columns(table: QualifiedTable) -> Statement:
    """The file's columns from QSYS2.SYSCOLUMNS2 (IBM i 7.4 catalog): COLUMN_NAME is "the SQL column name if
    one exists; otherwise the system column name", SYSTEM_COLUMN_NAME the (DDS) system name, CCSID 65535 marks
    FOR BIT DATA (binary) character data."""
    return Statement(
        'SELECT "COLUMN_NAME", "SYSTEM_COLUMN_NAME", "DATA_TYPE", "LENGTH", "NUMERIC_SCALE", "CCSID" '
        'FROM "QSYS2"."SYSCOLUMNS2" WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? '
        'ORDER BY "ORDINAL_POSITION" FOR READ ONLY',
        (table.library, table.table),
    )


def table_statistics(table: QualifiedTable) -> Statement:
    """Members and rows of the file: QSYS2.SYSTABLESTAT NUMBER_ROWS is the "number of valid rows in all
    partitions or members of the table", NUMBER_PARTITIONS the number of members (IBM i 7.4, rbafzcatsyststat)."""
    return Statement(
        'SELECT "NUMBER_PARTITIONS", "NUMBER_ROWS" FROM "QSYS2"."SYSTABLESTAT" '
        'WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? FOR READ ONLY',
        (table.library, table.table),
    )


def table_indexes(table: QualifiedTable) -> Statement:
    """Every index over the file, SQL index, keyed logical or keyed physical file or constraint alike, with its
    key columns as a comma-separated list and whether its keys are unique (QSYS2.SYSPARTITIONINDEXSTAT, IBM i 7.4
    rbafzcatsyspistat: INDEX_TYPE 'PHYSICAL' is a DDS keyed physical file, UNIQUE '0' a unique key)."""
    return Statement(
        'SELECT "INDEX_SCHEMA", "INDEX_NAME", "INDEX_TYPE", "COLUMN_NAMES", "UNIQUE" '
        'FROM "QSYS2"."SYSPARTITIONINDEXSTAT" WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? FOR READ ONLY',
        (table.library, table.table),
    )


def table_constraints(table: QualifiedTable) -> Statement:
    """The file's SQL constraints and their kinds (QSYS2.SYSCST, IBM i 7.4 rbafzcatsyscst: CONSTRAINT_TYPE
    PRIMARY KEY, UNIQUE, FOREIGN KEY or CHECK). A DDS keyed file has none: its key is an access path."""
    return Statement(
        'SELECT "CONSTRAINT_SCHEMA", "CONSTRAINT_NAME", "CONSTRAINT_TYPE" FROM "QSYS2"."SYSCST" '
        'WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? FOR READ ONLY',
        (table.library, table.table),
    )


def constraint_keys(table: QualifiedTable) -> Statement:
    """The key columns of the file's unique, primary and foreign key constraints in key order (QSYS2.SYSKEYCST,
    IBM i 7.4 rbafzcatkeycst: ORDINAL_POSITION is the column's position in the key)."""
    return Statement(
        'SELECT "CONSTRAINT_SCHEMA", "CONSTRAINT_NAME", "COLUMN_NAME" FROM "QSYS2"."SYSKEYCST" '
        'WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? ORDER BY "CONSTRAINT_NAME", "ORDINAL_POSITION" FOR READ ONLY',
        (table.library, table.table),
    )


def column_labels(table: QualifiedTable) -> Statement:
    """What people call each field: COLUMN_TEXT (DDS TEXT or LABEL ON ... TEXT IS, VARGRAPHIC(50)) and
    COLUMN_HEADING (DDS COLHDG or LABEL ON, VARGRAPHIC(60)), from QSYS2.SYSCOLUMNS2 (IBM i 7.4 rbafzcatsyscol2)."""
    return Statement(
        'SELECT "COLUMN_NAME", "COLUMN_TEXT", "COLUMN_HEADING" FROM "QSYS2"."SYSCOLUMNS2" '
        'WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? ORDER BY "ORDINAL_POSITION" FOR READ ONLY',
        (table.library, table.table),
    )


def system_names(table: QualifiedTable) -> Statement:
    """The file's 10-character system library and file names (QSYS2.SYSTABLES), which IBM i services use."""
    return Statement(
        'SELECT "SYSTEM_TABLE_SCHEMA", "SYSTEM_TABLE_NAME" FROM "QSYS2"."SYSTABLES" '
        'WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? FOR READ ONLY',
        (table.library, table.table),
    )


def journaling(system_library: str, system_file: str) -> Statement:
    """The journal of a file, if any, and its images: QSYS2.JOURNALED_OBJECTS (IBM i 7.3+, rzajqviewjournaledobjects)
    lists journaled objects by system name, JOURNAL_IMAGES *AFTER or *BOTH; it shows only journals the user may
    read (*OBJOPR and a data authority to the journal)."""
    return Statement(
        'SELECT "JOURNAL_LIBRARY", "JOURNAL_NAME", "JOURNAL_IMAGES" FROM "QSYS2"."JOURNALED_OBJECTS" '
        'WHERE "OBJECT_LIBRARY" = ? AND "OBJECT_NAME" = ? AND "OBJECT_TYPE" = ? FOR READ ONLY',
        (system_library, system_file, "*FILE"),
    )


def record_format(table: QualifiedTable) -> Statement:
    """Every field of the file in ordinal order with what its stored form depends on (type, length, scale,
    CCSID, nullability): the layout of its journal record images (QSYS2.SYSCOLUMNS2)."""
    return Statement(
        'SELECT "SYSTEM_COLUMN_NAME", "COLUMN_NAME", "ORDINAL_POSITION", "DATA_TYPE", "LENGTH", "NUMERIC_SCALE", '
        '"IS_NULLABLE", "CCSID" FROM "QSYS2"."SYSCOLUMNS2" WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? '
        'ORDER BY "ORDINAL_POSITION" FOR READ ONLY',
        (table.library, table.table),
    )


def journal_receivers(journal_library: str, journal_name: str) -> Statement:
    """The journal's receiver chain, oldest first (QSYS2.JOURNAL_RECEIVER_INFO, IBM i 7.4+ rzajqviewjrnrcvinfo:
    STATUS ATTACHED, ONLINE, SAVED, FREED, PARTIAL or EMPTY; FIRST_/LAST_SEQUENCE_NUMBER; ATTACH_TIMESTAMP)."""
    return Statement(
        'SELECT "JOURNAL_RECEIVER_LIBRARY", "JOURNAL_RECEIVER_NAME", "STATUS", "FIRST_SEQUENCE_NUMBER", '
        '"LAST_SEQUENCE_NUMBER", "ATTACH_TIMESTAMP", "DETACH_TIMESTAMP" FROM "QSYS2"."JOURNAL_RECEIVER_INFO" '
        'WHERE "JOURNAL_LIBRARY" = ? AND "JOURNAL_NAME" = ? ORDER BY "ATTACH_TIMESTAMP" FOR READ ONLY',
        (journal_library, journal_name),
    )


# QSYS2.DISPLAY_JOURNAL (IBM i 7.4/7.5, rzajqudfdisplayjournal): the parameters a window names, by IBM's names,
# and the result columns it reads. ENTRY_DATA and NULL_VALUE_INDICATORS are read as HEX(): the ODBC driver can
# over-allocate on the BLOB, and hex text travels as plain characters.
JOURNAL_PARAMETERS = (
    "JOURNAL_LIBRARY", "JOURNAL_NAME", "STARTING_RECEIVER_LIBRARY", "STARTING_RECEIVER_NAME", "STARTING_SEQUENCE",
    "ENDING_RECEIVER_LIBRARY", "ENDING_RECEIVER_NAME", "JOURNAL_CODES", "JOURNAL_ENTRY_TYPES", "OBJECT_LIBRARY",
    "OBJECT_NAME", "OBJECT_OBJTYPE", "OBJECT_MEMBER",
)
JOURNAL_COLUMNS = (
    "SEQUENCE_NUMBER", "JOURNAL_ENTRY_TYPE", "COUNT_OR_RRN", "COMMIT_CYCLE", "RECEIVER_LIBRARY", "RECEIVER_NAME",
    "ENTRY_TIMESTAMP", "JOB_NAME", "JOB_USER", "JOB_NUMBER", "USER_NAME", "PROGRAM_NAME", "PROGRAM_LIBRARY",
)
JOURNAL_HEX_COLUMNS = ("ENTRY_DATA", "NULL_VALUE_INDICATORS")


def journal_entries(arguments: Sequence[tuple[str, str]], limit: int, *, table_keyword: bool) -> Statement:
    """One bounded window of journal entries: every value a bound parameter named by IBM's parameter name.

    Db2 for i calls a table function as `TABLE(QSYS2.DISPLAY_JOURNAL(...)) AS J` (table-reference,
    rbafztabref); the PostgreSQL stand-in's grammar has no TABLE(...), so the `postgresql` profile sends the bare
    call (`table_keyword` False). Named arguments are written unquoted, as IBM's examples write them."""
    names = [name for name, _ in arguments]
    unknown = [name for name in names if name not in JOURNAL_PARAMETERS]
    if unknown or len(set(names)) != len(names) or not isinstance(limit, int) or limit < 1:
        raise UnsafeSqlError(f"refused journal read: parameters {names}, limit {limit!r}")
    call = '"QSYS2"."DISPLAY_JOURNAL"(' + ", ".join(f"{name} => ?" for name in names) + ")"
    columns = ", ".join([*(f'"{name}"' for name in JOURNAL_COLUMNS),
                         *(f'HEX("{name}")' for name in JOURNAL_HEX_COLUMNS)])
    source = f'TABLE({call}) AS "J"' if table_keyword else f'{call} AS "J"'
    return Statement(
        f'SELECT {columns} FROM {source} ORDER BY "SEQUENCE_NUMBER" FETCH FIRST {limit} ROWS ONLY FOR READ ONLY',
        tuple(str(value) for _, value in arguments),
    )


_JOURNAL_READ = re.compile(
    r'SELECT (?P<columns>.+?) FROM (?:TABLE\()?"QSYS2"\."DISPLAY_JOURNAL"\((?P<arguments>[A-Z_]+ => \?'
    r'(?:, [A-Z_]+ => \?)*)\)(?P<closing>\)?) AS "J" ORDER BY "SEQUENCE_NUMBER" FETCH FIRST [1-9][0-9]{0,6} ROWS ONLY '
    r"FOR READ ONLY"
)


def guard_journal_read(statement: str) -> None:
    """Refuses anything but a window of QSYS2.DISPLAY_JOURNAL in the one shape `journal_entries` writes: known
    columns only, known parameters only, every value a marker, bounded, FOR READ ONLY."""
    match = _JOURNAL_READ.fullmatch(statement)
    if not match or (match.group("closing") == ")") != statement.split(" FROM ", 1)[1].startswith("TABLE("):
        raise UnsafeSqlError("refused SQL: not a bounded QSYS2.DISPLAY_JOURNAL window")
    allowed = {f'"{name}"' for name in JOURNAL_COLUMNS} | {f'HEX("{name}")' for name in JOURNAL_HEX_COLUMNS}
    if any(column not in allowed for column in match.group("columns").split(", ")):
        raise UnsafeSqlError("refused SQL: the journal window reads a column it does not need")
    if any(argument.split(" => ")[0] not in JOURNAL_PARAMETERS for argument in match.group("arguments").split(", ")):
        raise UnsafeSqlError("refused SQL: unknown DISPLAY_JOURNAL parameter")


def connection_probe() -> Statement:
    """Db2 for i has no FROM-less SELECT; SYSIBM.SYSDUMMY1 works on both systems."""
    return Statement('SELECT 1 FROM "SYSIBM"."SYSDUMMY1" FOR READ ONLY')


def source_clock() -> Statement:
    """The server's own time: a watermark never moves past it (CURRENT_TIMESTAMP is the special register
    CURRENT TIMESTAMP's synonym in Db2 for i, "Special registers", SQL reference; PostgreSQL knows it too)."""
    return Statement('SELECT CAST(CURRENT_TIMESTAMP AS TIMESTAMP) FROM "SYSIBM"."SYSDUMMY1" FOR READ ONLY')


_TOKEN = re.compile(
    r"""\s*(?:(?P<quoted>"[A-Z$#@][A-Z0-9_#@$]{0,127}")|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<number>\d+)"""
    r"""|(?P<symbol><=|>=|<>|[(),.=<>?*])|(?P<other>\S))"""
)
_ALLOWED_WORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "ORDER", "BY", "ASC", "DESC", "FETCH", "FIRST", "ROWS",
    "ROW", "ONLY", "FOR", "READ", "COUNT", "MAX", "MIN", "IS", "NULL", "IN", "BETWEEN", "HEX", "OPTIMIZE", "ALL",
    "CAST", "AS", "CURRENT_TIMESTAMP", "TIMESTAMP",
}  # fmt: skip
# The only places OPTIMIZE (and ALL) may stand: right before the final FOR READ ONLY.
_OPTIMIZE_CLAUSES = (["OPTIMIZE", "FOR", "ALL", "ROWS"], ["OPTIMIZE", "FOR", "1", "ROW"])
_CATALOG_TABLES = frozenset({
    QualifiedTable("QSYS2", name)
    for name in ("SYSCOLUMNS2", "SYSTABLES", "SYSTABLESTAT", "SYSPARTITIONINDEXSTAT", "SYSCST", "SYSKEYCST",
                 "JOURNALED_OBJECTS", "JOURNAL_RECEIVER_INFO")
} | {QualifiedTable("SYSIBM", "SYSDUMMY1")})


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
    optimizing = "OPTIMIZE" in words or "ALL" in words
    if optimizing and (words[-7:-3] not in _OPTIMIZE_CLAUSES or words.count("OPTIMIZE") != 1 or words.count("ALL") > 1):
        raise UnsafeSqlError("refused SQL: OPTIMIZE only as OPTIMIZE FOR ALL ROWS / 1 ROW before FOR READ ONLY")
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
