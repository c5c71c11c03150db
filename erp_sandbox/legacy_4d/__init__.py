"""Local emulator of a 4D (legacy ERP) REST server, backed by PostgreSQL, plus its data seeder.

Entry points: ``server.EmulatorServer`` / ``server.start_in_thread`` (in-process), ``python -m
erp_sandbox.legacy_4d.server`` (own process), ``seed.seed_store`` / ``python -m erp_sandbox.legacy_4d.seed``,
and ``store.LegacyStore`` for direct tracked writes. Imports are lazy so ``python -m`` runs cleanly.

The server is split by responsibility: ``rest`` (``RestApp``, the REST API without HTTP), ``sessions``
(sessions and their licenses), ``entitysets``, ``faults`` (fault injection and raw values), ``stats`` (request
log), ``clock``, ``config`` (``EmulatorConfig``) and ``server`` (HTTP server, ``EmulatorServer``, ``main``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EmulatorServer": "server",
    "start_in_thread": "server",
    "LegacyStore": "store",
    "StoreError": "store",
    "seed_store": "seed",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
