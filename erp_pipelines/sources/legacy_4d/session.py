"""The one 4D REST session of a deployment, kept across runs, checks, sensor ticks and processes.

Why: a 4D REST session holds a 4D Client license, taken from the pool the ERP's own users need, until the
session has been idle for its inactivity timeout (60 minutes at least) or the server restarts; logging out
is not documented for v18-v21 and frees nothing there (DOC https://developer.4d.com/docs/WebServer/sessions
"Session lifetime"; blog.4d.com "Improved 4D Client Licenses Usage", 2024-05-02: "The consumed 4D client
license is only released when the web session is closed after an inactivity timeout of at least one hour
(or a server restart)"). And "in the subsequent REST requests, make sure this cookie is included … Otherwise,
a new session will be opened, and another license used" (DOC docs/REST/authUsers.md).

So the session cookie is the deployment's: stored in one file (a secret: mode 600 in a 700 folder, never
logged), used by one caller at a time (a lock file, held for one HTTP exchange), kept alive by use.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from erp_pipelines.core.source import SettingError

LOCK_POLL_SECONDS = 0.05
FINGERPRINT_ROUNDS = 100_000


class SessionBusyError(TimeoutError):
    """Another caller has held the 4D session longer than this caller may wait."""


@dataclass
class SessionState:
    """What the jar keeps: the cookies of the session and what is known of it (never a password)."""

    server: str = ""
    salt: str = field(default_factory=lambda: secrets.token_hex(16))
    cookies: list[dict[str, str]] = field(default_factory=list)
    session_id: str | None = None
    authenticated_as: str | None = None  # fingerprint of the credentials that authenticated this session
    refused: str | None = None  # fingerprint of credentials the server refused (not tried again)
    last_used: float = 0.0
    sessions_seen: int = 0  # how many different sessions this deployment has been handed by the server

    def fingerprint(self, *parts: str) -> str:
        """A salted, deliberately slow hash (PBKDF2) naming a set of credentials, so a change of user, password or
        mode is noticed, without the file being a cheap way to guess the password."""
        return _slow_hash(self.salt, "\0".join(parts))


@functools.lru_cache(maxsize=16)
def _slow_hash(salt: str, text: str) -> str:
    """PBKDF2 once per process and credentials (each sensor tick builds a new client)."""
    return hashlib.pbkdf2_hmac("sha256", text.encode(), bytes.fromhex(salt), FINGERPRINT_ROUNDS).hex()


class SessionJar:
    """The session state, in memory (one process) or in a file shared by every process of the deployment."""

    def __init__(self, path: Path | str | None = None, *, wait_seconds: float = 600.0) -> None:
        self.path = Path(path).expanduser() if path else None
        self.wait_seconds = wait_seconds
        self._memory: dict[str, SessionState] = {}
        self._thread_lock = threading.RLock()

    def __repr__(self) -> str:
        return f"SessionJar({str(self.path) if self.path else 'in memory'})"

    @contextlib.contextmanager
    def use(self, server: str, wait_seconds: float | None = None) -> Iterator[SessionState]:
        """The state of ``server``'s session, for one caller at a time; written back when the block ends."""
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        if not self._thread_lock.acquire(timeout=wait):
            raise SessionBusyError(f"the 4D session is busy (waited {wait:g} s for another caller)")
        try:
            if self.path is None:
                state = self._memory.get(server) or SessionState(server=server)
                try:
                    yield state
                finally:  # kept even when the exchange failed: a refused login's session is still the one held
                    self._memory[server] = state
                return
            with self._file_lock(wait):
                state = self._read(server)
                before = asdict(state)
                try:
                    yield state
                finally:
                    if asdict(state) != before:
                        self._write(state)
        finally:
            self._thread_lock.release()

    def forget(self) -> None:
        """Drop what is known (the server's session itself lives on until its timeout)."""
        with self._thread_lock:
            self._memory.clear()
            if self.path is not None:
                self.path.unlink(missing_ok=True)

    # --- the file --------------------------------------------------------------------------------

    def _folder(self) -> Path:
        assert self.path is not None
        folder = self.path.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True)
        return folder

    @contextlib.contextmanager
    def _file_lock(self, wait: float) -> Iterator[None]:
        assert self.path is not None
        lock_path = self._folder() / f".{self.path.name}.lock"
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise SessionBusyError(
                            f"the 4D session is busy (waited {wait:g} s for another process)") from None
                    time.sleep(LOCK_POLL_SECONDS)
            yield
        finally:
            os.close(descriptor)

    def _read(self, server: str) -> SessionState:
        assert self.path is not None
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return SessionState(server=server)
        if stat.S_IMODE(info.st_mode) & 0o077 or info.st_uid != os.getuid():
            raise SettingError(
                f"LEGACY_API_SESSION_FILE {self.path} holds the 4D session cookie, a secret: it must belong to "
                f"this user and be readable by nobody else (chmod 600 {self.path})"
            )
        try:
            data = json.loads(self.path.read_text())
            state = SessionState(**data)
        except (ValueError, TypeError):
            return SessionState(server=server)  # unreadable: start afresh (the old session times out)
        return state if state.server == server else SessionState(server=server, sessions_seen=0)

    def _write(self, state: SessionState) -> None:
        assert self.path is not None
        temporary = self._folder() / f".{self.path.name}.{os.getpid()}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(asdict(state), handle)
        os.replace(temporary, self.path)


def default_session_file(env: dict[str, str] | os._Environ[str]) -> Path:
    """``LEGACY_API_SESSION_FILE``, else under ``DAGSTER_HOME`` (where only the sync's user reads), else home."""
    configured = (env.get("LEGACY_API_SESSION_FILE") or "").strip()
    if configured:
        return Path(configured).expanduser()
    home = (env.get("DAGSTER_HOME") or "").strip()
    base = Path(home) if home else Path.home() / ".erp_pipelines"
    return base / "secrets" / "legacy_4d_session.json"
