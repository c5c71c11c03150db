"""Entity sets (``$method=entityset``): key lists kept on the server until their ``$timeout``."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .clock import Clock


@dataclass
class EntitySet:
    id: str
    dataclass: str
    keys: list
    timeout: float
    expires: float = 0.0

    def touch(self, now: float) -> None:
        self.expires = now + self.timeout


class EntitySetRegistry:
    def __init__(self, clock: Clock) -> None:
        self._sets: dict[str, EntitySet] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def put(self, entity_set: EntitySet) -> EntitySet:
        entity_set.touch(self._clock.now())
        with self._lock:
            self._sets[entity_set.id] = entity_set
        return entity_set

    def get(self, set_id: str) -> EntitySet | None:
        """Return a live set and restart its timer (4D restarts it on each use)."""
        with self._lock:
            entity_set = self._sets.get(set_id)
            now = self._clock.now()
            if entity_set and entity_set.expires < now:
                del self._sets[set_id]
                entity_set = None
            if entity_set:
                entity_set.touch(now)
            return entity_set

    def release(self, set_id: str) -> bool:
        with self._lock:
            return self._sets.pop(set_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()

    def info(self) -> list[dict]:
        now = self._clock.now()
        with self._lock:
            return [
                {"id": s.id, "tableName": s.dataclass, "selectionSize": len(s.keys), "sorted": True,
                 "expires": round(s.expires - now, 1)}
                for s in self._sets.values() if s.expires >= now
            ]
