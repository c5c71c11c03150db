"""Emulator extensions for fault tests: injected failures and raw values sent in place of stored ones."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from .errors import malformed
from .schema import DATACLASSES, DataClass

FAULT_KINDS = frozenset({"http_500", "delay", "drop_session", "exhaust_licenses", "close_connection"})


@dataclass
class Fault:
    kind: str
    count: int  # remaining hits; negative = until cleared
    path_contains: str = ""
    seconds: float = 0.0


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, spec: Mapping) -> Fault:
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise malformed(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        try:
            fault = Fault(kind, int(spec.get("count", 1)), str(spec.get("path_contains") or ""),
                          float(spec.get("seconds", 0.0)))
        except (TypeError, ValueError) as exc:
            raise malformed(f"bad fault specification: {exc}") from exc
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, *targets: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.count != 0 and any(fault.path_contains in t for t in targets):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict]:
        with self._lock:
            return [asdict(f) for f in self._faults]


class RawValues:
    """Attribute values sent in place of the stored ones (emulator extension, for bad-input tests).

    What a 4D server sends when a field's content does not fit its catalog type (an object field, a computed
    attribute, a field retyped in the structure, a buggy plug-in): text where a number belongs, ``31!2!2020``,
    objects, a bare ``NaN``, unpaired surrogates. Set per entity key; cleared, the stored values show again.
    """

    def __init__(self) -> None:
        self._values: dict[str, dict[str, dict[str, object]]] = {}
        self._lock = threading.Lock()

    def put(self, spec: Mapping) -> None:
        dc = DATACLASSES.get(str(spec.get("dataclass")))
        values = spec.get("values")
        if dc is None or spec.get("key") is None or not isinstance(values, dict) or not values or any(
            dc.attribute(name) is None or name == dc.key for name in values
        ):
            raise malformed("raw values need a dataclass, an entity key and values of its other attributes")
        with self._lock:
            self._values.setdefault(dc.name, {}).setdefault(str(spec["key"]), {}).update(values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def apply(self, dc: DataClass, body: str) -> str:
        """Comma-joined entity JSON with the raw values put in (only attributes the request asked for)."""
        with self._lock:
            raw = {key: dict(values) for key, values in self._values.get(dc.name, {}).items()}
        if not raw or not body:
            return body
        entities = json.loads(f"[{body}]")
        for entity in entities:
            for name, value in raw.get(str(entity.get("__KEY")), {}).items():
                if name in entity:
                    entity[name] = value
        return ",".join(json.dumps(entity) for entity in entities)
