"""The declarative table spec: the single place that says how one source table becomes one app table."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import pandera.pandas as pa_pandas
import sqlalchemy as sa

from erp_pipelines.core.decoders import Decoder

Cadence = Literal["hourly", "daily"]

DELETED_AT = "deleted_at"
"""The audit column a soft delete sets: a row is live while it is NULL (the one live-row rule)."""


def live(alias: str = "") -> str:
    """The live-row predicate in SQL, optionally for a table alias: `t.deleted_at is null`."""
    return f"{alias + '.' if alias else ''}{DELETED_AT} is null"


@dataclass(frozen=True)
class Column:
    """One application column, decoded from one or more source columns."""

    target: str
    source: tuple[str, ...]
    decoder: Decoder
    sql_type: sa.types.TypeEngine
    nullable: bool = True
    description: str = ""

    @classmethod
    def of(
        cls,
        target: str,
        source: str | tuple[str, ...],
        decoder: Decoder,
        sql_type: sa.types.TypeEngine,
        *,
        nullable: bool = True,
        description: str = "",
    ) -> Column:
        return cls(target, (source,) if isinstance(source, str) else source, decoder, sql_type, nullable, description)


@dataclass(frozen=True)
class ForeignKey:
    """A reference to a parent entity's business key; a row whose parent is missing is rejected."""

    columns: tuple[str, ...]
    parent: TableSpec
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class ChangeTracking:
    """How the source marks changed rows.

    AS400: a CYYMMDD change-date column plus an HHMMSS change-time column. 4D: the `__GlobalStamp` data
    change tracking field (deletions in `__DeletedRecords`).
    """

    columns: tuple[str, ...]
    overlap_seconds: int = 300


@dataclass(frozen=True)
class SoftDeleteFlag:
    """A row deleted at the source stays, with this boolean column false (Django's `is_active`)."""

    column: str


@dataclass(frozen=True)
class SoftDeleteTimestamp:
    """A row deleted at the source stays, with this timestamp column set (`deleted_at`); live while NULL."""

    column: str


@dataclass(frozen=True)
class HardDelete:
    """A row deleted at the source is deleted (its children's own specs must not reference it)."""


@dataclass(frozen=True)
class KeepDeleted:
    """Rows are never deleted or marked (get-or-create tables such as categories)."""


Deletion = SoftDeleteFlag | SoftDeleteTimestamp | HardDelete | KeepDeleted


@dataclass(frozen=True)
class ApplicationTable:
    """A target table the application owns (its migrations define it): the project reads and writes rows
    and never creates or alters it; each run first compares it with this mapping (`engine.drift`).

    Every spec column lands in the application column of the same name unless `renamed`; a foreign key
    lands in the application's surrogate-id column named in `references` (`category` → `category_id`),
    resolved from the parent's business key. The business key's columns must carry a unique index of the
    application table, which is how rows are matched. Application columns the spec does not map are left
    alone on update and take their database defaults on insert."""

    table: str
    schema: str = "public"
    renamed: tuple[tuple[str, str], ...] = ()
    """(spec column, application column) pairs."""
    references: tuple[tuple[str, str], ...] = ()
    """(first column of a spec foreign key, application column holding the parent's surrogate id) pairs."""
    deletion: Deletion = KeepDeleted()
    surrogate_key: str = "id"

    def column(self, spec_column: str) -> str:
        return dict(self.renamed).get(spec_column, spec_column)

    def reference(self, fk: ForeignKey) -> str:
        try:
            return dict(self.references)[fk.columns[0]]
        except KeyError:
            raise ValueError(f"{self.table}: no application column is declared for the reference "
                             f"{', '.join(fk.columns)} → {fk.parent.entity}") from None


@dataclass(frozen=True)
class TableSpec:
    """One synced entity: source table, business key, column mapping, validation model, target, cadence."""

    entity: str
    source_system: str
    """The registered source system that reads it (`erp_pipelines.sources.registry`)."""
    source_table: str
    target_table: str
    business_key: tuple[str, ...]
    columns: tuple[Column, ...]
    model: type[pa_pandas.DataFrameModel]
    cadence: Cadence
    description: str
    change_tracking: ChangeTracking | None = None
    foreign_keys: tuple[ForeignKey, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    max_rejected_share: float | None = None
    extra_source_columns: tuple[str, ...] = field(default=())
    ignored_source_columns: tuple[str, ...] = field(default=())
    """Source columns known to exist and deliberately not read (wide legacy files): not schema drift."""
    distinct_values_of: str | None = None
    """Set for derived reference tables: the source rows are the distinct values of this column."""
    aliases: tuple[str, ...] = ()
    """Other names operators know the entity by (the seed documents' `stock`, the 4D table `Products`): they
    work wherever an entity is named (`--entity`), compared without regard to case, and must be unique."""
    application: ApplicationTable | None = None
    """How the entity maps onto the application's own table, when the application has one."""
    writes_application: bool = False
    """Whether this spec writes `application` (else the project-owned `target_table`): see `onto_application`."""

    def __post_init__(self) -> None:
        if any(alias != alias.strip() or not alias for alias in self.aliases):
            raise ValueError(f"entity {self.entity!r}: an alias must be a non-empty name without surrounding spaces")

    @property
    def names(self) -> tuple[str, ...]:
        """The entity name and its aliases, case-folded: what `--entity` matches."""
        return tuple(dict.fromkeys(name.casefold() for name in (self.entity, *self.aliases)))

    @property
    def column_names(self) -> list[str]:
        return [column.target for column in self.columns]

    @property
    def source_columns(self) -> list[str]:
        """Every source column the spec reads, in a stable order, without repeats."""
        names: list[str] = []
        for column in self.columns:
            names.extend(name for name in column.source if name not in names)
        if self.change_tracking:
            names.extend(name for name in self.change_tracking.columns if name not in names)
        names.extend(name for name in self.extra_source_columns if name not in names)
        return names

    @property
    def source_key_columns(self) -> list[str]:
        """The raw source columns behind the business key (used to name a record in the quarantine)."""
        by_target = {column.target: column for column in self.columns}
        names: list[str] = []
        for key in self.business_key:
            names.extend(name for name in by_target[key].source if name not in names)
        return names

    @property
    def parents(self) -> tuple[TableSpec, ...]:
        """The specs this one references, each once: loaded first, rows without a live parent rejected."""
        return tuple({fk.parent.entity: fk.parent for fk in self.foreign_keys}.values())

    def onto_application(self) -> TableSpec:
        """The same entity written into the application's table, its parents too (memoized per entity, so
        every reference to a parent is the same spec object)."""
        if self.writes_application:
            return self
        if self.application is None:
            raise ValueError(f"entity {self.entity!r} declares no application table")
        known = _ONTO_APPLICATION.get(self.entity)
        if known is None:
            fks = tuple(replace(fk, parent=fk.parent.onto_application()) for fk in self.foreign_keys)
            known = replace(self, foreign_keys=fks, writes_application=True,
                            target_table=self.application.table)
            _ONTO_APPLICATION[self.entity] = known
        return known

    def column(self, target: str) -> Column:
        return next(column for column in self.columns if column.target == target)


_ONTO_APPLICATION: dict[str, TableSpec] = {}
