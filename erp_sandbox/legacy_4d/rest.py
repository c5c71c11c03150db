"""The emulated 4D REST API, independent of HTTP: ``RestApp.handle(method, target, headers, body)``."""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from urllib.parse import unquote

from .clock import Clock
from .config import EmulatorConfig
from .entitysets import EntitySet, EntitySetRegistry
from .errors import RestError, attribute_not_found, dataclass_not_found, entity_not_found, malformed
from .faults import FaultInjector, RawValues
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
from .sessions import Session, SessionManager
from .stats import Stats
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
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    abort: bool = False  # close the socket without answering (fault injection)


def _json(value: object, status: int = 200) -> Response:
    return Response(status, json.dumps(value, ensure_ascii=False).encode())


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
