"""``$filter``/``$params`` of 4D REST requests, built only from validated names, whitelisted operators and
``:n`` placeholders, the values in ``$params`` (JSON), never concatenated into ``$filter`` (DOC
https://developer.4d.com/docs/REST/$filter: placeholders ``:n`` take their values from ``$params``; the
``null`` keyword cannot be passed through one)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence

Condition = tuple[str, str, object]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPERATORS = {
    "=": "=", "==": "==", "===": "===", "!=": "!=", "#": "#", "!==": "!==", "<": "<", ">": ">",
    "<=": "<=", ">=": ">=", "in": "IN", "begin": "begin", "%": "%",
}
_NULL_OPERATORS = {"=": "=", "==": "=", "===": "=", "!=": "!=", "#": "!=", "!==": "!="}


def check_name(name: str, what: str) -> str:
    """``name`` if it can stand in a URL path or a ``$filter`` as is (letters, digits, ``_``)."""
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


def params_json(params: list) -> str:
    """``$params`` JSON with ``'`` as ``\\u0027`` and ``"`` inside text as ``\\u0022``, as DOC
    https://developer.4d.com/docs/REST/$filter asks ("use \\u0027 for ' and \\u0022 for \\"")."""

    def encode(value: object) -> str:
        if isinstance(value, str):
            inner = json.dumps(value, ensure_ascii=False)[1:-1]
            return '"' + inner.replace('\\"', "\\u0022").replace("'", "\\u0027") + '"'
        if isinstance(value, list | tuple):
            return "[" + ", ".join(encode(item) for item in value) + "]"
        return json.dumps(value)

    return encode(list(params))


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
        check_name(attribute, "attribute")
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


def check_orderby(order_by: str) -> str:
    """``order_by`` if it is ``attr [asc|desc], …`` of valid names: it goes into the URL as is."""
    for part in order_by.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise ValueError(f"invalid order_by {order_by!r}; expected 'attr [asc|desc], ...'")
        check_name(words[0], "attribute")
    return order_by


def filter_query(filters: Sequence[Condition] | Mapping[str, object] | None) -> list[tuple[str, str]]:
    """``$filter`` in double quotes and ``$params`` JSON in single quotes (see `params_json`)."""
    expression, params = build_filter(filters)
    if not expression:
        return []
    query = [("$filter", f'"{expression}"')]
    if params:
        query.append(("$params", f"'{params_json(params)}'"))
    return query
