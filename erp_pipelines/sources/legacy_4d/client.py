"""Plain ``requests`` client for a 4D (legacy ERP) REST server.

Why it looks the way it does (see the 4D REST reference and ``session.py``):
- one 4D session per deployment, its cookie kept in a `SessionJar` across runs and processes: every 4D REST
  session holds a client license until its inactivity timeout, so a client that drops its cookies (or logs
  in anew per operation) burns licenses until the server answers 402, for the ERP's own users too;
- both login modes: ``directory`` (``$directory/login``, the default mode) and ``authentify`` (force login,
  ``POST $catalog/authentify`` with a body the application defines; see ``auth.py``);
- filters are built only from validated attribute names, whitelisted operators and ``:n`` placeholders,
  with values in ``$params`` (JSON) - never concatenated into ``$filter`` (``filters.py``);
- the query string is built by hand: ``$filter``/``$orderby``/``$params`` are quoted as 4D's URL parser
  expects and spaces are ``%20`` (``requests`` would send ``+``);
- paging is keyset (``key > :n`` ordered by key), which neither skips nor repeats rows when the table
  changes during the read, unlike ``$skip`` paging.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests

from erp_pipelines.core.source import SettingError
from erp_pipelines.sources.legacy_4d.auth import (
    AUTH_MODES,
    DEFAULT_AUTHENTIFY_BODY,
    authentify_body,
    header_safe,
    not_privileged_error,
)
from erp_pipelines.sources.legacy_4d.errors import (
    Legacy4DAuthError,
    Legacy4DError,
    Legacy4DLicenseError,
    Legacy4DNotFoundError,
)
from erp_pipelines.sources.legacy_4d.filters import Condition, check_name, check_orderby, filter_query
from erp_pipelines.sources.legacy_4d.session import SessionJar, SessionState

log = logging.getLogger(__name__)
# What a run must say about its session goes to the 4D sync log (logs/legacy_4d_sync.log) as well.
run_log = logging.getLogger("erp_pipelines.sync.legacy_4d")

# The host goes into every URL: a name or an address, never a path, query, fragment or user part.
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}|\[[0-9A-Fa-f:.]+\]")
# DOC https://developer.4d.com/docs/WebServer/sessions: the inactivity timeout is 60 minutes and never less.
SESSION_IDLE_TIMEOUT_SECONDS = 3600
_SESSION_COOKIE = re.compile(r"^(WASID4D|4DSID_.+)$")


class Legacy4DClient:
    """Calls a 4D REST server inside the deployment's one session (`SessionJar`), authenticating it on demand.

    ``connect()`` makes sure the session is authenticated (no request if it already is), each call reuses the
    session's cookie, ``close()`` only closes HTTP connections: the session lives on for the next caller.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        *,
        scheme: str = "http",
        verify: bool | str = True,
        timeout: float = 30.0,
        page_size: int = 1000,
        max_retries: int = 3,
        backoff_seconds: float = 0.5,
        auth_mode: str = "directory",
        authentify_template: str = DEFAULT_AUTHENTIFY_BODY,
        jar: SessionJar | None = None,
        retry_refused: bool = False,
    ) -> None:
        if scheme not in ("http", "https"):
            raise SettingError(f"LEGACY_API_SCHEME must be http or https, not {scheme!r}")
        if not isinstance(host, str) or not _HOST.fullmatch(host):
            raise ValueError(f"4D host (LEGACY_API_HOST) {host!r} must be a host name or an IP address")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65_536:
            raise ValueError(f"4D port (LEGACY_API_PORT) {port!r} is not a TCP port")
        if username is not None and not header_safe(username):
            raise ValueError(f"4D user (LEGACY_API_USERNAME) {username!r} cannot travel in an HTTP header: "
                             "Latin-1 text without control characters or surrounding spaces")
        if password is not None and not header_safe(password):
            raise ValueError("4D password (LEGACY_API_PASSWORD) cannot travel in an HTTP header: Latin-1 text "
                             "without control characters or surrounding spaces")
        if page_size < 1:
            raise ValueError("page_size must be positive")
        if auth_mode not in AUTH_MODES:
            raise SettingError(f"LEGACY_API_AUTH={auth_mode!r} must be one of {', '.join(AUTH_MODES)}")
        if auth_mode == "authentify":
            authentify_body(authentify_template, "", "")  # refuse a bad template before any request
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.scheme = scheme
        self.verify = verify
        self.timeout = timeout
        self.page_size = page_size
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.auth_mode = auth_mode
        self._authentify_template = authentify_template
        self.jar = jar or SessionJar()
        self.retry_refused = retry_refused
        self.base_url = f"{scheme}://{host}:{port}"
        self.session_changes: list[str] = []
        self._http = requests.Session()
        self._login_error: Legacy4DError | None = None
        self._authentify_result: object = None
        self._handed_new_session = False  # the last exchange's answer opened a new session

    def __repr__(self) -> str:
        return f"Legacy4DClient({self.base_url!r}, username={self.username!r}, auth={self.auth_mode!r})"

    # --- session ------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Make sure the deployment's session is authenticated; no request when it already is."""
        with self.jar.use(self.base_url) as state:
            self._authenticate(state)

    def disconnect(self) -> None:
        """Close HTTP connections. The 4D session is kept: logging out frees no license on v18-v21 (see
        `logout`), and the next caller reuses the session instead of taking another license."""
        self._http.close()

    close = disconnect

    def logout(self) -> None:
        """Best effort ``$directory/logout``: documented only before v18 (docs/REST/$directory_logout.md; the
        v18-v21 ``$directory`` page lists only login), so it may fail and never counts as freeing a license.
        What this deployment knows of the session is forgotten either way."""
        try:
            with self.jar.use(self.base_url) as state:
                self._exchange(state, "GET", self._url("$directory/logout", None))
                state.cookies, state.session_id, state.authenticated_as = [], None, None
        except (requests.RequestException, Legacy4DError) as exc:
            log.info("4D logout not possible (expected on v18+; the session frees its license at its timeout): %s",
                     type(exc).__name__)

    def __enter__(self) -> Legacy4DClient:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    # --- reads --------------------------------------------------------------------------------------

    def catalog(self) -> dict:
        return self._get("$catalog/$all", None)

    def dataclass(self, name: str) -> dict:
        """``GET /rest/$catalog/{dataClass}`` (DOC https://developer.4d.com/docs/REST/$catalog): one dataclass
        with its attributes and key; a descriptive request, allowed even to guest sessions."""
        return self._get(f"$catalog/{check_name(name, 'dataclass')}", None)

    def info(self) -> dict:
        """``GET /rest/$info`` (DOC https://developer.4d.com/docs/REST/$info): cache and ``sessionInfo``; may
        need an Admin login (Controlled Admin Access) or privileges (force login)."""
        return self._get("$info", None)

    def query_table(
        self,
        table: str,
        filters: Sequence[Condition] | Mapping[str, object] | None = None,
        fields: list[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        order_by: str | None = None,
    ) -> list[dict]:
        """Entities matching ``filters``; without ``limit`` *all* of them (never 4D's silent default of 100)."""
        start = offset or 0
        if limit is not None:
            return self._collection(table, filters, fields, top=limit, skip=start, order_by=order_by)["__ENTITIES"]
        records: list[dict] = []
        while True:
            envelope = self._collection(table, filters, fields, top=self.page_size, skip=start + len(records),
                                        order_by=order_by)
            records.extend(envelope["__ENTITIES"])
            if not envelope["__ENTITIES"] or start + len(records) >= envelope["__COUNT"]:
                return records

    def get_record(self, table: str, record_id: object, fields: list[str] | None = None) -> dict:
        """One entity by primary key (``Table(key)``); raises Legacy4DNotFoundError when absent."""
        check_name(table, "dataclass")
        key = str(record_id) if isinstance(record_id, int) else json.dumps(str(record_id))
        path = f"{table}({quote(key, safe='')})"
        if fields:
            path += "/" + ",".join(check_name(f, "attribute") for f in fields)
        entity = self._get(path, None)
        entity.pop("__DATACLASS", None)
        entity.pop("__entityModel", None)
        return entity

    def iter_pages(
        self,
        table: str,
        *,
        key: str,
        fields: list[str] | None = None,
        filters: list[Condition] | None = None,
        page_size: int | None = None,
    ) -> Iterator[list[dict]]:
        """Keyset pages ordered by ``key``: ``<filters> AND key > :n``, ``$top`` page_size.

        Rows inserted, updated or deleted during the read neither shift nor repeat pages. Each page is
        checked against ``__COUNT``/``__SENT`` so a short page is an error, not a silent truncation.
        """
        check_name(key, "attribute")
        size = page_size or self.page_size
        wanted = None if fields is None else ([key, *[f for f in fields if f != key]])
        last: object = None
        while True:
            conditions = list(filters or [])
            if last is not None:
                conditions.append((key, ">", last))
            envelope = self._page(table, conditions, wanted, size, key)
            entities = envelope["__ENTITIES"]
            if not entities:
                return
            yield entities
            if envelope["__COUNT"] <= size:
                return
            last = entities[-1][key]

    def count(self, table: str, filters: list[Condition] | None = None) -> int:
        return int(self._collection(table, filters, None, top=1, skip=0, order_by=None)["__COUNT"])

    def global_stamp(self, table: str, key: str) -> int:
        """The datastore's global stamp: the top-level ``__GlobalStamp`` of a one-entity page of ``table``.

        4D shows it on every collection (DOC https://developer.4d.com/docs/REST/dataClass example
        ``"__GlobalStamp": 51``; 0 where nothing is tracked) and has no REST call for ``ds.getGlobalStamp()``.
        Read from the dataclass being synced, so a server that does not expose ``__DeletedRecords`` can still
        run full syncs. 0 means data change tracking is not enabled.
        """
        envelope = self._collection(table, None, [key], top=1, skip=0, order_by=None)
        stamp = envelope.get("__GlobalStamp")
        if isinstance(stamp, bool) or not isinstance(stamp, int) or stamp <= 0:
            raise Legacy4DError(
                f"4D reports no global stamp for {table} (__GlobalStamp={stamp!r}): data change tracking is not "
                "enabled on that server (Structure editor: Enable data change tracking, or __GlobalStamp fields "
                "and a __DeletedRecords table, DOC https://developer.4d.com/docs/ORDA/global-stamp)"
            )
        return stamp

    def deleted_records(self, table: str, since_stamp: int) -> list[dict]:
        """Deletions of ``table`` recorded in ``__DeletedRecords`` with ``__Stamp >= since_stamp``.

        Paged on ``__Stamp`` (DOC https://developer.4d.com/docs/ORDA/global-stamp documents ``__PrimaryKey``,
        ``__Stamp``, ``__TableName`` and ``__TableNumber``; the table's own key is not documented). Each deletion
        takes its own stamp; should several ever share one, the pages overlap on it and repeats are dropped.
        """
        check_name(table, "dataclass")
        size = self.page_size
        seen: set[tuple[object, object]] = set()
        rows: list[dict] = []
        low = since_stamp
        while True:
            conditions: list[Condition] = [("__TableName", "===", table), ("__Stamp", ">=", low)]
            envelope = self._page("__DeletedRecords", conditions, ["__PrimaryKey", "__Stamp"], size, "__Stamp")
            fresh = [row for row in envelope["__ENTITIES"] if (row["__Stamp"], row["__PrimaryKey"]) not in seen]
            seen.update((row["__Stamp"], row["__PrimaryKey"]) for row in fresh)
            rows.extend(fresh)
            if envelope["__COUNT"] <= size:
                return rows
            if not fresh:
                raise Legacy4DError(f"more than {size} deletions of {table} share __Stamp {low} in 4D's "
                                    "__DeletedRecords; raise LEGACY_SYNC_BATCH_SIZE to read them")
            low = envelope["__ENTITIES"][-1]["__Stamp"]

    # --- HTTP ---------------------------------------------------------------------------------------

    def _page(self, table: str, conditions: list[Condition], fields: list[str] | None, size: int, key: str) -> dict:
        """One keyset page, refused when shorter than ``__COUNT`` says it must be."""
        envelope = self._collection(table, conditions, fields, top=size, skip=0, order_by=key)
        entities = envelope["__ENTITIES"]
        expected = min(size, envelope["__COUNT"])
        if len(entities) != expected or envelope.get("__SENT", len(entities)) != len(entities):
            raise Legacy4DError(
                f"truncated page from 4D for {table}: got {len(entities)} entities, expected {expected} "
                f"(__COUNT={envelope['__COUNT']}, __SENT={envelope.get('__SENT')})"
            )
        return envelope

    def _collection(
        self, table: str, filters: Sequence[Condition] | Mapping[str, object] | None, fields: list[str] | None,
        *, top: int, skip: int, order_by: str | None,
    ) -> dict:
        """Storage attributes are chosen with the path form ``/rest/Class/a,b/`` (DOC
        https://developer.4d.com/docs/REST/manData "Selecting Attributes to get"); ``$attributes`` is documented
        for related attributes (DOC https://developer.4d.com/docs/REST/$attributes)."""
        path = check_name(table, "dataclass")
        if fields:
            path += "/" + ",".join(check_name(f, "attribute") for f in fields) + "/"
        query = filter_query(filters)
        if order_by:
            query.append(("$orderby", f'"{check_orderby(order_by)}"'))
        query += [("$top", str(int(top))), ("$skip", str(int(skip)))]
        envelope = self._get(path, query)
        if not isinstance(envelope, dict) or "__ENTITIES" not in envelope or "__COUNT" not in envelope:
            raise Legacy4DError(f"unexpected 4D response for {table}: no __ENTITIES/__COUNT envelope")
        return envelope

    def _get(self, path: str, query: list[tuple[str, str]] | None) -> Any:
        return self._json(self._send("GET", path, query))

    def _url(self, path: str, query: list[tuple[str, str]] | None) -> str:
        url = f"{self.base_url}/rest/{path}"
        if query:
            url += "?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in query)
        return url

    def _send(
        self, method: str, path: str, query: list[tuple[str, str]] | None, *, retries: int | None = None,
    ) -> requests.Response:
        """One call in the deployment's session: retries on connection errors, timeouts and 5xx answers that are
        not 4D errors; one re-authentication on 401, inside the session that 401 belongs to; no retry on 402
        or on a 4D processing error (HTTP 500 with a ``dbmg`` errCode: the same request fails the same way)."""
        url = self._url(path, query)
        max_retries = self.max_retries if retries is None else retries
        attempt = 0
        reauthenticated = False
        while True:
            failure: requests.RequestException | None = None
            with self.jar.use(self.base_url) as state:
                fresh = self._authenticate(state)
                try:
                    response = self._exchange(state, method, url)
                except (requests.ConnectionError, requests.Timeout) as exc:
                    failure = exc
                else:
                    if response.status_code == 401 and self.username:
                        # The session lost its privileges (expired, dropped, server restarted) and this 401
                        # opened its successor, whose cookie the jar now holds: authenticate that one, once.
                        # Refused in the very session just authenticated: the login grants no privileges.
                        state.authenticated_as = None
                        if fresh and not self._handed_new_session:
                            raise self._not_privileged(method, path)
                        if not reauthenticated:
                            reauthenticated = True
                            log.info("4D answered 401 on %s /rest/%s; authenticating the session again", method, path)
                            continue
            if failure is not None:
                if attempt < max_retries:
                    self._backoff(attempt, f"{type(failure).__name__} on {method} /rest/{path}")
                    attempt += 1
                    continue
                raise Legacy4DError(
                    f"4D server {self.base_url} unreachable for {method} /rest/{path} after {attempt + 1} "
                    f"attempt(s): {type(failure).__name__}"
                ) from None
            if response.status_code >= 500 and attempt < max_retries and not self._is_4d_error(response):
                self._backoff(attempt, f"HTTP {response.status_code} on {method} /rest/{path}")
                attempt += 1
                continue
            if response.status_code >= 400:
                raise self._error(method, path, response, attempt + 1)
            return response

    def _exchange(
        self, state: SessionState, method: str, url: str, *, headers: dict | None = None, body: str | None = None,
    ) -> requests.Response:
        """One HTTP exchange with the session's cookies, and whatever cookies the answer sets kept in the jar."""
        self._http.cookies.clear()
        for cookie in state.cookies:
            self._http.cookies.set(cookie["name"], cookie["value"], domain=cookie["domain"], path=cookie["path"])
        response = self._http.request(method, url, headers=headers, data=body, timeout=self.timeout,
                                      verify=self.verify)
        state.cookies = [{"name": c.name, "value": c.value or "", "domain": c.domain, "path": c.path}
                         for c in self._http.cookies]
        self._note_session(state, response)
        state.last_used = time.time()
        return response

    def _note_session(self, state: SessionState, response: requests.Response) -> None:
        """Notice a session handed out by the server (the first one, or a replacement: the run says so), and a
        session cookie that would never be sent back (domain/path not matching LEGACY_API_HOST)."""
        current = next((c["value"] for c in state.cookies if _SESSION_COOKIE.match(c["name"])), None)
        self._handed_new_session = current is not None and current != state.session_id
        set_cookie = response.headers.get("Set-Cookie") or ""
        if ("WASID4D=" in set_cookie or "4DSID_" in set_cookie) and current is None:
            raise Legacy4DError(
                f"4D set its session cookie for another domain or path than {self.base_url} (set LEGACY_API_HOST "
                "to the name the server uses in its cookies): every request would open one more session and take "
                "one more 4D license"
            )
        if current is None or current == state.session_id:
            return
        if state.session_id is not None:
            idle = time.time() - state.last_used
            why = (f"the previous one had been idle {idle / 60:.0f} min, past 4D's inactivity timeout"
                   if idle >= SESSION_IDLE_TIMEOUT_SECONDS else
                   f"the previous one was closed by the server {idle / 60:.0f} min after its last use (server "
                   "restart, or the session was dropped)")
            message = (f"4D handed this deployment a new REST session ({why}); it holds a 4D license until it "
                       "has been idle for the inactivity timeout")
            run_log.warning(message)
            self.session_changes.append(message)
        state.session_id = current
        state.sessions_seen += 1

    def _fingerprint(self, state: SessionState) -> str:
        return state.fingerprint(self.auth_mode, self.username or "", self._password or "",
                                 self._authentify_template if self.auth_mode == "authentify" else "")

    def _authenticate(self, state: SessionState) -> bool:
        """Authenticate the session unless it already is with these credentials; True if it just was.

        A login is never retried: not after a refusal (remembered in the jar, so no other caller tries the same
        credentials again: on a default-mode server every try holds a license), not after a timeout.
        """
        if not self.username:
            return False  # open access: the first request opens the session
        fingerprint = self._fingerprint(state)
        if state.authenticated_as == fingerprint:
            return False
        if self._login_error is not None:
            raise self._login_error
        if state.refused == fingerprint and not self.retry_refused:
            raise Legacy4DAuthError(
                f"4D refused user {self.username!r} at {self.base_url} earlier; the same credentials are not tried "
                "again. Correct LEGACY_API_USERNAME / LEGACY_API_PASSWORD, or run `erp-sync test-connection "
                "--source legacy_4d` to try them once more", err_codes=[1822])
        try:
            if self.auth_mode == "directory":
                self._directory_login(state, fingerprint)
            else:
                self._authentify(state, fingerprint)
        except Legacy4DError as exc:
            self._login_error = exc
            raise
        return True

    def _login_exchange(self, state: SessionState, path: str, *, headers: dict, body: str | None = None
                        ) -> requests.Response:
        """A login request: retried only when it never reached the server (connection refused or not
        established); a read timeout is not, since the server may still open that session."""
        attempt = 0
        while True:
            try:
                return self._exchange(state, "POST", self._url(path, None), headers=headers, body=body)
            except requests.ReadTimeout:
                raise Legacy4DError(
                    f"4D server {self.base_url} did not answer POST /rest/{path} within {self.timeout:g} s; not "
                    "retried, since the server may still open that session (it holds a 4D license until the "
                    "session times out). Retry the run later, or raise LEGACY_API_TIMEOUT"
                ) from None
            except requests.ConnectionError as exc:
                if attempt >= self.max_retries:
                    raise Legacy4DError(f"4D server {self.base_url} unreachable for POST /rest/{path} after "
                                        f"{attempt + 1} attempt(s): {type(exc).__name__}") from None
                self._backoff(attempt, f"{type(exc).__name__} on POST /rest/{path}")
                attempt += 1

    def _directory_login(self, state: SessionState, fingerprint: str) -> None:
        """``POST $directory/login`` with ``username-4D``/``password-4D`` headers (DOC
        https://developer.4d.com/docs/REST/$directory), inside the session the jar holds, if any."""
        headers = {"username-4D": self.username or "", "password-4D": self._password or ""}
        response = self._login_exchange(state, "$directory/login", headers=headers)
        result = self._json(response).get("result") if response.status_code == 200 else None
        if response.status_code == 200 and result is True:
            state.authenticated_as, state.refused = fingerprint, None
            log.info("logged in to 4D REST server %s as %s", self.base_url, self.username)
            return
        if response.status_code in (200, 401):
            state.refused, state.authenticated_as = fingerprint, None
            raise Legacy4DAuthError(
                f"4D login refused for user {self.username!r} at {self.base_url} (HTTP {response.status_code}); "
                "not retried", status=response.status_code, err_codes=[1822], messages=["REST login failed"])
        raise self._error("POST", "$directory/login", response, 1)

    def _authentify(self, state: SessionState, fingerprint: str) -> None:
        """Force login: ``POST $catalog/authentify`` with the application's parameters as a JSON array (DOC
        https://developer.4d.com/docs/20-R5/REST/authUsers). What the function returns is the application's
        own; whether it granted privileges shows on the next data request."""
        body = authentify_body(self._authentify_template, self.username or "", self._password or "")
        response = self._login_exchange(state, "$catalog/authentify", headers={"Content-Type": "application/json"},
                                        body=body)
        if response.status_code in (401, 404):
            # In force-login mode a guest may always call authentify() (DOC 20-R5 authUsers "Function
            # authentify"): a refusal or an unknown function means the server is in the default mode.
            raise Legacy4DAuthError(
                f"4D server {self.base_url} has no authentify() function open to guests (HTTP "
                f"{response.status_code} on POST /rest/$catalog/authentify): it is probably not in force-login "
                "mode; set LEGACY_API_AUTH=directory", status=response.status_code)
        if response.status_code != 200:
            raise self._error("POST", "$catalog/authentify", response, 1)
        self._authentify_result = self._json(response).get("result")
        state.authenticated_as = fingerprint
        log.info("authenticated to 4D REST server %s through authentify() as %s", self.base_url, self.username)

    def _not_privileged(self, method: str, path: str) -> Legacy4DAuthError:
        """A 401 right after a successful authentication, explained for the configured mode."""
        returned = self._authentify_result
        shown = self._redact(str(returned)) if returned not in (None, "") else "nothing"
        return not_privileged_error(self.auth_mode, self.username, f"{method} /rest/{path} (HTTP 401)", shown)

    @staticmethod
    def _is_4d_error(response: requests.Response) -> bool:
        """4D's own error stack (``componentSignature`` ``dbmg``): a processing error, not a transient one."""
        try:
            stack = response.json().get("__ERROR")
        except (ValueError, AttributeError):
            return False
        return isinstance(stack, list) and any(isinstance(e, dict) and "errCode" in e for e in stack)

    def _backoff(self, attempt: int, reason: str) -> None:
        delay = self.backoff_seconds * (2 ** attempt)
        log.warning("4D request failed (%s); retry %d/%d in %.2fs", reason, attempt + 1, self.max_retries, delay)
        time.sleep(delay)

    def _redact(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _error(self, method: str, path: str, response: requests.Response, attempts: int) -> Legacy4DError:
        codes: list[int] = []
        messages: list[str] = []
        try:
            stack = response.json().get("__ERROR", [])
        except (ValueError, AttributeError):
            stack = []
        details: list[str] = []
        for entry in stack if isinstance(stack, list) else []:
            if isinstance(entry, dict):
                code = entry.get("errCode")
                text = str(entry.get("message") or "")
                message = self._redact(text.splitlines()[0] if text else "")
                if isinstance(code, int):
                    codes.append(code)
                messages.append(message)
                details.append(f"errCode {code}: {message}")
        status = response.status_code
        detail = "; ".join(details) or self._redact(response.text[:200])
        where = f"{method} /rest/{path} (HTTP {status}, {attempts} attempt(s))"
        if status == 402 or 1823 in codes:
            return Legacy4DLicenseError(
                f"4D REST licenses are exhausted on {self.base_url}: {where}: {detail}. This deployment holds at "
                "most one (its one session, reused); the others are held by 4D users, other REST clients, or "
                "sessions left idle, which 4D frees only at their inactivity timeout (60 min) or a restart. "
                "Retry the run later.",
                status=status, err_codes=codes, messages=messages,
            )
        if status == 401 or 1822 in codes:
            return Legacy4DAuthError(f"4D authentication failed for user {self.username!r}: {where}: {detail}",
                                     status=status, err_codes=codes, messages=messages)
        cls = Legacy4DNotFoundError if status == 404 else Legacy4DError
        return cls(f"4D request failed: {where}: {detail}", status=status, err_codes=codes, messages=messages)

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise Legacy4DError(
                f"4D server sent non-JSON (HTTP {response.status_code}): {response.text[:200]!r}",
                status=response.status_code,
            ) from None
