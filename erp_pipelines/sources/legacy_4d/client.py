"""Plain ``requests`` client for a 4D (legacy ERP) REST server.

Why it looks the way it does (see the 4D REST reference):
- one ``requests.Session`` for everything: every 4D REST session holds a client license, so a client
  that drops its cookies burns licenses until the server answers 402;
- filters are built only from validated attribute names, whitelisted operators and ``:n`` placeholders,
  with values in ``$params`` (JSON) - never concatenated into ``$filter``;
- the query string is built by hand: ``$filter``/``$orderby``/``$params`` are quoted as 4D's URL parser
  expects and spaces are ``%20`` (``requests`` would send ``+``);
- paging is keyset (``key > :n`` ordered by key), which neither skips nor repeats rows when the table
  changes during the read, unlike ``$skip`` paging.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests

from erp_pipelines.sources.base import SourceAuthenticationError

log = logging.getLogger(__name__)

Condition = tuple[str, str, object]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPERATORS = {
    "=": "=", "==": "==", "===": "===", "!=": "!=", "#": "#", "!==": "!==", "<": "<", ">": ">",
    "<=": "<=", ">=": ">=", "in": "IN", "begin": "begin", "%": "%",
}
_NULL_OPERATORS = {"=": "=", "==": "=", "===": "=", "!=": "!=", "#": "!=", "!==": "!="}
_BANG_DATE = re.compile(r"^(\d{1,2})!(\d{1,2})!(\d{1,4})$")
_EMPTY_DATES = frozenset({"0!0!0", "00!00!0000", "00!00!00"})
_MS_PER_DAY = 86_400_000
# The host goes into every URL: a name or an address, never a path, query, fragment or user part.
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}|\[[0-9A-Fa-f:.]+\]")
# Credentials travel as HTTP header values: Latin-1, no control characters, no surrounding spaces.
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class Legacy4DError(Exception):
    """A failed 4D REST call: HTTP ``status`` (None if the server was unreachable), 4D ``err_codes``."""

    def __init__(
        self, message: str, *, status: int | None = None, err_codes: Sequence[int] = (),
        messages: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.err_codes = list(err_codes)
        self.messages = list(messages)


class Legacy4DLicenseError(Legacy4DError):
    """HTTP 402 / errCode 1823: every 4D client license is taken; retry the run later."""


class Legacy4DAuthError(Legacy4DError, SourceAuthenticationError):
    """HTTP 401 / errCode 1822: login refused or session not authenticated."""


class Legacy4DNotFoundError(Legacy4DError):
    """HTTP 404: unknown dataclass, entity, attribute or expired entity set."""


def deferred_key(value: object) -> object:
    """The key of an N→1 relation value (`{"__deferred": {"uri": …, "__KEY": "3"}}`); other values as is."""
    if isinstance(value, dict) and isinstance(value.get("__deferred"), dict):
        return value["__deferred"].get("__KEY")
    return value


def parse_4d_date(value: str | None) -> dt.date | None:
    """4D's ``d!m!yyyy`` (unpadded) to a date; the empty date ``0!0!0`` (or null) is None."""
    if value is None or value == "" or value in _EMPTY_DATES:
        return None
    match = _BANG_DATE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"not a 4D date (expected d!m!yyyy): {value!r}")
    day, month, year = (int(g) for g in match.groups())
    try:
        return dt.date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"not a valid 4D date: {value!r} ({exc})") from None


def parse_4d_time(ms: int | float | str) -> dt.time:
    """4D times travel as milliseconds since midnight (``duration``); anything outside one day is refused."""
    if isinstance(ms, bool) or not isinstance(ms, (int, float, str)):
        raise ValueError(f"not a 4D time in milliseconds: {ms!r}")
    try:
        total = float(ms)
    except ValueError:
        raise ValueError(f"not a 4D time in milliseconds: {ms!r}") from None
    if not 0 <= total < _MS_PER_DAY or total != int(total):
        raise ValueError(f"4D time out of range for a time of day (0..86399999 ms): {ms!r}")
    millis = int(total)
    seconds, millis = divmod(millis, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return dt.time(hours, minutes, seconds, millis * 1000)


def _header_safe(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not _HEADER_UNSAFE.search(value) and value == value.strip()


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid 4D {what} name: {name!r}")
    return name


def _param_value(value: object) -> object:
    """JSON-able placeholder value: dates as ISO ``YYYY-MM-DD``, times as milliseconds."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"a 4D filter value holds a NUL character, which 4D cannot compare: {value!r}")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1000 + value.microsecond // 1000
    return value


def build_filter(conditions: Sequence[Condition] | Mapping[str, object] | None) -> tuple[str | None, list]:
    """``[(attr, op, value)]`` (AND-ed) to a ``$filter`` text with ``:n`` placeholders and its ``$params``.

    ``None`` values become the ``null`` keyword (4D cannot bind null), everything else is a placeholder.
    A dict means attribute equality.
    """
    if not conditions:
        return None, []
    items = list(conditions.items()) if isinstance(conditions, Mapping) else list(conditions)
    parts: list[str] = []
    params: list = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:
            attribute, operator, value = item[0], "=", item[1]
        elif isinstance(item, tuple) and len(item) == 3:
            attribute, operator, value = item
        else:
            raise ValueError(f"a filter condition is (attribute, operator, value), got {item!r}")
        _check_name(attribute, "attribute")
        op = _OPERATORS.get(str(operator).lower()) if isinstance(operator, str) else None
        if op is None:
            raise ValueError(f"unsupported 4D filter operator {operator!r}; use one of {sorted(_OPERATORS)}")
        if value is None:
            if op not in _NULL_OPERATORS:
                raise ValueError(f"null can only be compared with = or !=, not {operator!r}")
            parts.append(f"{attribute} {_NULL_OPERATORS[op]} null")
            continue
        if op == "IN":
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
                raise ValueError(f"IN needs a list of values for {attribute}, got {value!r}")
            params.append([_param_value(v) for v in value])
        else:
            params.append(_param_value(value))
        parts.append(f"{attribute} {op} :{len(params)}")
    return " AND ".join(parts), params


def _check_orderby(order_by: str) -> str:
    for part in order_by.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise ValueError(f"invalid order_by {order_by!r}; expected 'attr [asc|desc], ...'")
        _check_name(words[0], "attribute")
    return order_by


class Legacy4DClient:
    """A 4D REST session: ``connect()`` logs in (one license), calls reuse its cookie, ``disconnect()`` frees it."""

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
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"scheme must be http or https, not {scheme!r}")
        if not isinstance(host, str) or not _HOST.fullmatch(host):
            raise ValueError(f"4D host (LEGACY_API_HOST) {host!r} must be a host name or an IP address")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65_536:
            raise ValueError(f"4D port (LEGACY_API_PORT) {port!r} is not a TCP port")
        if username is not None and not _header_safe(username):
            raise ValueError(f"4D user (LEGACY_API_USERNAME) {username!r} cannot travel in an HTTP header: "
                             "Latin-1 text without control characters or surrounding spaces")
        if password is not None and not _header_safe(password):
            raise ValueError("4D password (LEGACY_API_PASSWORD) cannot travel in an HTTP header: Latin-1 text "
                             "without control characters or surrounding spaces")
        if page_size < 1:
            raise ValueError("page_size must be positive")
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
        self.base_url = f"{scheme}://{host}:{port}"
        self._session = requests.Session()
        self._connected = False

    def __repr__(self) -> str:
        return f"Legacy4DClient({self.base_url!r}, username={self.username!r}, connected={self._connected})"

    # --- session ------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Log in with ``POST /rest/$directory/login`` (credentials in headers); open servers need no login."""
        if not self.username:
            self._connected = True
            return
        headers = {"username-4D": self.username, "password-4D": self._password or ""}
        response = self._send("POST", "$directory/login", None, headers=headers, relogin=False, opens_session=True)
        result = self._json(response).get("result")
        if result is not True:
            raise Legacy4DAuthError(
                f"4D login refused for user {self.username!r} at {self.base_url}",
                status=response.status_code, err_codes=[1822], messages=["REST login failed"],
            )
        self._connected = True
        log.info("logged in to 4D REST server %s as %s", self.base_url, self.username)

    def disconnect(self) -> None:
        """Log out so the license is released now rather than at the server's session timeout."""
        if not self._connected:
            return
        self._connected = False
        if self.username:
            try:
                self._send("GET", "$directory/logout", None, relogin=False, retries=0)
            except (Legacy4DError, requests.RequestException) as exc:
                log.warning("4D logout failed (the license frees itself at session timeout): %s", exc)
        self._session.cookies.clear()

    def close(self) -> None:
        self.disconnect()
        self._session.close()

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
        _check_name(table, "dataclass")
        key = str(record_id) if isinstance(record_id, int) else json.dumps(str(record_id))
        path = f"{table}({quote(key, safe='')})"
        if fields:
            path += "/" + ",".join(_check_name(f, "attribute") for f in fields)
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
        _check_name(key, "attribute")
        size = page_size or self.page_size
        wanted = None if fields is None else ([key, *[f for f in fields if f != key]])
        last: object = None
        while True:
            conditions = list(filters or [])
            if last is not None:
                conditions.append((key, ">", last))
            envelope = self._collection(table, conditions, wanted, top=size, skip=0, order_by=key)
            entities = envelope["__ENTITIES"]
            expected = min(size, envelope["__COUNT"])
            if len(entities) != expected or envelope.get("__SENT", len(entities)) != len(entities):
                raise Legacy4DError(
                    f"truncated page from 4D for {table}: got {len(entities)} entities, expected {expected} "
                    f"(__COUNT={envelope['__COUNT']}, __SENT={envelope.get('__SENT')})"
                )
            if not entities:
                return
            yield entities
            if envelope["__COUNT"] <= size:
                return
            last = entities[-1][key]

    def distinct_values(self, table: str, attribute: str, filters: list[Condition] | None = None) -> list:
        """Sorted distinct non-null values of one attribute (``$distinct=true``), paged so no cap truncates them."""
        _check_name(table, "dataclass")
        _check_name(attribute, "attribute")
        values: list = []
        while True:
            query = [*self._filter_query(filters), ("$distinct", "true"), ("$top", str(self.page_size)),
                     ("$skip", str(len(values)))]
            page = self._get(f"{table}/{attribute}", query)
            if not isinstance(page, list):
                raise Legacy4DError(f"unexpected 4D response for distinct {table}.{attribute}: not a JSON array")
            values.extend(page)
            if len(page) < self.page_size:
                return values

    def count(self, table: str, filters: list[Condition] | None = None) -> int:
        return int(self._collection(table, filters, None, top=1, skip=0, order_by=None)["__COUNT"])

    def global_stamp(self, table: str = "__DeletedRecords") -> int:
        """Current datastore stamp: the top-level ``__GlobalStamp`` of a one-entity request (4D has no direct call)."""
        envelope = self._collection(table, None, None, top=1, skip=0, order_by=None)
        if "__GlobalStamp" not in envelope:
            raise Legacy4DError(f"4D server reports no __GlobalStamp for {table}: data change tracking is off")
        return int(envelope["__GlobalStamp"])

    def deleted_records(self, table: str, since_stamp: int) -> list[dict]:
        """Deletions of ``table`` recorded in ``__DeletedRecords`` with ``__Stamp >= since_stamp``."""
        _check_name(table, "dataclass")
        conditions: list[Condition] = [("__TableName", "===", table), ("__Stamp", ">=", since_stamp)]
        return [row for page in self.iter_pages("__DeletedRecords", key="ID", filters=conditions) for row in page]

    # --- HTTP ---------------------------------------------------------------------------------------

    def _collection(
        self, table: str, filters: Sequence[Condition] | Mapping[str, object] | None, fields: list[str] | None,
        *, top: int, skip: int, order_by: str | None,
    ) -> dict:
        _check_name(table, "dataclass")
        query = self._filter_query(filters)
        if fields:
            query.append(("$attributes", ",".join(_check_name(f, "attribute") for f in fields)))
        if order_by:
            query.append(("$orderby", f'"{_check_orderby(order_by)}"'))
        query += [("$top", str(int(top))), ("$skip", str(int(skip)))]
        envelope = self._get(table, query)
        if "__ENTITIES" not in envelope or "__COUNT" not in envelope:
            raise Legacy4DError(f"unexpected 4D response for {table}: no __ENTITIES/__COUNT envelope")
        return envelope

    @staticmethod
    def _filter_query(filters: Sequence[Condition] | Mapping[str, object] | None) -> list[tuple[str, str]]:
        """``$filter`` in double quotes and ``$params`` JSON in single quotes (a ``'`` inside becomes ``\\u0027``)."""
        expression, params = build_filter(filters)
        if not expression:
            return []
        query = [("$filter", f'"{expression}"')]
        if params:
            query.append(("$params", "'" + json.dumps(params, ensure_ascii=False).replace("'", "\\u0027") + "'"))
        return query

    def _get(self, path: str, query: list[tuple[str, str]] | None) -> Any:
        if not self._connected:
            self.connect()
        return self._json(self._send("GET", path, query))

    def _url(self, path: str, query: list[tuple[str, str]] | None) -> str:
        url = f"{self.base_url}/rest/{path}"
        if query:
            url += "?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in query)
        return url

    def _send(
        self, method: str, path: str, query: list[tuple[str, str]] | None, *, headers: dict | None = None,
        relogin: bool = True, retries: int | None = None, opens_session: bool = False,
    ) -> requests.Response:
        """One call with retries (connection errors, timeouts, 5xx), one re-login on 401, no retry on 402.

        A call that `opens_session` (the login) is not retried after a read timeout: the server got it and
        may still open the session, and every retry would hold one more license until its timeout.
        """
        url = self._url(path, query)
        max_retries = self.max_retries if retries is None else retries
        attempt = 0
        relogged = False
        while True:
            try:
                response = self._session.request(method, url, headers=headers, timeout=self.timeout,
                                                 verify=self.verify)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if opens_session and isinstance(exc, requests.ReadTimeout):
                    raise Legacy4DError(
                        f"4D server {self.base_url} did not answer {method} /rest/{path} within "
                        f"{self.timeout:g} s; not retried, since the server may still open that session (it "
                        "holds a 4D license until the session times out). Retry the run later, or raise "
                        "LEGACY_API_TIMEOUT"
                    ) from None
                if attempt < max_retries:
                    self._backoff(attempt, f"{type(exc).__name__} on {method} /rest/{path}")
                    attempt += 1
                    continue
                raise Legacy4DError(
                    f"4D server {self.base_url} unreachable for {method} /rest/{path} after {attempt + 1} "
                    f"attempt(s): {type(exc).__name__}"
                ) from None
            if response.status_code == 401 and relogin and self.username and not relogged:
                log.info("4D session expired or unknown (401); logging in again")
                relogged = True
                self._session.cookies.clear()
                self.connect()
                continue
            if response.status_code >= 500 and attempt < max_retries:
                self._backoff(attempt, f"HTTP {response.status_code} on {method} /rest/{path}")
                attempt += 1
                continue
            if response.status_code >= 400:
                raise self._error(method, path, response, attempt + 1)
            return response

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
                f"4D REST licenses are exhausted on {self.base_url}: {where}: {detail}. "
                "Retry the run later, or free sessions (other clients must log out).",
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
