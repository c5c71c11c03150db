"""The table catalog: every synced entity of every source system, in load order (parents first)."""

from __future__ import annotations

from erp_pipelines.catalog.as400_tables import AS400_TABLES
from erp_pipelines.catalog.legacy_4d_tables import LEGACY_4D_TABLES
from erp_pipelines.catalog.spec import TableSpec

CATALOG: tuple[TableSpec, ...] = (*AS400_TABLES, *LEGACY_4D_TABLES)


class UnknownEntityError(KeyError):
    """Raised for an entity name that is not in the catalog; the message lists the known ones."""

    def __str__(self) -> str:
        return f"unknown entity {self.args[0]!r}; known entities: {', '.join(s.entity for s in CATALOG)}"


def get_spec(entity: str) -> TableSpec:
    for spec in CATALOG:
        if spec.entity == entity:
            return spec
    raise UnknownEntityError(entity)


def specs_for(source_system: str) -> list[TableSpec]:
    return [spec for spec in CATALOG if spec.source_system == source_system]
