"""A faithful 4D REST server emulator (default and force-login modes, data change tracking) over PostgreSQL.

Faithful by default to 4D v18-v21 as documented, including the inconvenient parts: every session (and the
4D Client license it holds) lives until its inactivity timeout, whatever ``$directory/logout`` does; in the
default login mode any request without a valid session cookie opens a session holding a license (a refused
login and a 401 answer included); force-login mode hands out license-free guest sessions limited to
descriptive requests until ``authentify()`` grants privileges. Each behaviour cites the documentation.

Run ``python -m erp_sandbox.legacy_4d.server --help``. Tests use :func:`start_in_thread`.
Non-4D control endpoints live under ``/_emulator/`` (fault injection, stats, request log, config, a
simulated clock, server restart, data-file backup/restore and ``setGlobalStamp``).
``--tls-cert``/``--tls-key`` serve HTTPS. Secrets (store URL, password) are best given as environment
variables: command-line arguments are visible to every user in the process list.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import logging
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import unicodedata
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from .errors import RestError, attribute_not_found, dataclass_not_found, entity_not_found, malformed
from .query import (
    AttributeSpec,
    SqlParams,
    compile_filter,
    compile_orderby,
    parse_attributes,
    parse_int,
    parse_params,
    parse_query_string,
    strip_quotes,
)
from .schema import DATACLASSES, DataClass, catalog_dataclass, coerce_value, qi
from .store import LegacyStore, Page

log = logging.getLogger("erp_sandbox.legacy_4d")

DEFAULT_TOP = 100
_RESOURCE = re.compile(
    r"^(?P<cls>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\((?P<k1>[^)]*)\)|\[(?P<k2>[^\]]*)\]|:(?P<attr>[A-Za-z_][A-Za-z0-9_]*)\((?P<val>[^)]*)\))?"
    r"(?:/(?P<tail>.*))?$"
)
_ENTITYSET_TAIL = re.compile(r"^\$entityset/(?P<id>[^/]+)/?$")


@dataclass
class EmulatorConfig:
    """How the emulated server is set up; the defaults are 4D's documented defaults."""

    host: str = "127.0.0.1"
    port: int = 8080
    licenses: int = 3
    app_name: str = "ERP"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # DOC https://developer.4d.com/docs/WebServer/sessions "Session lifetime": inactive sessions close after
    # 60 minutes by default (and the timeout "cannot be less than 60 minutes"); tests shorten it or move the clock.
    session_timeout: float = 3600.0
    entity_set_timeout: float = 7200.0
    log_requests: bool = False
    # DOC https://developer.4d.com/docs/20-R5/REST/authUsers "User login modes": "forceLogin" in roles.json.
    force_login: bool = False
    # Pre-v18 servers documented $directory/logout (docs/REST/$directory_logout.md) and closed the session;
    # v18-v21 document only login, and sessions close at their timeout or when the server stops.
    logout_releases: bool = False
    # DOC docs/REST/$attributes.md documents $attributes for related attributes; storage attributes are picked
    # with the path form /rest/Class/a,b (manData.md "Selecting Attributes to get"). False refuses the other form.
    plain_attributes_param: bool = True
    # An administrator may give the session cookie a domain (WEB SET OPTION / web settings); one that does not
    # match the name the client uses makes the client drop it, and every request opens another session.
    cookie_domain: str | None = None
    # Dataclasses with "Expose as REST resource" unchecked (DOC https://developer.4d.com/docs/REST/configuration):
    # absent from $catalog, 404 to every request.
    unexposed: tuple[str, ...] = ()

    @property
    def auth_required(self) -> bool:
        return bool(self.username)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    abort: bool = False  # close the socket without answering (fault injection)


def _json(value: object, status: int = 200) -> Response:
    return Response(status, json.dumps(value, ensure_ascii=False).encode())


# --- sessions, entity sets, faults, stats --------------------------------------------------------


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


# --- the REST application ---------------------------------------------------------------------


def _parse_cookies(header: str | None) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            cookies[name] = value
    return cookies


def _without_case_or_accents(value: object) -> object:
    """Text folded the way 4D compares it by default: accents removed (canonical decomposition), case folded."""
    if not isinstance(value, str):
        return value
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _envelope(dc: DataClass, page: Page, first: int, entity_set: str | None = None) -> bytes:
    """Collection envelope with 4D's key order: ``__ENTITYSET``, ``__DATACLASS`` … ``__SENT`` last."""
    name = json.dumps(dc.name)
    head = f'{{"__ENTITYSET":"/rest/{dc.name}/$entityset/{entity_set}",' if entity_set else "{"
    return (
        f'{head}"__DATACLASS":{name},"__entityModel":{name},"__GlobalStamp":{page.global_stamp},'
        f'"__COUNT":{page.count},"__FIRST":{first},"__ENTITIES":[{page.body}],"__SENT":{page.sent}}}'
    ).encode()


class RestApp:
    """HTTP-independent request handling: ``handle(method, target, headers, body) -> Response``."""

    def __init__(self, config: EmulatorConfig, store: LegacyStore) -> None:
        self.config = config
        self.store = store
        self.clock = Clock()
        self.sessions = SessionManager(config.licenses, config.session_timeout, self.clock)
        self.entity_sets = EntitySetRegistry(self.clock)
        self.faults = FaultInjector()
        self.raw_values = RawValues()
        self.stats = Stats()

    # entry point
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        raw_path, _, raw_query = target.partition("?")
        path = unquote(raw_path)
        if path.startswith("/_emulator/"):
            try:
                return self._control(method, path, body)
            except RestError as err:
                return Response(err.status, err.body())
        if not path.startswith("/rest/"):
            return Response(404, RestError(404, (1806, f"Not a REST URL: {path}")).body())
        cookies = _parse_cookies(headers.get("Cookie"))
        sid = cookies.get(f"4DSID_{self.config.app_name}") or cookies.get("WASID4D")
        response = self._faulted(target, sid) or self._rest(method, raw_path, path, raw_query, headers, body, sid)
        self.stats.request(method, target, response.status, len(body))
        return response

    def _faulted(self, target: str, sid: str | None) -> Response | None:
        fault = self.faults.take(target, unquote(target))
        if fault is None:
            return None
        log.info("injecting fault %s on %s", fault.kind, target)
        if fault.kind == "delay":
            time.sleep(fault.seconds)
        elif fault.kind == "drop_session":
            self.sessions.drop(sid)
        elif fault.kind == "http_500":
            # A transient failure in front of 4D's REST layer (web server, proxy) carries no dbmg error stack;
            # 4D's own processing errors do (errors.py), and those are deterministic.
            return Response(500, b"<html><body>500 Internal Server Error (injected)</body></html>",
                            [("Content-Type", "text/html")])
        elif fault.kind == "exhaust_licenses":
            return Response(402, RestError(402, (1823, "Maximum number of sessions has been reached")).body())
        elif fault.kind == "close_connection":
            return Response(abort=True)
        return None

    def _rest(
        self, method: str, raw_path: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes,
        sid: str | None,
    ) -> Response:
        opened: Session | None = None
        try:
            if "&" in raw_path:
                raise RestError(400, (1807, "'&' found where '?' was expected"))
            query = parse_query_string(raw_query)
            resource = path[len("/rest/"):]
            session = self.sessions.get(sid)
            if resource == "$directory/logout":
                return self._logout(session)
            if session is None:
                # Default mode, DOC https://developer.4d.com/docs/20-R5/REST/authUsers: "any REST request is
                # processed in a web user session that automatically consumes a license (the web user session is
                # created if it does not already exist)" — so a request without a valid cookie, a refused login
                # and a request answered 401 all open one. Force login: "At the first REST call … a 'guest' web
                # user session is created … no license consumption."
                session = opened = self.sessions.open(licensed=not self.config.force_login)
            if resource == "$directory/login":
                response = self._login(method, headers, session)
            elif self.config.force_login:
                response = self._force_login_route(method, resource, query, body, session)
            else:
                if self.config.auth_required and not session.privileged:
                    raise RestError(401, (1822, "No valid session: log in first with POST /rest/$directory/login"))
                response = self._route(method, resource, query, body)
        except RestError as err:
            response = Response(err.status, err.body(), list(err.headers.items()))
        if opened:
            response.headers += self._cookies(opened.id)
        return response

    def _cookies(self, sid: str, max_age: int | None = None) -> list[tuple[str, str]]:
        """DOC docs/REST/authUsers.md (v18): ``WASID4D``; DOC https://developer.4d.com/docs/WebServer/sessions:
        scalable sessions use the private cookie ``4DSID_<AppName>``. Real servers send both."""
        attrs = "; Path=/; HttpOnly; SameSite=Strict" + (f"; Max-Age={max_age}" if max_age is not None else "")
        if self.config.cookie_domain:
            attrs += f"; Domain={self.config.cookie_domain}"
        return [("Set-Cookie", f"WASID4D={sid}{attrs}"), ("Set-Cookie", f"4DSID_{self.config.app_name}={sid}{attrs}")]

    # sessions
    def _login(self, method: str, headers: Mapping[str, str], session: Session) -> Response:
        """``POST $directory/login`` with ``username-4D``/``password-4D`` headers
        (DOC https://developer.4d.com/docs/REST/$directory). A refused login keeps the session it opened, and
        with it a license, until the inactivity timeout."""
        if method != "POST":
            raise RestError(400, (1829, "$directory/login must be called with POST"))
        user = headers.get("username-4D")
        password = headers.get("password-4D")
        if user is None and password is None:
            return _json({"result": False})
        if self.config.force_login:
            # In force-login mode only Session.setPrivileges(), called by the application's authentify(), grants
            # privileges (DOC 20-R5 authUsers "Force login mode"); the directory login leaves a guest session.
            return _json({"result": True})
        if self.config.auth_required:
            ok = hmac.compare_digest((user or "").encode(), (self.config.username or "").encode()) and \
                hmac.compare_digest((password or "").encode(), (self.config.password or "").encode())
            if not ok:
                session.privileged = False
                raise RestError(401, (1822, "REST login failed"), headers={"4D-CREDENTIALS": "1.0"})
        length = headers.get("session-4D-length")
        if length:
            try:
                # DOC $directory.md: session-4D-length in minutes, "not below 60".
                session.timeout = max(float(length) * 60, 3600.0)
            except ValueError as exc:
                raise malformed("session-4D-length must be a number of minutes") from exc
        session.privileged, session.user = True, user
        return _json({"result": True})

    def _logout(self, session: Session | None) -> Response:
        """v18-v21 document no logout (DOC https://developer.4d.com/docs/REST/$directory lists only login;
        WebServer/sessions: a session closes at its timeout or when the web server stops): the request fails and
        the session keeps its license. ``logout_releases`` emulates the older servers that closed it."""
        if not self.config.logout_releases:
            return Response(404, RestError(404, (1800, 'The dataclass "$directory" cannot be found')).body())
        dropped = self.sessions.drop(session.id) if session else False
        response = _json({"result": dropped})
        if dropped and session:
            response.headers += self._cookies(session.id, max_age=0)
        return response

    def _force_login_route(
        self, method: str, resource: str, query: dict[str, str], body: bytes, session: Session,
    ) -> Response:
        """DOC https://developer.4d.com/docs/20-R5/REST/authUsers "Descriptive REST requests": /rest/$catalog…,
        /rest/$catalog/authentify and /rest/$getWebForm run in guest sessions; "All other REST requests … will
        only be processed if they are executed within a web session with appropriate privileges, otherwise they
        return an error" (which error is not documented: 401 is the documented "permissions error" status)."""
        if resource == "$catalog/authentify":
            return self._authentify(method, body, session)
        if resource == "$getWebForm" or resource.rstrip("/") == "$catalog" or resource.startswith("$catalog/"):
            return self._route(method, resource, query, body)
        if not session.privileged:
            raise RestError(401, (1561, "No permission: this session has no privileges; call "
                                        "POST /rest/$catalog/authentify first (force login mode)"))
        return self._route(method, resource, query, body)

    def _authentify(self, method: str, body: bytes, session: Session) -> Response:
        """The application's ``exposed Function authentify($credentials : Object) : Text`` as in the example of
        DOC 20-R5 authUsers: body ``[{"name": …, "password": …}]``; a known user with the right password gets
        ``Session.setPrivileges()`` (which consumes the license, 402 if none is free), otherwise the function
        returns "Wrong user" / "Wrong password" and the session stays a guest."""
        if method != "POST":
            raise RestError(400, (1829, "$catalog/authentify must be called with POST (method_called_on_a_HTTP_GET)"))
        try:
            args = json.loads(body or b"[]")
        except json.JSONDecodeError as exc:
            raise malformed(f"request body is not JSON: {exc.msg}") from exc
        if not isinstance(args, list):
            raise malformed("function parameters must be passed as a JSON array in the body")
        credentials = args[0] if args and isinstance(args[0], dict) else {}
        name, password = str(credentials.get("name") or ""), str(credentials.get("password") or "")
        if not self.config.username or not hmac.compare_digest(name.encode(), self.config.username.encode()):
            return _json({"result": "Wrong user"})
        if not hmac.compare_digest(password.encode(), (self.config.password or "").encode()):
            return _json({"result": "Wrong password"})
        self.sessions.take_license(session)
        session.privileged, session.user = True, name
        return _json({"result": ""})

    # routing
    def _exposed(self, name: str) -> DataClass | None:
        return None if name in self.config.unexposed else DATACLASSES.get(name)

    def _route(self, method: str, resource: str, query: dict[str, str], body: bytes) -> Response:
        exposed = [dc for dc in DATACLASSES.values() if dc.name not in self.config.unexposed]
        if resource.rstrip("/") == "$catalog":
            return _json({"__UNIQID": self.store.uniqid(), "dataClasses": [
                {"name": dc.name, "uri": f"/rest/$catalog/{dc.name}", "dataURI": f"/rest/{dc.name}"} for dc in exposed
            ]})
        if resource == "$catalog/$all":
            return _json({"__UNIQID": self.store.uniqid(), "dataClasses": [catalog_dataclass(dc) for dc in exposed]})
        if resource.startswith("$catalog/"):
            dc = self._exposed(resource[len("$catalog/"):])
            if dc is None:
                raise dataclass_not_found(resource[len("$catalog/"):])
            return _json(catalog_dataclass(dc))
        if resource == "$info":
            sets = self.entity_sets.info()
            return _json({"cacheSize": 0, "usedCache": 0, "entitySetCount": len(sets), "entitySet": sets,
                          "ProgressInfo": [], "sessionInfo": self.sessions.info()})
        match = _RESOURCE.match(resource)
        if not match:
            raise malformed(f"cannot understand resource {resource!r}")
        dc = self._exposed(match["cls"])
        if dc is None:
            raise dataclass_not_found(match["cls"])
        tail = (match["tail"] or "").strip("/")
        rest_method = query.get("$method")
        if rest_method in ("update", "delete", "validate") and method != "POST":
            raise RestError(400, (1829, f"$method={rest_method} cannot be called with HTTP {method}"))
        set_match = _ENTITYSET_TAIL.match(tail)
        if set_match:
            return self._entity_set(dc, set_match["id"], query)
        if not tail and not self.config.plain_attributes_param:
            self._refuse_plain_attributes(dc, query.get("$attributes"))
        spec = parse_attributes(dc, tail or query.get("$attributes"))
        key = match["k1"] if match["k1"] is not None else match["k2"]
        if key is not None or match["attr"]:
            return self._single(dc, key, match["attr"], match["val"], spec, rest_method)
        if rest_method == "update":
            return self._update(dc, body)
        if rest_method == "delete":
            return self._delete_selection(dc, query, body)
        if rest_method not in (None, "entityset"):
            raise RestError(400, (1812, f"Unknown REST method {rest_method!r}"))
        sql = SqlParams()
        where = self._where(dc, query, sql)
        if "$compute" in query:
            return self._compute(dc, query["$compute"], spec, where, sql)
        if query.get("$distinct", "").lower() == "true":
            return self._distinct(dc, spec, where, sql, query)
        order = compile_orderby(dc, query.get("$orderby"))
        top = parse_int(query, "$top", "$limit", default=DEFAULT_TOP) or 0
        skip = parse_int(query, "$skip", default=0) or 0
        if rest_method == "entityset":
            keys = self.store.keys(dc, where, sql, order)
            timeout = parse_int(query, "$timeout", default=None)
            entity_set = self.entity_sets.put(EntitySet(
                uuid.uuid4().hex.upper(), dc.name, keys,
                float(timeout) if timeout is not None else self.config.entity_set_timeout,
            ))
            return self._set_page(dc, entity_set, spec, query)
        page = self.store.page(dc, spec, where, sql, order, top, skip)
        page.body = self.raw_values.apply(dc, page.body)
        if query.get("$asArray", "").lower() == "true":
            return Response(200, f"[{page.body}]".encode())
        return Response(200, _envelope(dc, page, skip))

    @staticmethod
    def _refuse_plain_attributes(dc: DataClass, text: str | None) -> None:
        """The strict reading of DOC docs/REST/$attributes.md: ``$attributes`` names related attributes
        (``rel``, ``rel.*``, ``rel.x``); storage attributes go in the path (``/rest/Class/a,b``)."""
        for name in (text or "").split(","):
            attr = dc.attribute(name.strip().partition(".")[0])
            if name.strip() and (attr is None or not attr.is_relation):
                raise RestError(404, (1804, f'Cannot completely build a list of attributes with "{name.strip()}": '
                                            "$attributes takes related attributes; give storage attributes in "
                                            "the path (/rest/Class/attr1,attr2)"))

    def _where(self, dc: DataClass, query: dict[str, str], sql: SqlParams, name: str = "$filter") -> str:
        text = query.get(name)
        if text is None:
            return "TRUE"
        self.stats.filter({
            "dataclass": dc.name, "filter": text, "params": query.get("$params"),
            "orderby": query.get("$orderby"), "top": query.get("$top", query.get("$limit")),
            "skip": query.get("$skip"),
        })
        return compile_filter(dc, text, parse_params(query.get("$params")), sql)

    def _single(
        self, dc: DataClass, key: str | None, attr_name: str | None, value: str | None, spec: AttributeSpec | None,
        rest_method: str | None,
    ) -> Response:
        sql = SqlParams()
        shown = strip_quotes(key if key is not None else value or "")
        attr = dc.key_attribute if key is not None else dc.attribute(attr_name or "")
        if attr is None or attr.is_relation:
            raise attribute_not_found(dc.name, attr_name or "")
        try:
            typed = coerce_value(attr, shown)
        except ValueError as exc:
            raise entity_not_found(dc.name, shown) from exc
        column = f"t.{qi(attr.name)}"
        if attr.type == "string":
            where = f"lower({column}) = lower({sql.add(typed)})"
        else:
            where = f"{column} = {sql.add(typed)}"
        if rest_method == "delete":
            if not self.store.delete_where(dc, where, sql):
                raise entity_not_found(dc.name, shown)
            return _json({"ok": True})
        if rest_method is not None:
            raise RestError(400, (1813, f"$method={rest_method} cannot be applied to a single entity URL"))
        text = self.store.one(dc, spec, where, sql)
        if text is None:
            raise entity_not_found(dc.name, shown)
        text = self.raw_values.apply(dc, text)
        name = json.dumps(dc.name)
        return Response(200, f'{{"__DATACLASS":{name},"__entityModel":{name},{text[1:]}'.encode())

    def _entity_set(self, dc: DataClass, set_id: str, query: dict[str, str]) -> Response:
        entity_set = self.entity_sets.get(set_id)
        rest_method = query.get("$method")
        if entity_set is None and "$savedfilter" in query and rest_method != "release":
            sql = SqlParams()
            where = self._where(dc, query, sql, "$savedfilter")
            keys = self.store.keys(dc, where, sql, compile_orderby(dc, query.get("$savedorderby")))
            entity_set = self.entity_sets.put(EntitySet(set_id, dc.name, keys, 600.0))
        if entity_set is None:
            raise RestError(404, (1802, f'The entity set "{set_id}" cannot be found'))
        if entity_set.dataclass != dc.name:
            raise RestError(404, (1803, f'The entity set "{set_id}" does not belong to dataclass "{dc.name}"'))
        if rest_method == "release":
            self.entity_sets.release(set_id)
            return _json({"ok": True})
        if rest_method == "delete":
            sql = SqlParams()
            self.store.delete_where(dc, f"t.{qi(dc.key)} = ANY({sql.add(entity_set.keys)})", sql)
            return _json({"ok": True})
        if rest_method == "entityset" and query.get("$clean", "").lower() == "true":
            sql = SqlParams()
            alive = set(self.store.keys(dc, f"t.{qi(dc.key)} = ANY({sql.add(entity_set.keys)})", sql,
                                        f"t.{qi(dc.key)}"))
            entity_set = self.entity_sets.put(EntitySet(
                uuid.uuid4().hex.upper(), dc.name, [k for k in entity_set.keys if k in alive], entity_set.timeout,
            ))
        elif rest_method not in (None, "entityset"):
            raise RestError(400, (1812, f"Unknown REST method {rest_method!r}"))
        spec = parse_attributes(dc, query.get("$attributes"))
        return self._set_page(dc, entity_set, spec, query)

    def _set_page(
        self, dc: DataClass, entity_set: EntitySet, spec: AttributeSpec | None, query: dict[str, str],
    ) -> Response:
        top = parse_int(query, "$top", "$limit", default=DEFAULT_TOP) or 0
        skip = parse_int(query, "$skip", default=0) or 0
        page = self.store.page_by_keys(dc, spec, entity_set.keys[skip:skip + top])
        page.body = self.raw_values.apply(dc, page.body)
        page.count = len(entity_set.keys)
        return Response(200, _envelope(dc, page, skip, entity_set.id))

    def _compute(
        self, dc: DataClass, operation: str, spec: AttributeSpec | None, where: str, sql: SqlParams,
    ) -> Response:
        if operation not in ("count", "sum", "average", "min", "max", "$all"):
            raise RestError(400, (1817, f"Invalid $compute action {operation!r}"))
        names = [n for n in (spec or {}) if not dc.by_name[n].is_relation]
        if not names:
            if operation != "count":
                raise RestError(400, (1817, "$compute needs an attribute, e.g. /rest/Class/attr?$compute=sum"))
            names = [dc.key]
        result = self.store.compute(dc, names, where, sql)
        if operation == "$all":
            return _json(result)
        values = result[names[0]]
        if operation not in values:
            raise RestError(400, (1817, f"$compute={operation} is not applicable to attribute {names[0]}"))
        return _json(values[operation])

    def _distinct(
        self, dc: DataClass, spec: AttributeSpec | None, where: str, sql: SqlParams, query: dict[str, str],
    ) -> Response:
        """DOC docs/REST/$distinct.md: "You can also use $skip and $top/$limit as well, if you'd like to navigate
        the selection before it's placed in an array" — they page the *entities*, not the values. Values are
        compared as ORDA's ``.distinct()`` does by default, without regard to case or accents
        (DOC https://developer.4d.com/docs/API/EntitySelectionClass#distinct: dk diacritical is opt-in); the first
        spelling met in the selection stands for the others."""
        names = [n for n in (spec or {}) if not dc.by_name[n].is_relation]
        if len(names) != 1:
            raise RestError(400, (1804, "$distinct needs exactly one attribute, e.g. /rest/Class/attr"))
        order = compile_orderby(dc, query.get("$orderby"))
        top = parse_int(query, "$top", "$limit", default=None)
        skip = parse_int(query, "$skip", default=0) or 0
        values = self.store.attribute_values(dc, names[0], where, sql, order, top, skip)
        first: dict[object, object] = {}
        for value in values:
            first.setdefault(_without_case_or_accents(value), value)
        return _json([first[key] for key in sorted(first, key=lambda k: (str(type(k)), k))])

    # writes
    def _update(self, dc: DataClass, body: bytes) -> Response:
        try:
            payload = json.loads(body or b"null")
        except json.JSONDecodeError as exc:
            raise malformed(f"request body is not JSON: {exc.msg}") from exc
        single = isinstance(payload, dict) and "__ENTITIES" not in payload
        entities = [payload] if single else payload.get("__ENTITIES") if isinstance(payload, dict) else payload
        if not isinstance(entities, list):
            raise malformed("$method=update expects an entity object or an array of entities")
        results = self.store.save(dc.name, entities)
        saved_keys = [r.key for r in results if not r.errors]
        saved = {}
        if saved_keys:
            page = self.store.page_by_keys(dc, None, saved_keys)
            saved = {str(e["__KEY"]): e for e in json.loads(f"[{page.body}]")}
        out = []
        for result in results:
            if result.errors:
                entry = {k: v for k, v in result.entity.items() if k in ("__KEY", "__STAMP")}
                entry["__ERROR"] = [{"message": m, "componentSignature": "dbmg", "errCode": c}
                                    for c, m in result.errors]
                out.append(entry)
            else:
                out.append(saved[str(result.key)])
        if single:
            return _json({"__DATACLASS": dc.name, "__entityModel": dc.name, **out[0]})
        return _json({"__DATACLASS": dc.name, "__entityModel": dc.name, "__ENTITIES": out})

    def _delete_selection(self, dc: DataClass, query: dict[str, str], body: bytes) -> Response:
        """Delete by ``$filter``, by a JSON body of keys (emulator extension), or the whole dataclass (as 4D)."""
        sql = SqlParams()
        where = self._where(dc, query, sql)
        if body.strip():
            try:
                payload = json.loads(body)
            except json.JSONDecodeError as exc:
                raise malformed(f"request body is not JSON: {exc.msg}") from exc
            items = payload if isinstance(payload, list) else [payload]
            try:
                keys = [coerce_value(dc.key_attribute, k.get("__KEY") if isinstance(k, dict) else k) for k in items]
            except ValueError as exc:
                raise malformed(str(exc)) from exc
            where = f"{where} AND t.{qi(dc.key)} = ANY({sql.add(keys)})"
        deleted = self.store.delete_where(dc, where, sql)
        return _json({"ok": True, "deleted": len(deleted)})

    def _restart(self) -> int:
        """A server restart: every session (and its license) and every entity set is gone
        (DOC WebServer/sessions: a session is closed when "the web server is stopped")."""
        self.entity_sets.clear()
        return self.sessions.drop_all()

    def _data_file(self, action: str) -> dict:
        """``backup`` keeps a copy of the data file; ``restore`` puts it back and restarts the server, as restoring
        a 4D data file does: records and the global stamp go back to the backup's, lower than clients last saw."""
        if action == "backup":
            self.store.backup()
            return {"global_stamp": self.store.global_stamp()}
        if action == "restore":
            stamp = self.store.restore()
            return {"global_stamp": stamp, "dropped": self._restart()}
        raise malformed(f"data_file action must be backup or restore, not {action!r}")

    # emulator control (not 4D)
    def _control(self, method: str, path: str, body: bytes) -> Response:
        try:
            payload = json.loads(body) if body.strip() else {}
        except json.JSONDecodeError as exc:
            raise malformed(f"request body is not JSON: {exc.msg}") from exc
        if path == "/_emulator/faults" and method == "POST":
            return _json({"ok": True, "fault": asdict(self.faults.add(payload))}, 201)
        if path == "/_emulator/faults" and method == "DELETE":
            self.faults.clear()
            return _json({"ok": True})
        if path == "/_emulator/raw_values" and method == "POST":
            self.raw_values.put(payload)
            return _json({"ok": True}, 201)
        if path == "/_emulator/raw_values" and method == "DELETE":
            self.raw_values.clear()
            return _json({"ok": True})
        if path == "/_emulator/stats" and method == "GET":
            return _json({
                **self.stats.snapshot(),
                "sessions_open": self.sessions.open_count(),
                "licenses_in_use": self.sessions.licenses_in_use(),
                "sessions_opened": self.sessions.opened,
                "max_concurrent_sessions": self.sessions.max_concurrent,
                "licenses": self.sessions.licenses,
                "entity_sets": len(self.entity_sets.info()),
                "faults_pending": self.faults.pending(),
                "global_stamp": self.store.global_stamp(),
            })
        if path == "/_emulator/requests" and method == "GET":
            return _json({"requests": self.stats.requests()})
        if path == "/_emulator/stats" and method == "DELETE":
            self.stats.reset()
            self.sessions.reset_max()
            return _json({"ok": True})
        if path == "/_emulator/sessions" and method == "DELETE":
            return _json({"ok": True, "dropped": self.sessions.drop_all()})
        if path == "/_emulator/restart" and method == "POST":
            return _json({"ok": True, "dropped": self._restart()})
        if path == "/_emulator/clock" and method == "POST":
            self.clock.advance(float(payload.get("advance", 0)))
            return _json({"ok": True, "licenses_in_use": self.sessions.licenses_in_use()})
        if path == "/_emulator/data_file" and method == "POST":
            return _json({"ok": True, **self._data_file(str(payload.get("action")))})
        if path == "/_emulator/global_stamp" and method == "POST":
            self.store.set_global_stamp(int(payload["value"]))
            return _json({"ok": True, "global_stamp": self.store.global_stamp()})
        if path == "/_emulator/config" and method == "POST":
            if "licenses" in payload:
                self.sessions.licenses = self.config.licenses = int(payload["licenses"])
            if "session_timeout" in payload:
                self.sessions.timeout = self.config.session_timeout = float(payload["session_timeout"])
            if "entity_set_timeout" in payload:
                self.config.entity_set_timeout = float(payload["entity_set_timeout"])
            for flag in ("force_login", "logout_releases", "plain_attributes_param"):
                if flag in payload:
                    setattr(self.config, flag, bool(payload[flag]))
            return _json({"ok": True, "licenses": self.config.licenses,
                          "session_timeout": self.config.session_timeout,
                          "entity_set_timeout": self.config.entity_set_timeout,
                          "force_login": self.config.force_login, "logout_releases": self.config.logout_releases,
                          "plain_attributes_param": self.config.plain_attributes_param})
        if path == "/_emulator/health":
            return _json({"ok": True})
        return Response(404, malformed(f"unknown emulator endpoint {method} {path}").body())


# --- HTTP plumbing --------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: RestApp, tls: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.tls = tls
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, object]:
        """With TLS, the handshake is left to the connection's own thread, so a slow client blocks nobody."""
        connection, address = super().get_request()
        if self.tls is not None:
            connection = self.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            log.info("TLS handshake with %s failed: %s", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "4D/20 legacy-4d-emulator"
    server: _HTTPServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            response = self.server.app.handle(self.command, self.path, self.headers, body)
        except Exception as exc:
            log.exception("unhandled error on %s %s", self.command, self.path)
            response = Response(500, RestError(500, (1, f"Internal emulator error: {exc}")).body())
        if response.abort:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: object) -> None:
        if self.server.app.config.log_requests:
            log.info("%s - %s", self.address_string(), format % args)


class EmulatorServer:
    """The emulator as an object: ``EmulatorServer(url, port=0).start()`` in tests, ``serve_forever`` in a CLI."""

    def __init__(
        self,
        store_url: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        licenses: int = 3,
        app_name: str = "ERP",
        username: str | None = None,
        password: str | None = None,
        session_timeout: float = 3600.0,
        entity_set_timeout: float = 7200.0,
        max_db_connections: int = 8,
        log_requests: bool = False,
        ensure_schema: bool = True,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        force_login: bool = False,
        logout_releases: bool = False,
        plain_attributes_param: bool = True,
        cookie_domain: str | None = None,
        unexposed: tuple[str, ...] = (),
    ) -> None:
        self.config = EmulatorConfig(host, port, licenses, app_name, username, password, session_timeout,
                                     entity_set_timeout, log_requests, force_login, logout_releases,
                                     plain_attributes_param, cookie_domain, tuple(unexposed))
        tls = None
        if tls_cert:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(tls_cert, tls_key)
        self.store = LegacyStore(store_url, max_db_connections)
        if ensure_schema:
            self.store.ensure_schema()
        self.app = RestApp(self.config, self.store)
        self.httpd = _HTTPServer((host, port), self.app, tls)
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def scheme(self) -> str:
        return "http" if self.httpd.tls is None else "https"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="legacy-4d-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the store; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
        self.httpd.server_close()
        self.store.close()

    def __enter__(self) -> EmulatorServer:
        return self if self._thread else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(store_url: str, **kwargs: object) -> EmulatorServer:
    """Start an emulator on a background thread (``port=0`` picks a free port); call ``stop()`` after."""
    return EmulatorServer(store_url, **kwargs).start()  # type: ignore[arg-type]


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="4D REST server emulator backed by PostgreSQL")
    parser.add_argument("--host", default=_env("LEGACY_API_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(_env("LEGACY_API_PORT", "8080") or 8080))
    parser.add_argument("--store-url", default=_env("LEGACY4D_STORE_URL"),
                        help="psycopg2 DSN or URL (holds a password: prefer LEGACY4D_STORE_URL)")
    parser.add_argument("--licenses", type=int, default=int(_env("LEGACY4D_LICENSES", "3") or 3))
    parser.add_argument("--app-name", default=_env("LEGACY4D_APP_NAME", "ERP"))
    parser.add_argument("--username", default=_env("LEGACY_API_USERNAME"))
    parser.add_argument("--password", default=_env("LEGACY_API_PASSWORD"), help="prefer LEGACY_API_PASSWORD")
    parser.add_argument("--session-timeout", type=float,
                        default=float(_env("LEGACY4D_SESSION_TIMEOUT", "3600") or 3600),
                        help="session inactivity timeout in seconds (4D default: 60 minutes)")
    parser.add_argument("--entity-set-timeout", type=float, default=7200.0, help="default $timeout in seconds")
    parser.add_argument("--db-connections", type=int, default=8)
    parser.add_argument("--ready-file", type=Path, help="written with the base URL once the server accepts requests")
    parser.add_argument("--log-requests", action="store_true")
    parser.add_argument("--tls-cert", default=_env("LEGACY4D_TLS_CERT"), help="PEM certificate: serve HTTPS")
    parser.add_argument("--tls-key", default=_env("LEGACY4D_TLS_KEY"), help="its PEM private key")
    parser.add_argument("--force-login", action="store_true", default=_env("LEGACY4D_FORCE_LOGIN") == "true",
                        help="force login mode (4D 20 R6+ default): guest sessions until $catalog/authentify")
    parser.add_argument("--logout-releases", action="store_true",
                        help="pre-v18 behaviour: $directory/logout closes the session and frees its license")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.store_url:
        parser.error("--store-url (or LEGACY4D_STORE_URL) is required")
    if bool(args.username) != bool(args.password):
        parser.error("give both --username and --password, or neither (open access)")
    server = EmulatorServer(
        args.store_url, host=args.host, port=args.port, licenses=args.licenses, app_name=args.app_name,
        username=args.username, password=args.password, session_timeout=args.session_timeout,
        entity_set_timeout=args.entity_set_timeout, max_db_connections=args.db_connections,
        log_requests=args.log_requests, tls_cert=args.tls_cert, tls_key=args.tls_key,
        force_login=args.force_login, logout_releases=args.logout_releases,
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.httpd.shutdown, daemon=True).start())
    if args.ready_file:
        args.ready_file.write_text(server.base_url + "\n")
    mode = "force login" if args.force_login else "login required" if args.username else "open access"
    print(f"legacy-4d emulator ready on {server.base_url} (app {args.app_name}, {args.licenses} licenses, {mode})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.store.close()
        if args.ready_file:
            args.ready_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
