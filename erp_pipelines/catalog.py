"""The catalog: every synced entity of every registered source system, in load order (parents first)."""

from __future__ import annotations

import sqlalchemy as sa

from erp_pipelines.app_db.tables import metadata, table_of
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.sources.registry import SYSTEMS
from erp_pipelines.sources.system import SourceSystem

CATALOG: tuple[TableSpec, ...] = tuple(spec for system in SYSTEMS for spec in system.tables)


class UnknownEntityError(KeyError):
    """Raised for an entity name that is not in the catalog; the message lists the known ones."""

    def __str__(self) -> str:
        known = ", ".join(spec.entity + (f" (or {', '.join(spec.aliases)})" if spec.aliases else "")
                          for spec in CATALOG)
        return f"unknown entity {self.args[0]!r}; known entities: {known}"


def get_spec(entity: str) -> TableSpec:
    """The spec of an entity, named by its entity name or one of its aliases (`TableSpec.aliases`)."""
    name = entity.strip().casefold()
    for spec in CATALOG:
        if name in spec.names:
            return spec
    raise UnknownEntityError(entity)


def specs_for(source_system: str) -> list[TableSpec]:
    return [spec for spec in CATALOG if spec.source_system == source_system]


def system_of(spec: TableSpec) -> SourceSystem:
    return next(system for system in SYSTEMS if system.name == spec.source_system)


def application_metadata() -> sa.MetaData:
    """The audit tables plus every catalog table: what the migrations create."""
    for spec in CATALOG:
        table_of(spec)
    return metadata
