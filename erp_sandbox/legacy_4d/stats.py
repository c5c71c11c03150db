"""What reached the emulator: counters, recent filters and the request log (never a header)."""

from __future__ import annotations

import threading
from collections import Counter, deque
from urllib.parse import unquote

from .errors import RestError
from .query import parse_query_string

# Requests kept by the request log (GET /_emulator/requests): a whole test sync fits, a demo stays bounded.
REQUEST_LOG_SIZE = 20_000


def _logged_query(raw_query: str) -> dict[str, str]:
    """The query as the server reads it; an unparsable one is kept raw so the log never loses a request."""
    try:
        return parse_query_string(raw_query)
    except RestError:
        return {"": unquote(raw_query)}


class Stats:
    """What reached the server, so tests can check filters were bound and retries happened.

    The request log holds, per request, the method, the decoded path and query parameters, the status
    and the body's size; never a header, so credentials (sent as headers) are never kept.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests_served = 0
            self.by_status: Counter[int] = Counter()
            self.last_filters: deque[dict] = deque(maxlen=100)
            self.last_requests: deque[dict] = deque(maxlen=100)
            self.log: deque[dict] = deque(maxlen=REQUEST_LOG_SIZE)

    def request(self, method: str, target: str, status: int, body_bytes: int = 0) -> None:
        raw_path, _, raw_query = target.partition("?")
        entry = {"method": method, "path": unquote(raw_path), "query": _logged_query(raw_query),
                 "status": status, "body_bytes": body_bytes}
        with self._lock:
            self.requests_served += 1
            self.by_status[status] += 1
            self.last_requests.append({"method": method, "target": unquote(target), "status": status})
            entry["seq"] = self.requests_served
            self.log.append(entry)

    def requests(self) -> list[dict]:
        with self._lock:
            return list(self.log)

    def filter(self, entry: dict) -> None:
        with self._lock:
            self.last_filters.append(entry)

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests_served": self.requests_served,
                "requests_by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                "last_filters": list(self.last_filters),
                "last_requests": list(self.last_requests),
            }
