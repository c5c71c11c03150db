"""The registry: the only list of source systems. Adding one is its package plus one line in `BUILT_IN`.

A system maintained outside this project (a customer's own ERP package) is added without editing anything
here: name its `system` module in `ERP_SOURCE_PACKAGES` (comma-separated), e.g.
`ERP_SOURCE_PACKAGES=acme_erp.system`. README "Adding a source system".
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

from erp_pipelines.core.source import SettingError
from erp_pipelines.sources.system import SourceSystem

BUILT_IN = (
    "erp_pipelines.sources.as400.system",
    "erp_pipelines.sources.legacy_4d.system",
)
EXTRA_PACKAGES_SETTING = "ERP_SOURCE_PACKAGES"


def load_systems(env: Mapping[str, str] | None = None) -> tuple[SourceSystem, ...]:
    """Every registered system, built-in first; names and entities must be unique across all of them."""
    env = os.environ if env is None else env
    extra = [name.strip() for name in (env.get(EXTRA_PACKAGES_SETTING) or "").split(",") if name.strip()]
    systems: list[SourceSystem] = []
    for module_name in (*BUILT_IN, *extra):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            raise SettingError(f"{EXTRA_PACKAGES_SETTING}: no module {module_name!r}") from None
        system = getattr(module, "SYSTEM", None)
        if not isinstance(system, SourceSystem):
            raise SettingError(f"{EXTRA_PACKAGES_SETTING}: {module_name!r} has no SYSTEM = SourceSystem(...)")
        systems.append(system)
    _check_unique(systems)
    return tuple(systems)


def _check_unique(systems: list[SourceSystem]) -> None:
    names = [system.name for system in systems]
    entities = [name for system in systems for spec in system.tables for name in spec.names]
    tables = [spec.target_table for system in systems for spec in system.tables]
    for what, values in (("source system", names), ("entity name or alias", entities), ("target table", tables)):
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise SettingError(f"{what} {', '.join(repeated)} registered twice")


SYSTEMS: tuple[SourceSystem, ...] = load_systems()
