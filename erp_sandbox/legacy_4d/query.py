"""Request parsing and SQL generation: 4D's quoted URL parameters, ``$filter``, ``$orderby``, ``$attributes``.

Every value that comes from a request ends up as a bound psycopg2 parameter (``%(pN)s``); only
identifiers from the fixed catalog are written into SQL text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from .errors import RestError, attribute_not_found, malformed, query_error
from .schema import (
    DATACLASSES,
    INTEGER_TYPES,
    NUMERIC_TYPES,
    Attribute,
    DataClass,
    coerce_value,
    qi,
)

# --- URL query string (reference §1) -----------------------------------------------------------


def _split_outside_quotes(text: str, sep: str, *, maxsplit: int = -1) -> list[str]:
    """Split on ``sep`` except inside single/double quotes, like the engine's VFullURL parser."""
    parts: list[str] = []
    quote: str | None = None
    start = 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == sep and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append(text[start:i])
            start = i + 1
    if quote:
        code = 1809 if quote == '"' else 1808
        kind = "double" if quote == '"' else "single"
        raise RestError(400, (code, f"Unmatched {kind} quote in URL"))
    parts.append(text[start:])
    return parts


def strip_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_query_string(raw: str) -> dict[str, str]:
    """Percent-decode the whole query, then split it on ``&``/``=`` outside quotes and drop enclosing quotes."""
    if not raw:
        return {}
    text = unquote(raw.replace("+", " "))
    params: dict[str, str] = {}
    for chunk in _split_outside_quotes(text, "&"):
        if not chunk:
            continue
        pieces = _split_outside_quotes(chunk, "=", maxsplit=1)
        key = pieces[0].strip()
        params[key] = strip_quotes(pieces[1]) if len(pieces) > 1 else ""
    return params


# --- SQL parameters ----------------------------------------------------------------------------


@dataclass
class SqlParams:
    """Accumulates bound values and hands out ``%(pN)s`` placeholders."""

    values: dict[str, object] = field(default_factory=dict)

    def add(self, value: object) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"%({name})s"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- $filter ------------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_SYMBOL_OPS = ("===", "!==", "==", "!=", "<=", ">=", "=", "#", "<", ">", "%")
_WORD_OPS = {"in": "IN", "begin": "begin", "is": "==="}
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_PLACEHOLDER = re.compile(r":(\d+)")
_MAX_PLACEHOLDERS = 128


@dataclass
class _Literal:
    """A constant from the query text or a placeholder value, before typing against the attribute."""

    value: object
    is_null: bool = False
    placeholder: int | None = None
    raw: bool = False  # unquoted token: numbers/booleans/dates are interpreted by attribute type


class FilterCompiler:
    """Recursive-descent parser of the ORDA query subset, emitting a parameterized WHERE clause."""

    def __init__(self, dc: DataClass, text: str, params: list | None, sql: SqlParams, alias: str = "t") -> None:
        self.dc = dc
        self.text = text
        self.pos = 0
        self.params = params or []
        self.sql = sql
        self.alias = alias

    def compile(self) -> str:
        if not self.text.strip():
            raise query_error("Empty query string", 1201)
        clause = self._or()
        self._ws()
        if self.pos < len(self.text):
            raise query_error(f"Unexpected text in query at position {self.pos}: {self.text[self.pos:][:30]!r}")
        return clause

    # lexical helpers
    def _ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek_word(self, *words: str) -> str | None:
        self._ws()
        for word in words:
            end = self.pos + len(word)
            if self.text[self.pos:end].lower() == word.lower() and (
                word[0] in "&|" or end >= len(self.text) or not (self.text[end].isalnum() or self.text[end] == "_")
            ):
                return word
        return None

    def _take(self, *words: str) -> bool:
        word = self._peek_word(*words)
        if word is None:
            return False
        self.pos += len(word)
        return True

    # grammar
    def _or(self) -> str:
        parts = [self._and()]
        while self._take("||", "|", "OR"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def _and(self) -> str:
        clause = self._unary()
        while True:
            if self._take("&&", "&", "AND"):
                clause = f"({clause} AND {self._unary()})"
            elif self._take("EXCEPT"):
                clause = f"({clause} AND ({self._unary()}) IS NOT TRUE)"
            else:
                return clause

    def _unary(self) -> str:
        self._ws()
        if self._peek_word("NOT"):
            save = self.pos
            self.pos += 3
            self._ws()
            if self.pos < len(self.text) and self.text[self.pos] == "(":
                return f"(({self._group()}) IS NOT TRUE)"
            self.pos = save
        if self.pos < len(self.text) and self.text[self.pos] == "(":
            return self._group()
        return self._comparison()

    def _group(self) -> str:
        self.pos += 1
        clause = self._or()
        self._ws()
        if self.pos >= len(self.text) or self.text[self.pos] != ")":
            raise query_error("Missing closing parenthesis in query")
        self.pos += 1
        return f"({clause})"

    def _comparison(self) -> str:
        self._ws()
        match = _IDENT.match(self.text, self.pos)
        if not match:
            raise query_error(f"Attribute name expected at position {self.pos}")
        path = match.group(0)
        self.pos = match.end()
        operator = self._operator()
        literal = self._value(operator)
        return self._condition(path, operator, literal)

    def _operator(self) -> str:
        self._ws()
        if self._take("IS NOT"):
            return "!=="
        for word, op in _WORD_OPS.items():
            if self._take(word):
                return op
        for op in _SYMBOL_OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        raise query_error(f"Wrong comparison operator at position {self.pos}", 1112)

    def _value(self, operator: str) -> _Literal | list[_Literal]:
        self._ws()
        text = self.text
        if self.pos >= len(text):
            raise query_error("A value is expected after the comparison operator")
        ch = text[self.pos]
        if operator == "IN" and ch == "[":
            self.pos += 1
            items: list[_Literal] = []
            while True:
                self._ws()
                if self.pos < len(text) and text[self.pos] == "]":
                    self.pos += 1
                    return items
                literal = self._scalar(stop=",]")
                if isinstance(literal.value, list):
                    raise query_error("Nested collections are not allowed in IN")
                items.append(literal)
                self._ws()
                if self.pos < len(text) and text[self.pos] == ",":
                    self.pos += 1
                elif not (self.pos < len(text) and text[self.pos] == "]"):
                    raise query_error("Unterminated collection after IN")
        return self._scalar(stop=")&|")

    def _scalar(self, stop: str) -> _Literal:
        text = self.text
        ch = text[self.pos]
        if ch in "'\"":
            end = text.find(ch, self.pos + 1)
            if end < 0:
                raise query_error("Unterminated quoted value in query")
            value = text[self.pos + 1:end]
            self.pos = end + 1
            return _Literal(value)
        match = _PLACEHOLDER.match(text, self.pos)
        if match and (match.end() >= len(text) or not text[match.end()].isalnum()):
            self.pos = match.end()
            return self._placeholder(int(match.group(1)))
        start = self.pos
        while self.pos < len(text) and not text[self.pos].isspace() and text[self.pos] not in stop:
            self.pos += 1
        token = text[start:self.pos]
        if not token:
            raise query_error("A value is expected after the comparison operator")
        if token.lower() == "null":
            return _Literal(None, is_null=True)
        return _Literal(token, raw=True)

    def _placeholder(self, index: int) -> _Literal:
        if index < 1 or index > _MAX_PLACEHOLDERS or index > len(self.params) or self.params[index - 1] is None:
            raise RestError(500, (1279, f"Placeholder :{index} is missing or null in $params"))
        return _Literal(self.params[index - 1], placeholder=index)

    # semantics
    def _condition(self, path: str, operator: str, literal: _Literal | list[_Literal]) -> str:
        parts = path.split(".")
        if len(parts) == 2:
            relation = self.dc.attribute(parts[0])
            if relation is None or not relation.is_relation:
                raise query_error(f'The "{parts[0]}" attribute cannot be found in "{self.dc.name}"', 1500)
            target = DATACLASSES[relation.type]
            inner = FilterCompiler(target, "", self.params, self.sql, alias=f"{self.alias}r")
            cond = inner._condition(parts[1], operator, literal)
            return (
                f"EXISTS (SELECT 1 FROM {qi(target.name)} {self.alias}r WHERE {self.alias}r.{qi(target.key)} = "
                f"{self.alias}.{qi(relation.foreign_key or '')} AND {cond})"
            )
        attr = self.dc.attribute(path)
        if attr is None or len(parts) > 2:
            raise RestError(
                500,
                (1500, f'The "{path}" attribute cannot be found in The "{self.dc.name}" datastore class'),
                (1201, "The query cannot be analyzed"),
            )
        if attr.is_relation:
            if isinstance(literal, list):
                raise query_error("IN is not supported on a relation", 1112)
            attr = self.dc.attribute(attr.foreign_key or "") or attr
        column = f"{self.alias}.{qi(attr.name)}"
        if operator == "IN":
            return self._in(attr, column, literal)
        if isinstance(literal, list):
            raise query_error("A collection is only allowed with IN", 1112)
        if literal.is_null:
            if operator in ("=", "==", "==="):
                return f"{column} IS NULL"
            if operator in ("!=", "#", "!=="):
                return f"{column} IS NOT NULL"
            raise query_error(f"null cannot be used with {operator}", 1112)
        if attr.type == "string":
            return self._text_condition(column, operator, self._typed(attr, literal))
        value = self._typed(attr, literal)
        if attr.type == "date" and value is None:
            return self._condition_null(column, operator)
        if operator in ("begin", "%"):
            raise query_error(f"Operator {operator} needs a text attribute", 1112)
        sql_op = {"=": "=", "==": "=", "===": "=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}.get(operator)
        placeholder = self.sql.add(value)
        if sql_op:
            return f"{column} {sql_op} {placeholder}"
        return f"({column} = {placeholder}) IS NOT TRUE"

    def _condition_null(self, column: str, operator: str) -> str:
        if operator in ("=", "==", "==="):
            return f"{column} IS NULL"
        if operator in ("!=", "#", "!=="):
            return f"{column} IS NOT NULL"
        raise query_error("An empty date can only be compared with = or !=", 1112)

    def _in(self, attr: Attribute, column: str, literal: _Literal | list[_Literal]) -> str:
        if isinstance(literal, list):
            values = [self._typed(attr, item) for item in literal if not item.is_null]
        elif literal.placeholder is not None and isinstance(literal.value, list):
            values = [self._typed(attr, _Literal(v, placeholder=literal.placeholder)) for v in literal.value]
        else:
            raise query_error("IN expects a collection", 1112)
        if attr.type == "string":
            return f"lower({column}) = ANY({self.sql.add([str(v).lower() for v in values])})"
        return f"{column} = ANY({self.sql.add(values)})"

    def _text_condition(self, column: str, operator: str, value: object) -> str:
        text = str(value)
        lowered = f"lower({column})"
        if operator in ("=", "==", "!=", "#"):
            positive = (
                f"{lowered} LIKE {self.sql.add(_like_escape(text.lower()).replace('@', '%'))}"
                if "@" in text
                else f"{lowered} = {self.sql.add(text.lower())}"
            )
            return positive if operator in ("=", "==") else f"({positive}) IS NOT TRUE"
        if operator == "===":
            return f"{lowered} = {self.sql.add(text.lower())}"
        if operator == "!==":
            return f"({lowered} = {self.sql.add(text.lower())}) IS NOT TRUE"
        if operator == "begin":
            return f"{lowered} LIKE {self.sql.add(_like_escape(text.lower()) + '%')}"
        if operator == "%":
            pattern = r"(^|[^[:alnum:]_])" + re.escape(text.lower()) + r"([^[:alnum:]_]|$)"
            return f"{lowered} ~ {self.sql.add(pattern)}"
        return f"{lowered} {operator} {self.sql.add(text.lower())}"

    def _typed(self, attr: Attribute, literal: _Literal) -> object:
        """Give a literal the attribute's type; placeholders report 1280 on mismatch, literals 1203."""
        value = literal.value
        if (attr.type in NUMERIC_TYPES and attr.type != "duration" and isinstance(value, str) and literal.raw
                and not _NUMBER.match(value)):
            raise query_error(f"{value!r} is not a number for attribute {attr.name}", 1203)
        if attr.type == "bool" and literal.raw and isinstance(value, str) and value in ("0", "1"):
            value = value == "1"
        if attr.type == "string" and isinstance(value, bool) and literal.placeholder is not None:
            raise RestError(500, (1280, f"Placeholder :{literal.placeholder} has a wrong type for {attr.name}"))
        try:
            if attr.type in INTEGER_TYPES and attr.type != "duration":
                number = coerce_value(Attribute(attr.name, "number"), value)
                return int(number) if float(number).is_integer() else number  # type: ignore[arg-type]
            return coerce_value(attr, value)
        except ValueError as exc:
            if literal.placeholder is not None:
                raise RestError(
                    500, (1280, f"Placeholder :{literal.placeholder} has a wrong type for {attr.name}: {exc}")
                ) from exc
            raise query_error(str(exc), 1203) from exc


def parse_params(raw: str | None) -> list | None:
    """``$params`` is a JSON array; anything else is a malformed request."""
    if raw is None:
        return None
    try:
        params = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise malformed(f"$params is not valid JSON: {exc.msg}") from exc
    if not isinstance(params, list):
        raise malformed("$params must be a JSON array")
    return params


def compile_filter(dc: DataClass, text: str | None, params: list | None, sql: SqlParams) -> str:
    if text is None:
        return "TRUE"
    return FilterCompiler(dc, text, params, sql).compile()


# --- $orderby -----------------------------------------------------------------------------------


def compile_orderby(dc: DataClass, text: str | None, alias: str = "t") -> str:
    """``a desc, b`` -> ORDER BY list, always ending on the key so pages are deterministic."""
    key_col = f"{alias}.{qi(dc.key)}"
    if not text or not text.strip():
        return key_col
    items = []
    seen_key = False
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise RestError(404, (1810, f'Cannot order by "{part.strip()}"'))
        attr = dc.attribute(words[0])
        direction = words[1].lower() if len(words) == 2 else "asc"
        if attr is None or attr.is_relation or direction not in ("asc", "desc"):
            raise RestError(404, (1810, f'Cannot order by "{part.strip()}"'))
        seen_key = seen_key or attr.name == dc.key
        items.append(f"{alias}.{qi(attr.name)} {direction.upper()}")
    if not seen_key:
        items.append(key_col)
    return ", ".join(items)


# --- $attributes / projection ------------------------------------------------------------------

AttributeSpec = dict[str, list[str] | None]
"""name -> None for a storage attribute or a deferred relation; list of sub-attributes ("*" = all) to inline."""


def parse_attributes(dc: DataClass, text: str | None) -> AttributeSpec | None:
    if text is None or not text.strip():
        return None
    spec: AttributeSpec = {}
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        head, _, sub = name.partition(".")
        attr = dc.attribute(head)
        if attr is None or (sub and not attr.is_relation):
            raise attribute_not_found(dc.name, name)
        if not sub:
            spec.setdefault(head, None)
            continue
        target = DATACLASSES[attr.type]
        if sub != "*" and target.attribute(sub) is None:
            raise attribute_not_found(dc.name, name)
        current = spec.get(head) or []
        spec[head] = [*current, sub]
    return spec


_DATE_SQL = "CASE WHEN {c} IS NULL THEN '0!0!0' ELSE to_char({c}, 'FMDD!FMMM!YYYY') END"
_TS_SQL = "to_char({a}._e_modified AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"


def _deferred_sql(attr: Attribute, alias: str) -> str:
    fk = f"{alias}.{qi(attr.foreign_key or '')}"
    return (
        f"CASE WHEN {fk} IS NULL THEN NULL ELSE ('{{\"__deferred\":{{\"uri\":\"/rest/{attr.type}(' || {fk} || "
        f"')\",\"__KEY\":\"' || {fk} || '\"}}}}')::json END"
    )


def projection_sql(dc: DataClass, spec: AttributeSpec | None, alias: str = "t", depth: int = 0) -> str:
    """SELECT list whose ``row_to_json`` is the 4D entity object (``__KEY`` first, dates as d!m!yyyy)."""
    cols = [
        f"{alias}.{qi(dc.key)}::text AS \"__KEY\"",
        f"{_TS_SQL.format(a=alias)} AS \"__TIMESTAMP\"",
        f"{alias}._e_stamp AS \"__STAMP\"",
    ]
    for attr in dc.exposed:
        if spec is not None and attr.name not in spec:
            continue
        sub = spec.get(attr.name) if spec is not None else None
        if not attr.is_relation:
            column = f"{alias}.{qi(attr.name)}"
            expr = _DATE_SQL.format(c=column) if attr.type == "date" else column
        elif sub and depth == 0:
            target = DATACLASSES[attr.type]
            sub_spec: AttributeSpec | None = None if "*" in sub else {name: None for name in sub}
            inner_alias = f"{alias}{attr.name}"
            expr = (
                f"(SELECT row_to_json(x) FROM (SELECT {projection_sql(target, sub_spec, inner_alias, depth + 1)} "
                f"FROM {qi(target.name)} {inner_alias} WHERE {inner_alias}.{qi(target.key)} = "
                f"{alias}.{qi(attr.foreign_key or '')}) x)"
            )
        else:
            expr = _deferred_sql(attr, alias)
        cols.append(f"{expr} AS {qi(attr.name)}")
    return ", ".join(cols)


def value_sql(attr: Attribute, column: str) -> str:
    """Column expression whose JSON rendering is the 4D value (dates as text)."""
    return _DATE_SQL.format(c=column) if attr.type == "date" else column


def parse_int(params: dict[str, str], *names: str, default: int | None = None) -> int | None:
    for name in names:
        if name in params:
            try:
                value = int(params[name])
            except ValueError as exc:
                raise malformed(f"{name} must be an integer") from exc
            if value < 0:
                raise malformed(f"{name} must not be negative")
            return value
    return default

