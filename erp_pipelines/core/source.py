"""What the engine needs from a source system: batches of raw rows, a watermark, deletions."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from erp_pipelines.core.spec import TableSpec

Watermark = dict[str, Any]
RecordKey = tuple[Any, ...]
"""A source record's exact key: its raw key values as the source compares them (JSON-safe)."""

STRUCTURED_VALUES = "__structured_values"
"""Optional list<string> column of a raw batch: per row, the source columns whose value was structured (a
JSON object or array from 4D) where the spec reads a single value. The adapter keeps such values as JSON
text for the quarantine; the validator rejects the row, naming the column."""


class SyncSourceError(Exception):
    """Base class of source errors; their messages never contain credentials."""


class PermanentSourceError(SyncSourceError):
    """Retrying cannot help (configuration, refused login, unsafe name, unusable watermark): fail at once."""


class SourceAuthenticationError(PermanentSourceError):
    """The source refused the credentials. Never retried: every retry is one more failed sign-on, and the
    IBM i disables a user profile after QMAXSIGN of them (3 by default)."""


class InvalidWatermarkError(PermanentSourceError):
    """The stored watermark cannot be a position in the source (edited by hand or from another version)."""


class SettingError(PermanentSourceError, ValueError):
    """A source setting that cannot be used as it is; the message names the setting, never a secret."""


_YES, _NO = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


def flag_setting(
    env: Mapping[str, str], name: str, default: bool, error: type[ValueError] = SettingError
) -> bool:
    """A yes/no setting; anything else is refused naming it (a typo must not turn TLS or a check off)."""
    text = (env.get(name) or "").strip()
    if not text:
        return default
    if text.lower() not in _YES | _NO:
        raise error(f"{name}={text!r} must be true or false")
    return text.lower() in _YES


def number_setting(
    env: Mapping[str, str], name: str, default: str | None, kind: type[int] | type[float] = int
) -> int | float | None:
    """A positive number from the environment (None when unset without default), refused naming the setting."""
    text = (env.get(name) or default or "").strip()
    if not text:
        return None
    try:
        value = kind(text) if text.isascii() and "_" not in text else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise SettingError(f"{name}={text!r} must be a positive {'whole ' if kind is int else ''}number")
    return value


class SchemaDriftError(PermanentSourceError):
    """The source table no longer has the columns the spec reads."""


def require_source_columns(
    spec: TableSpec, present: set[str] | list[str], where: str, *, complete: bool = False
) -> None:
    """Schema drift check shared by every adapter: the source must still have every column the spec reads.

    With `complete` (`present` is the table's whole column list, read from the source's catalog) a column
    the spec does not know is drift too: a new source field would otherwise be dropped silently. Columns
    the spec lists in `ignored_source_columns` are known; a spec that reads only the distinct values of
    one column (a derived reference table) does not own the others.
    """
    missing = [name for name in spec.source_columns if name not in present]
    known = {*spec.source_columns, *spec.ignored_source_columns}
    unexpected = [name for name in present if name not in known] if complete and not spec.distinct_values_of else []
    problems = []
    if missing:
        problems.append(
            f"column(s) {', '.join(missing)} expected by the '{spec.entity}' spec are missing at the source"
        )
    if unexpected:
        problems.append(
            f"column(s) {', '.join(unexpected)} at the source are not in the '{spec.entity}' spec (read them, "
            "or list them in its ignored_source_columns)"
        )
    if problems:
        raise SchemaDriftError(f"schema drift in {where}: {'; '.join(problems)}")


def exact_keys(raw: pa.RecordBatch, columns: list[str], *, trailing_blanks_significant: bool) -> list[RecordKey]:
    """The exact key of every row of a raw batch, never joined into one string.

    Text keeps its leading blanks; trailing blanks are dropped only where the source ignores them when it
    compares (Db2 for i pads the shorter CHAR operand with blanks: "Character string comparisons", SQL
    reference). Values that are not JSON scalars (bytes, decimals, dates) are kept as text.
    """
    parts = []
    for name in columns:
        column = raw.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            if not trailing_blanks_significant:
                column = pc.utf8_rtrim(column, characters=" ")
            parts.append(column.to_pylist())
        else:
            parts.append([_json_scalar(value) for value in column.to_pylist()])
    return list(zip(*parts, strict=True)) if parts else []


def _json_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class ChangeRangeError(PermanentSourceError, ValueError):
    """A backfill range the source cannot read: `bound` names the setting at fault (`since` or `until`, the
    CLI's `--since`/`--until`, the run config's and run tags' fields of the same names)."""

    def __init__(self, bound: str, message: str) -> None:
        super().__init__(message)
        self.bound = bound


@dataclass(frozen=True)
class ChangeRange:
    """A backfill's range of change markers as the operator wrote them: from `since` (included) up to `until`
    (excluded; open when None). What the text means is the source's business: a CYYMMDD/HHMMSS stamp pair on
    the AS400, a `__GlobalStamp` on 4D (`SourceAdapter.check_range`)."""

    since: str
    until: str | None = None


Bound = TypeVar("Bound", int, tuple[int, int])


def range_bounds(changes: ChangeRange, parse: Callable[[str, str], Bound]) -> tuple[Bound, Bound | None]:
    """A backfill range's ends as the source compares them (`parse(bound, text)` each), from (included) and up
    to (excluded); an empty range is refused naming `until`."""
    since = parse("since", changes.since)
    until = parse("until", changes.until) if changes.until is not None else None
    if until is not None and until <= since:
        raise ChangeRangeError("until", f"until {changes.until} is not after since {changes.since}: the range is "
                                        "empty (since is included, until is not)")
    return since, until


class TableNotAllowedError(PermanentSourceError):
    """The table is not whitelisted; raised before any connection is opened."""


@dataclass(frozen=True)
class SourceChange:
    """Who changed a record at the source last, as the source records it (an IBM i journal entry)."""

    key: RecordKey
    changed_at: Any
    user: str
    job: str
    program: str
    position: str


class Extraction(Protocol):
    """One read of one table, started by `SourceAdapter.extract`."""

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Raw rows with the spec's source column names; memory stays bounded by the batch size."""
        ...

    def watermark(self) -> Watermark | None:
        """The position to resume from next time; valid once `batches()` is exhausted."""
        ...

    def deleted_keys(self) -> pa.RecordBatch | None:
        """Source keys deleted since the watermark, when the source can tell (4D); else None."""
        ...

    def notes(self) -> dict[str, Any]:
        """Facts about the read worth reporting (e.g. rows stamped in the future); valid after `batches()`."""
        ...

    def changes(self) -> list[SourceChange]:
        """The last source change of each record read, when the source records who made it; valid after
        `batches()`. Empty for a source that does not tell."""
        ...


class SourceAdapter(Protocol):
    """A source system seen by the engine. AS400 and 4D implement it; the engine knows nothing else."""

    system: str

    def extract(self, spec: TableSpec, since: Watermark | None) -> AbstractContextManager[Extraction]:
        """Reads the whole table (`since` is None) or the rows changed since a watermark."""
        ...

    def extract_keys(self, spec: TableSpec, keys: list[RecordKey]) -> AbstractContextManager[Extraction]:
        """Reads only the rows with these exact keys (a replay), each bound as it is; no watermark, no deletions."""
        ...

    def check_range(self, spec: TableSpec, changes: ChangeRange) -> None:
        """Refuses, before any connection, a backfill range this source cannot represent or that is empty
        (`ChangeRangeError` naming the bound at fault)."""
        ...

    def extract_range(self, spec: TableSpec, changes: ChangeRange) -> AbstractContextManager[Extraction]:
        """Reads only the rows whose change marker lies in the range (a backfill), checked by `check_range` first;
        no deletions are reported."""
        ...

    def record_keys(self, spec: TableSpec, raw: pa.RecordBatch) -> list[RecordKey]:
        """The exact key of each raw row (`spec.source_key_columns`), compared the way this source compares."""
        ...

    def full_sync_reason(self, spec: TableSpec, since: Watermark | None) -> str | None:
        """Why an incremental run must read everything instead (the stored watermark lost its meaning), or None."""
        ...

    def count_rows(self, spec: TableSpec) -> int:
        """Rows in the source table now (for reconciliation)."""
        ...

    def position_warning(self, spec: TableSpec, since: Watermark | None) -> str | None:
        """A warning while the stored position can still be continued but soon may not be (an IBM i journal
        receiver about to be cleaned up), or None."""
        ...

    def change_markers(self, specs: list[TableSpec], previous: Mapping[str, str] | None = None) -> dict[str, str]:
        """A cheap marker per entity that moves when its source table changes (change sensors); `previous` is
        the last tick's markers, for a source that can answer "anything since?" in one request (4D)."""
        ...
