"""A new IBM i file's draft spec, read from the Db2 for i catalog (`erp-sync scaffold --source as400 LIB.FILE`).

Read: QSYS2.SYSCOLUMNS2 (type, length, scale, CCSID, nullability, SQL and system names, COLUMN_TEXT and
COLUMN_HEADING), QSYS2.SYSCST + SYSKEYCST (primary key, unique constraints), QSYS2.SYSPARTITIONINDEXSTAT (the
access path of a DDS keyed physical file, unique indexes, an index led by the change stamps) and
QSYS2.JOURNALED_OBJECTS (is the file journaled, with which images). Guessed, and marked for review: CYYMMDD dates
and HHMMSS times kept in numbers, the change-stamp pair, the EBCDIC CCSID of FOR BIT DATA text, names taken from
COLUMN_TEXT, and the entity name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from erp_pipelines.core.draft import (
    AUDIT_NAMES,
    DraftColumn,
    DraftError,
    Import,
    TableDraft,
    quoted,
    snake_case,
    unique_names,
)
from erp_pipelines.sources.as400 import sql
from erp_pipelines.sources.as400.adapter import As400Source, index_columns, is_unique_index
from erp_pipelines.sources.as400.decoders import EBCDIC_CCSIDS
from erp_pipelines.sources.as400.layout import FOR_BIT_DATA

CORE = "erp_pipelines.core.decoders"
IBM_I = "erp_pipelines.sources.as400.decoders"
FIELDS = "erp_pipelines.core.fields"
# Names programmers give CYYMMDD date and HHMMSS time fields (CRTDAT, CHGDTE, EFFDT, DATCHG; CHGTIM, UPDTME,
# TIMEHMS): a guess from the name, never from the type alone.
DATE_NAME = re.compile(r"DAT|DTE|DT$|^DT")
TIME_NAME = re.compile(r"TIM|TME|HMS")
# The prefix of a change-stamp pair: "changed", "updated", "modified", "last" (CHGDAT/CHGTIM, UPDDAT/UPDTIM, …).
CHANGE_NAME = re.compile(r"^(CHG|CHNG|UPD|MOD|LST|LCH|LASTCHG|CHANGE)")
TEXT_TYPES = frozenset({"CHAR", "VARCHAR"})
NUMBER_TYPES = frozenset({"DECIMAL", "NUMERIC"})
INTEGER_TYPES = frozenset({"SMALLINT", "INTEGER", "BIGINT"})
PACKED, ZONED = "packed", "zoned"


@dataclass(frozen=True)
class CatalogColumn:
    """One field as QSYS2.SYSCOLUMNS2 describes it, with its labels."""

    name: str
    system_name: str
    data_type: str
    length: int
    scale: int | None
    nullable: bool
    ccsid: int | None
    text: str
    heading: str

    @property
    def label(self) -> str:
        return self.text or self.heading

    @property
    def is_cyymmdd(self) -> bool:
        return self._number_of(7) and bool(DATE_NAME.search(self.system_name))

    @property
    def is_hhmmss(self) -> bool:
        return self._number_of(6) and bool(TIME_NAME.search(self.system_name))

    def _number_of(self, digits: int) -> bool:
        return self.data_type in NUMBER_TYPES and self.length == digits and not self.scale

    @property
    def kind(self) -> str:
        if self.data_type in INTEGER_TYPES or self.length <= 0:
            return self.data_type
        return f"{self.data_type}({self.length}{f',{self.scale}' if self.scale is not None else ''})"


def _columns(rows: Sequence[Any], labels: Sequence[Any]) -> list[CatalogColumn]:
    """record_format rows: SYSTEM_COLUMN_NAME, COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, LENGTH, NUMERIC_SCALE,
    IS_NULLABLE, CCSID; column_labels rows: COLUMN_NAME, COLUMN_TEXT, COLUMN_HEADING."""
    texts = {str(row[0]).strip(): (str(row[1] or "").strip(), " ".join(str(row[2] or "").split())) for row in labels}
    return [
        CatalogColumn(str(row[1]).strip(), str(row[0] or row[1]).strip(), str(row[3] or "").strip(), int(row[4] or 0),
                      None if row[5] is None else int(row[5]), str(row[6] or "").strip() == "Y",
                      None if row[7] is None else int(row[7]), *texts.get(str(row[1]).strip(), ("", "")))
        for row in rows
    ]


def _key(constraints: Sequence[Any], keys: Sequence[Any], indexes: Sequence[Any]) -> tuple[list[str], str, bool]:
    """(key columns, where they come from, whether that is a guess): the primary key, else a unique constraint,
    else the unique key of the DDS keyed physical file, else a unique index."""
    kinds = {(str(schema).strip(), str(name).strip()): str(kind).strip() for schema, name, kind in constraints}
    columns: dict[tuple[str, str], list[str]] = {}
    for schema, name, column in keys:
        columns.setdefault((str(schema).strip(), str(name).strip()), []).append(str(column).strip())
    for wanted, guessed in (("PRIMARY KEY", False), ("UNIQUE", True)):
        for constraint, kind in sorted(kinds.items()):
            if kind == wanted and columns.get(constraint):
                origin = f"{wanted.lower()} constraint {'.'.join(constraint)} (QSYS2.SYSKEYCST)"
                return columns[constraint], origin, guessed
    unique = [(str(kind).strip(), f"{str(schema).strip()}.{str(name).strip()}", index_columns(names))
              for schema, name, kind, names, flag in indexes if is_unique_index(kind, flag)]
    for wanted, guessed in (("PHYSICAL", False), ("INDEX", True), ("LOGICAL", True)):
        for kind, name, names in sorted(unique):
            if kind == wanted:
                origin = "the DDS keyed physical file's unique key" if kind == "PHYSICAL" else f"unique {kind.lower()}"
                return names, f"{origin} {name} (QSYS2.SYSPARTITIONINDEXSTAT)", guessed
    return [], "", False


def _stamp_pair(columns: list[CatalogColumn]) -> tuple[CatalogColumn, CatalogColumn] | None:
    """A CYYMMDD date and an HHMMSS time named as a change stamp with the same prefix (CHGDAT + CHGTIM)."""
    for date in columns:
        if not (date.is_cyymmdd and CHANGE_NAME.match(date.system_name)):
            continue
        prefix = DATE_NAME.split(date.system_name)[0]
        for time in columns:
            if time.is_hhmmss and time.system_name.startswith(prefix) and CHANGE_NAME.match(time.system_name):
                return date, time
    return None


def _text_column(column: CatalogColumn, ccsid: int) -> tuple[str, list[Import], list[str], str]:
    if column.ccsid == FOR_BIT_DATA:
        return (f"EbcdicText(ccsid={ccsid})", [(IBM_I, "EbcdicText")],
                [f"{column.system_name} is CCSID 65535 (FOR BIT DATA): guessed EBCDIC text in CCSID {ccsid} (the "
                 "file's other text columns' CCSID); set the CCSID the programs wrote it in (system value QCCSID)"],
                "text")
    if column.data_type == "VARCHAR":
        return "Text()", [(CORE, "Text")], [], "text"
    return "TrimmedText()", [(CORE, "TrimmedText")], [], "trimmed CHAR"


def _draft_column(column: CatalogColumn, target: str, in_key: bool, ccsid: int) -> DraftColumn | None:
    """The proposed column of one field, or None when no decoder exists for its type."""
    nullable = column.nullable and not in_key
    review: list[str] = []
    label = f"{column.system_name}: {column.label}" if column.label else column.system_name
    if column.data_type in TEXT_TYPES:
        decoder, imports, review, how = _text_column(column, ccsid)
        bounds = ["required=True"] if in_key else ([] if nullable else ["nullable=False"])
        field = f"text({', '.join([*bounds, *([f'max_length={column.length}'] if column.length > 0 else [])])})"
        return DraftColumn(target, (column.name,), decoder, "sa.Text()", "TEXT", field, nullable,
                           f"{label} ({how}, {column.kind})", (*imports, (FIELDS, "TEXT"), (FIELDS, "text")),
                           tuple(review))
    plain = f"pa_pandas.Field(nullable={nullable})"
    # 0 is no date (NULL), so a date or time column is nullable unless it is part of the key
    dated, dated_nullable = f"pa_pandas.Field(nullable={not in_key})", not in_key
    if column.is_cyymmdd:
        review = [f"guessed CYYMMDD date from {column.kind} and name *{DATE_NAME.search(column.system_name)[0]}*; "
                  "0 reads as no date"]
        return DraftColumn(target, (column.name,), "CyymmddDate()", "sa.Date()", "DATE", dated, dated_nullable,
                           f"{label} (CYYMMDD)", ((IBM_I, "CyymmddDate"), (FIELDS, "DATE")), tuple(review))
    if column.is_hhmmss:
        review = [f"guessed HHMMSS time from {column.kind} and name *{TIME_NAME.search(column.system_name)[0]}*"]
        return DraftColumn(target, (column.name,), "HhmmssTime()", "sa.Time()", "TIME", dated, dated_nullable,
                           f"{label} (HHMMSS)", ((IBM_I, "HhmmssTime"), (FIELDS, "TIME")), tuple(review))
    if column.data_type in NUMBER_TYPES:
        precision, scale = column.length, column.scale or 0
        if precision == 7 and scale == 0:
            review.append(f"{column.kind} is how CYYMMDD dates are kept, but the name does not say date: read as a "
                          "number; use CyymmddDate() if it holds dates")
        elif precision == 8 and scale == 0 and DATE_NAME.search(column.system_name):
            review.append(f"{column.kind} named *DAT* may be a YYYYMMDD date (no decoder yet): read as a number")
        storage = ZONED if column.data_type == "NUMERIC" else PACKED
        digits = f"{precision}, {scale}"
        return DraftColumn(target, (column.name,), f"Decimal({digits})", f"sa.Numeric({digits})", f"decimal({digits})",
                           plain, nullable, f"{label} ({storage} {column.kind})",
                           ((CORE, "Decimal"), (FIELDS, "decimal")), tuple(review))
    if column.data_type in INTEGER_TYPES:
        return DraftColumn(target, (column.name,), "Integer()", "sa.BigInteger()", "INT", plain, nullable,
                           f"{label} ({column.kind})", ((CORE, "Integer"), (FIELDS, "INT")))
    return None


def _names(columns: list[CatalogColumn]) -> tuple[list[str], dict[str, str]]:
    """Target names: the SQL (DDS ALIAS) name when the field has one, else its COLUMN_TEXT (a guess, marked),
    else the system name. Returns the names and the review note of each name taken from a label."""
    wanted, notes = [], {}
    for column in columns:
        if column.name != column.system_name:
            wanted.append(snake_case(column.name))
        elif column.label and snake_case(column.label):
            wanted.append(snake_case(column.label)[:40].rstrip("_"))
            notes[column.name] = f"named from {column.system_name}'s text {column.label!r}"
        else:
            wanted.append(snake_case(column.system_name) or f"field_{len(wanted) + 1}")
    return unique_names(wanted, set(AUDIT_NAMES) | {"source_changed_at"}), notes


def draft_file(source: As400Source, name: str, key: Sequence[str] = ()) -> TableDraft:
    """The draft of `LIB.FILE`; `key` (system or SQL names) overrides the key the catalog gives."""
    table = sql.QualifiedTable.parse(name)
    fields, labels, constraints, keys, indexes, system = source.read_catalog(table, [
        sql.record_format(table), sql.column_labels(table), sql.table_constraints(table), sql.constraint_keys(table),
        sql.table_indexes(table), sql.system_names(table)])
    if not fields:
        raise DraftError(f"{table} is not in the IBM i catalog (QSYS2.SYSCOLUMNS2): check the library and file name")
    columns = _columns(fields, labels)
    journal = source.read_catalog(table, [sql.journaling(str(system[0][0]).strip(), str(system[0][1]).strip())])[0] \
        if system else []
    by_name = {column.name: column for column in columns} | {column.system_name: column for column in columns}
    if key:
        unknown = [part for part in key if part.upper() not in by_name]
        if unknown:
            raise DraftError(f"--key {', '.join(unknown)}: no such column in {table}")
        key_names, origin, guessed = [by_name[part.upper()].name for part in key], "--key", False
    else:
        key_names, origin, guessed = _key(constraints, keys, indexes)
    if not key_names:
        raise DraftError(f"{table} has no primary key, unique constraint, unique DDS key or unique index in the "
                         "catalog: name the business key with --key COLUMN[,COLUMN…]")
    key_names = [by_name[part].name for part in key_names]
    ccsids = Counter(c.ccsid for c in columns if c.data_type in TEXT_TYPES and c.ccsid in EBCDIC_CCSIDS)
    ccsid = ccsids.most_common(1)[0][0] if ccsids else 37
    stamps = _stamp_pair(columns)
    if stamps and any(column.name in key_names for column in stamps):
        stamps = None  # a stamp that is part of the key stays a column of its own
    targets, label_notes = _names(columns)
    drafted: list[DraftColumn] = []
    ignored: list[str] = []
    review: list[str] = []
    for column, target in zip(columns, targets, strict=True):
        if stamps and column in stamps:
            continue
        proposed = _draft_column(column, target, column.name in key_names, ccsid)
        if proposed is None:
            ignored.append(column.name)
            review.append(f"{column.name} is {column.kind}: no decoder reads this type yet, so it is ignored")
            continue
        notes = (label_notes[column.name],) if column.name in label_notes else ()
        drafted.append(replace(proposed, review=(*notes, *proposed.review)))
    change_tracking = None
    if stamps:
        date, time = stamps
        stamp_review = [f"guessed change stamp pair {date.system_name} + {time.system_name} (CYYMMDD and HHMMSS, names "
                        f"{CHANGE_NAME.match(date.system_name)[0]}*): incremental syncs read rows changed since"]
        if not any(index_columns(names)[:2] == [date.name, time.name] for _, _, _, names, _ in indexes):
            stamp_review.append(f"no index is led by {date.name}, {time.name}: the change sensor needs one (its error "
                                "names the CREATE INDEX to ask the DBA for)")
        drafted.append(DraftColumn(
            "source_changed_at", (date.name, time.name), "CyymmddHhmmssTimestamp()", "sa.DateTime()", "TIMESTAMP",
            "pa_pandas.Field(nullable=False)", False, f"Last change at the source ({date.system_name} + "
            f"{time.system_name})", ((IBM_I, "CyymmddHhmmssTimestamp"), (FIELDS, "TIMESTAMP")), tuple(stamp_review)))
        change_tracking = f"ChangeTracking(columns=({quoted(date.name)}, {quoted(time.name)}))"
    notes = [f"Business key: {origin}."]
    if guessed:
        review.append(f"business key {', '.join(key_names)} taken from a {origin}: check it identifies a record")
    if journal:
        library, journal_name, images = (str(value or "").strip() for value in journal[0])
        notes.append(f"Journaled to {library}/{journal_name} ({images or '*AFTER'}): with AS400_CHANGE_TRACKING=auto "
                     "the sync reads changes and deletions from the journal.")
    elif not stamps:
        review.append("neither journaled nor a change-stamp pair found: every sync reads the whole file")
    review.append(f"entity and target table named after the file ({table.table.lower()}); rename before the first "
                  "migration if the application calls it otherwise")
    by_target = {column.name: target for column, target in zip(columns, targets, strict=True)}
    entity = snake_case(table.table)
    return TableDraft(
        source_system="as400", source_table=str(table), entity=entity, target_table=entity,
        model_name="".join(part.capitalize() for part in entity.split("_")) + "Model",
        description=f"{table} from the IBM i, scaffolded from its catalog.",
        business_key=tuple(by_target[name] for name in key_names), columns=tuple(drafted),
        change_tracking=change_tracking, ignored_source_columns=tuple(ignored), review=tuple(review),
        notes=tuple(notes), before_reading=f"add {table} to AS400_ALLOWED_TABLES")
