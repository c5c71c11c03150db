"""The emulator's clock: tests move it forward instead of waiting out 4D's timeouts."""

from __future__ import annotations

import threading
import time

from .errors import malformed


class Clock:
    """Monotonic seconds that a test can move forward, so a simulated day of session timeouts runs in seconds."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise malformed("the clock only moves forward")
        with self._lock:
            self._offset += seconds
