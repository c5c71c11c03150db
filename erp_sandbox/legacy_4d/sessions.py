"""Web user sessions and the 4D Client licenses they hold, each until its inactivity timeout."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

from .clock import Clock
from .errors import RestError


@dataclass
class Session:
    """A web user session; ``licensed`` = it holds a 4D Client license, ``privileged`` = it may read data."""

    id: str
    timeout: float
    last_used: float
    licensed: bool
    privileged: bool = False
    user: str | None = None


class SessionManager:
    """Sessions and the licenses they hold, each until the session's inactivity timeout (or a server restart).

    DOC https://developer.4d.com/docs/REST/authUsers: "On 4D Server, opening a REST session requires that a
    free 4D client license is available"; DOC https://developer.4d.com/docs/20/REST/REST_requests: HTTP 402
    "No session — maximum number of sessions has been reached" (engine errCode 1823).
    """

    def __init__(self, licenses: int, timeout: float, clock: Clock) -> None:
        self.licenses = licenses
        self.timeout = timeout
        self.clock = clock
        self.max_concurrent = 0  # most licenses held at one time
        self.opened = 0  # sessions ever opened
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def _sweep(self) -> None:
        now = self.clock.now()
        for sid in [sid for sid, s in self._sessions.items() if now - s.last_used > s.timeout]:
            del self._sessions[sid]

    def _in_use(self) -> int:
        return sum(1 for s in self._sessions.values() if s.licensed)

    def _take(self, session: Session) -> None:
        if self._in_use() >= self.licenses:
            raise RestError(402, (1823, "Maximum number of sessions has been reached"))
        session.licensed = True
        self.max_concurrent = max(self.max_concurrent, self._in_use())

    def get(self, sid: str | None) -> Session | None:
        """The live session of this cookie, its inactivity timer restarted; None if unknown or expired."""
        with self._lock:
            self._sweep()
            session = self._sessions.get(sid) if sid else None
            if session:
                session.last_used = self.clock.now()
            return session

    def open(self, *, licensed: bool) -> Session:
        with self._lock:
            self._sweep()
            session = Session(uuid.uuid4().hex.upper(), self.timeout, self.clock.now(), licensed=False)
            if licensed:
                self._take(session)
            self._sessions[session.id] = session
            self.opened += 1
            self.max_concurrent = max(self.max_concurrent, self._in_use())
            return session

    def take_license(self, session: Session) -> None:
        """Force login: ``Session.setPrivileges()`` is what consumes the license."""
        with self._lock:
            if not session.licensed:
                self._take(session)

    def drop(self, sid: str | None) -> bool:
        with self._lock:
            return self._sessions.pop(sid, None) is not None if sid else False

    def drop_all(self) -> int:
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count

    def open_count(self) -> int:
        with self._lock:
            self._sweep()
            return len(self._sessions)

    def licenses_in_use(self) -> int:
        with self._lock:
            self._sweep()
            return self._in_use()

    def reset_max(self) -> None:
        with self._lock:
            self._sweep()
            self.max_concurrent = self._in_use()
            self.opened = 0

    def info(self) -> list[dict]:
        with self._lock:
            self._sweep()
            now = self.clock.now()
            return [
                {"sessionID": s.id, "userName": s.user or "", "lifeTime": int(s.timeout),
                 "expiration": int(s.timeout - (now - s.last_used)), "license": s.licensed}
                for s in self._sessions.values()
            ]
