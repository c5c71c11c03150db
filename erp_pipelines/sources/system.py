"""What a source system package declares: the one interface the Dagster layer, the CLI and the logs use.

A source system is one package under `erp_pipelines/sources/<name>/` with a `system.py` holding `SYSTEM`, a
`SourceSystem`: its tables, its settings as a Dagster resource (`SourceResource`), its secrets, its jobs and
schedules. `erp_pipelines.sources.registry` is the only list of them; nothing outside `sources/` names one.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

import dagster as dg
from pydantic import Field

from erp_pipelines.core.draft import DraftError, TableDraft
from erp_pipelines.core.source import SettingError, SourceAdapter, flag_setting, number_setting
from erp_pipelines.core.spec import Cadence, TableSpec


def setting(variable: str, description: str, default: Any = ..., *, secret: bool = False) -> Any:
    """A resource field read from one environment variable: the only place its name, default and meaning are
    declared. A secret stays a `dg.EnvVar` in Dagster (resolved at launch, never shown in the UI)."""
    return Field(default=default, description=f"{description} ({variable})", repr=not secret,
                 json_schema_extra={"env": variable, "secret": secret})


class EnvSettings(dg.ConfigurableResource):
    """A resource whose fields are `setting(...)`s: `from_env` reads them all, each parsed by its type and
    refused naming its variable (`setting_error`), so no system writes its own environment parser."""

    setting_error: ClassVar[type[ValueError]] = SettingError

    @classmethod
    def env_defaults(cls, env: Mapping[str, str]) -> dict[str, Any]:
        """Defaults that depend on the environment itself (a path under DAGSTER_HOME, say)."""
        return {}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, secrets_from_env_var: bool = False) -> Self:
        """The settings from the environment. For Dagster definitions pass `secrets_from_env_var`: secrets then
        stay `dg.EnvVar`s; code outside Dagster gets their values."""
        env = os.environ if env is None else env
        values: dict[str, Any] = cls.env_defaults(env)
        for name, field in cls.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            variable = extra.get("env")
            if not isinstance(variable, str):
                continue
            if extra.get("secret"):
                values[name] = dg.EnvVar(variable) if secrets_from_env_var else env.get(variable, "")
                continue
            text = env.get(variable)
            if text is None or not text.strip():
                continue
            values[name] = cls._parse(variable, text, field.annotation, env)
        return cls(**values)

    @classmethod
    def _parse(cls, variable: str, text: str, annotation: Any, env: Mapping[str, str]) -> Any:
        kinds = set(typing.get_args(annotation)) - {type(None)} if isinstance(annotation, types.UnionType) else {
            annotation}
        if bool in kinds:
            return flag_setting(env, variable, True, cls.setting_error)
        if int in kinds or float in kinds:
            kind = int if int in kinds else float
            try:
                return number_setting(env, variable, None, kind)
            except SettingError as exc:
                raise cls.setting_error(str(exc)) from None
        return text

    def replaced(self, **changes: Any) -> Self:
        """A copy with some settings changed, validated again (pydantic's model_copy would skip that)."""
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})


class SourceResource(EnvSettings, ABC):
    """A source system's settings as its Dagster resource: read and validated once, secrets as `dg.EnvVar`.

    The resource key is the system's name; assets, checks and sensors reach it through `resource_of`."""

    @abstractmethod
    def source(self) -> SourceAdapter:
        """The adapter the engine reads through (a new one per run, check or sensor tick)."""

    @abstractmethod
    def probe(self, specs: list[TableSpec]) -> str:
        """`erp-sync test-connection`: open a session, say where and as whom, and what of `specs` is readable.
        Raises with a message naming the problem (never a secret) when the source cannot be used."""

    def draft_table(self, name: str, key: Sequence[str] = ()) -> TableDraft:
        """`erp-sync scaffold`: the spec this system proposes for its table `name`, read from its own catalog,
        every guess marked for review; `key` names the business key's source columns when the catalog has none.
        A system that cannot describe its tables says so."""
        raise DraftError(f"{type(self).__name__} cannot scaffold tables")

    def unconfigured_reason(self) -> str | None:
        """Why this deployment has not set the system up (naming the settings), or None when it has.

        `erp-sync sync` and `replay` without `--entity` skip a system that is not configured, saying so, instead
        of failing on (and retrying) a source nobody pointed them at. The default says every system is
        configured; a system whose settings all have usable defaults but still need to be given overrides it."""
        return None


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
    scaffolded_package: str | None = None
    """The package `erp-sync scaffold` writes this system's new table modules into (`scaffolded_tables`)."""

    def __post_init__(self) -> None:
        for spec in self.tables:
            if spec.source_system != self.name:
                raise ValueError(f"table {spec.entity!r} of source system {self.name!r} says {spec.source_system!r}")


def resource_of(resources: object, system: SourceSystem) -> SourceResource:
    """The system's resource from a Dagster context's resources, checked to implement `SourceResource`."""
    resource = getattr(resources, system.name)
    if not isinstance(resource, SourceResource):
        raise TypeError(f"resource {system.name!r} is a {type(resource).__name__}, not a SourceResource")
    return resource


def scaffolded_tables(package: str) -> tuple[TableSpec, ...]:
    """The `SPEC` of every module in `package`, by module name: the tables `erp-sync scaffold` wrote and the
    team reviewed and committed. Reading a table still needs its source's own permission (the AS400 whitelist)."""
    specs: list[TableSpec] = []
    for module_info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package}.{module_info.name}")
        spec = getattr(module, "SPEC", None)
        if not isinstance(spec, TableSpec):
            raise SettingError(f"{package}.{module_info.name} has no SPEC = TableSpec(...)")
        specs.append(spec)
    return tuple(specs)
