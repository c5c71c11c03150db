"""A proposed table spec, as a source system reads it from its own catalog: what `erp-sync scaffold` writes.

A source package turns its catalog (IBM i QSYS2 views, 4D `$catalog`) into a `TableDraft`; `erp_pipelines.scaffold`
renders it as Python (spec plus pandera model) and a migration. Everything here is code text the source chose,
and every guess carries a `review` note, so nothing guessed reaches the generated code unmarked.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

Import = tuple[str, str]
"""(module, name) a generated module imports."""

AUDIT_NAMES = frozenset({"synced_at", "deleted_at", "sync_run_id"})
"""Columns every target table has already (app_db.tables): no spec column may take these names."""


class DraftError(ValueError):
    """The source's catalog does not say enough to scaffold the table (the message names what is missing)."""


@dataclass(frozen=True)
class DraftColumn:
    """One proposed spec column with its model field. `decoder`, `sql_type`, `dtype` and `field` are code."""

    target: str
    source: tuple[str, ...]
    decoder: str
    sql_type: str
    dtype: str
    field: str
    """The pandera field call without its description, e.g. `text(required=True, max_length=10)`."""
    nullable: bool
    description: str
    imports: tuple[Import, ...]
    review: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableDraft:
    """One proposed table: names, key, columns, change tracking and the notes a reviewer must read."""

    source_system: str
    source_table: str
    entity: str
    target_table: str
    model_name: str
    description: str
    business_key: tuple[str, ...]
    columns: tuple[DraftColumn, ...]
    change_tracking: str | None = None
    """Code of the `ChangeTracking(...)`, or None (journal or full reads only)."""
    ignored_source_columns: tuple[str, ...] = ()
    review: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """Facts read from the catalog that are no guess but matter to a reviewer (the journal, the key's origin)."""
    imports: tuple[Import, ...] = field(default=())
    application: str | None = None
    """The application's own table to map onto (`ApplicationTable`), when the operator names one."""
    before_reading: str = ""
    """What an operator must still do before the source lets the sync read the table (a whitelist entry)."""

    def __post_init__(self) -> None:
        targets = [column.target for column in self.columns]
        repeated = sorted({name for name in targets if targets.count(name) > 1})
        if repeated:
            raise DraftError(f"{self.source_table}: two columns would both be named {', '.join(repeated)}")
        unknown = [name for name in self.business_key if name not in targets]
        if unknown or not self.business_key:
            raise DraftError(f"{self.source_table}: business key {', '.join(unknown) or '(none)'} is no column")


def quoted(text: str) -> str:
    """A double-quoted Python string literal (the project's style) for generated code."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def snake_case(text: str) -> str:
    """A Python/SQL identifier from a catalog name or label: `Supplier name` → `supplier_name`,
    `SupplierName` → `supplier_name`, `SUPNAM` → `supnam`, `$AMT#` → `amt`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text.strip())
    name = re.sub(r"[^0-9a-z]+", "_", spaced.lower()).strip("_")
    if not name:
        return ""
    if name[0].isdigit() or keyword.iskeyword(name):
        name = f"f_{name}"
    return name


def unique_names(wanted: list[str], taken: set[str]) -> list[str]:
    """Each name, or with `_2`, `_3` … appended when an earlier one (or `taken`) has it already."""
    used = set(taken)
    names: list[str] = []
    for name in wanted:
        candidate, number = name, 2
        while candidate in used:
            candidate, number = f"{name}_{number}", number + 1
        used.add(candidate)
        names.append(candidate)
    return names
