"""What a source system package declares: the one interface the Dagster layer, the CLI and the logs use.

A source system is one package under `erp_pipelines/sources/<name>/` with a `system.py` holding `SYSTEM`, a
`SourceSystem`: its tables, its settings as a Dagster resource (`SourceResource`), its secrets, its jobs and
schedules. `erp_pipelines.sources.registry` is the only list of them; nothing outside `sources/` names one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import dagster as dg

from erp_pipelines.core.source import SourceAdapter
from erp_pipelines.core.spec import Cadence, TableSpec


class SourceResource(dg.ConfigurableResource, ABC):
    """A source system's settings as its Dagster resource: read and validated once, secrets as `dg.EnvVar`.

    The resource key is the system's name; assets, checks and sensors reach it through `resource_of`."""

    @abstractmethod
    def source(self) -> SourceAdapter:
        """The adapter the engine reads through (a new one per run, check or sensor tick)."""

    @abstractmethod
    def probe(self, specs: list[TableSpec]) -> str:
        """`erp-sync test-connection`: open a session, say where and as whom, and what of `specs` is readable.
        Raises with a message naming the problem (never a secret) when the source cannot be used."""


class ResourceFactory(Protocol):
    def __call__(
        self, env: Mapping[str, str] | None = None, *, secrets_from_env_var: bool = True
    ) -> SourceResource: ...


@dataclass(frozen=True)
class JobDefault:
    """A job of a system's tables with its schedule. `cron` None: every `SourceSystem.interval_setting`."""

    name: str
    description: str
    cadences: tuple[Cadence, ...] = ("hourly", "daily")
    cron: str | None = None
    schedule_description: str = ""


@dataclass(frozen=True)
class SourceSystem:
    """Everything the rest of the project needs to know about one source system, declared once."""

    name: str
    """Resource key, asset-key prefix, asset group, concurrency pool, sync log name, `--source` value."""
    title: str
    """For people: asset descriptions and messages."""
    kind: str
    """Dagster asset kind (the icon in the UI)."""
    tables: tuple[TableSpec, ...]
    """Its synced tables in load order, parents first."""
    resource: ResourceFactory
    """Builds its `SourceResource` from the environment."""
    secret_settings: tuple[str, ...]
    """Environment variables holding secrets: redacted from every sync log line."""
    jobs: tuple[JobDefault, ...]
    interval_setting: str | None = None
    """Seconds between syncs of its daily tables (default a day); hourly tables stay hourly."""
    enabled_setting: str | None = None
    """A yes/no setting its schedules check at every tick (switch syncs off without a redeploy)."""

    def __post_init__(self) -> None:
        for spec in self.tables:
            if spec.source_system != self.name:
                raise ValueError(f"table {spec.entity!r} of source system {self.name!r} says {spec.source_system!r}")

    def tables_of(self, job: JobDefault) -> list[TableSpec]:
        return [spec for spec in self.tables if spec.cadence in job.cadences]


def resource_of(resources: object, system: SourceSystem) -> SourceResource:
    """The system's resource from a Dagster context's resources, checked to implement `SourceResource`."""
    resource = getattr(resources, system.name)
    if not isinstance(resource, SourceResource):
        raise TypeError(f"resource {system.name!r} is a {type(resource).__name__}, not a SourceResource")
    return resource
