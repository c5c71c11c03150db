"""The catalog: every synced entity of every registered source system, in load order (parents first)."""

from __future__ import annotations

import os

import sqlalchemy as sa

from erp_pipelines.app_db.tables import metadata, table_of
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.sources.registry import SYSTEMS
from erp_pipelines.sources.system import SourceSystem

TARGETS = ("project", "application")


class TargetSettingError(ValueError):
    """ERP_TARGET names neither target kind."""


def _target_kind() -> str:
    kind = os.environ.get("ERP_TARGET", "project").strip() or "project"
    if kind not in TARGETS:
        raise TargetSettingError(f"ERP_TARGET={kind!r}: use 'project' (tables the project creates) or "
                                 f"'application' (the application's own tables, each spec's `application` mapping)")
    return kind


def _targeted(spec: TableSpec, kind: str) -> TableSpec:
    """With ERP_TARGET=application every spec that maps onto an application table writes it; the others
    keep their project-owned table."""
    return spec.onto_application() if kind == "application" and spec.application is not None else spec


PROJECT_SPECS: tuple[TableSpec, ...] = tuple(spec for system in SYSTEMS for spec in system.tables)
"""Every spec as declared (project-owned targets): what the project's migrations create."""
CATALOG: tuple[TableSpec, ...] = tuple(_targeted(spec, _target_kind()) for spec in PROJECT_SPECS)


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
    for spec in PROJECT_SPECS:
        table_of(spec)
    return metadata
