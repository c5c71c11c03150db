"""PostgreSQL-backed datastore of the emulator: reads that return ready-made 4D JSON, and tracked writes.

Entity JSON is produced by PostgreSQL (``row_to_json`` + ``string_agg``) so a 1000-entity page is one
round trip and no per-row Python work, which keeps paging through 100k+ entities cheap.
Writes follow 4D's data change tracking: under a lock on the datastore stamp, the *current* global stamp
is written into the entity (or into ``__DeletedRecords.__Stamp``) and then incremented.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg2
import psycopg2.extensions

from .query import AttributeSpec, SqlParams, projection_sql, value_sql
from .schema import (
    BACKUP_PREFIX,
    DATACLASSES,
    DELETED_RECORDS,
    GLOBAL_STAMP,
    META_TABLE,
    PG_TYPES,
    DataClass,
    coerce_value,
    ddl_statements,
    drop_statements,
    qi,
)

_META = qi(META_TABLE)


class StoreError(Exception):
    """A write the datastore refused; ``stack`` holds 4D (errCode, message) pairs."""

    def __init__(self, stack: list[tuple[int, str]]) -> None:
        super().__init__("; ".join(f"{code}: {message}" for code, message in stack))
        self.stack = stack


@dataclass
class Page:
    count: int
    global_stamp: int
    sent: int
    body: str  # comma-joined entity JSON objects


@dataclass
class SaveResult:
    key: object | None
    entity: dict
    errors: list[tuple[int, str]] = field(default_factory=list)


class _Pool:
    """Tiny blocking connection pool; connections are autocommit unless a transaction is requested."""

    def __init__(self, url: str, size: int) -> None:
        self._url = url
        self._size = size
        self._idle: queue.LifoQueue[psycopg2.extensions.connection] = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()

    def get(self) -> psycopg2.extensions.connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = self._created < self._size
            if grow:
                self._created += 1
        if grow:
            try:
                conn = psycopg2.connect(self._url)
            except Exception:
                with self._lock:
                    self._created -= 1
                raise
            conn.autocommit = True
            return conn
        return self._idle.get(timeout=120)

    def put(self, conn: psycopg2.extensions.connection, *, broken: bool = False) -> None:
        if broken or conn.closed:
            if not conn.closed:
                conn.close()
            with self._lock:
                self._created -= 1
            return
        self._idle.put(conn)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class LegacyStore:
    """The emulated 4D datastore; thread-safe, shared by all request threads."""

    def __init__(self, url: str, max_connections: int = 8) -> None:
        self.url = url
        self._pool = _Pool(url, max_connections)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        conn = self._pool.get()
        broken = False
        try:
            yield conn
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        finally:
            self._pool.put(conn, broken=broken)

    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        with self.connection() as conn:
            conn.autocommit = False
            try:
                with conn.cursor() as cur:
                    yield cur
                conn.commit()
            except BaseException:
                if not conn.closed:
                    conn.rollback()
                raise
            finally:
                if not conn.closed:
                    conn.autocommit = True

    def _fetchone(self, sql: str, params: dict | tuple | None = None) -> tuple:
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()

    # --- schema ---------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create missing tables and indexes; leaves existing data alone."""
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(4004)")
            for stmt in ddl_statements():
                cur.execute(stmt)

    def reset(self) -> None:
        """Drop and recreate every table: an empty datastore with global stamp 1."""
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(4004)")
            for stmt in drop_statements() + ddl_statements():
                cur.execute(stmt)

    def truncate(self) -> None:
        """Empty all tables and restart the global stamp, keeping the schema (fast test isolation)."""
        tables = ", ".join(qi(name) for name in DATACLASSES)
        with self.transaction() as cur:
            cur.execute(f"TRUNCATE {tables} RESTART IDENTITY")
            cur.execute(f"UPDATE {_META} SET global_stamp = 1")

    # --- reads ----------------------------------------------------------------------------------

    def global_stamp(self) -> int:
        return int(self._fetchone(f"SELECT global_stamp FROM {_META}")[0])

    def uniqid(self) -> str:
        return str(self._fetchone(f"SELECT uniqid FROM {_META}")[0])

    def page(
        self, dc: DataClass, spec: AttributeSpec | None, where: str, sql: SqlParams, order: str,
        top: int, skip: int,
    ) -> Page:
        """One page plus ``__COUNT`` and the global stamp in a single statement.

        Keys are selected and offset first, the JSON projection runs only for the rows sent.
        """
        table = qi(dc.name)
        keys = (
            f"SELECT t.{qi(dc.key)} AS key, row_number() OVER (ORDER BY {order}) AS ord FROM {table} t "
            f"WHERE {where} ORDER BY {order} LIMIT {sql.add(top)} OFFSET {sql.add(skip)}"
        )
        count, stamp, sent, body = self._fetchone(
            f"SELECT (SELECT count(*) FROM {table} t WHERE {where}), {self._entities_sql(dc, spec, keys)}",
            sql.values,
        )
        return Page(int(count), int(stamp), int(sent), body)

    def keys(self, dc: DataClass, where: str, sql: SqlParams, order: str) -> list:
        query = f"SELECT t.{qi(dc.key)} FROM {qi(dc.name)} t WHERE {where} ORDER BY {order}"
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(query, sql.values)
            return [row[0] for row in cur]

    def page_by_keys(self, dc: DataClass, spec: AttributeSpec | None, keys: list) -> Page:
        """Entities in the given key order; keys no longer present come back as ``{"__STAMP":0}``."""
        sql = SqlParams()
        key_type = PG_TYPES[dc.key_attribute.type]
        source = f"SELECT * FROM unnest({sql.add(keys)}::{key_type}[]) WITH ORDINALITY AS k(key, ord)"
        stamp, sent, body = self._fetchone(f"SELECT {self._entities_sql(dc, spec, source)}", sql.values)
        return Page(len(keys), int(stamp), int(sent), body)

    @staticmethod
    def _entities_sql(dc: DataClass, spec: AttributeSpec | None, keys_sql: str) -> str:
        """Select list: global stamp, entity count, comma-joined entity JSON for ``(key, ord)`` rows.

        ``OFFSET 0`` keeps the lateral lookup a per-key index probe instead of a join over the whole table.
        """
        return (
            f"(SELECT global_stamp FROM {_META}), count(*), coalesce(string_agg(j, ',' ORDER BY ord), '') "
            f"FROM (SELECT k.ord, CASE WHEN t.{qi(dc.key)} IS NULL THEN '{{\"__STAMP\":0}}' ELSE "
            f"(SELECT row_to_json(x) FROM (SELECT {projection_sql(dc, spec)}) x)::text END AS j "
            f"FROM ({keys_sql}) k LEFT JOIN LATERAL (SELECT * FROM {qi(dc.name)} t "
            f"WHERE t.{qi(dc.key)} = k.key OFFSET 0) t ON TRUE) y"
        )

    def one(self, dc: DataClass, spec: AttributeSpec | None, where: str, sql: SqlParams) -> str | None:
        query = (
            f"SELECT row_to_json(x)::text FROM (SELECT {projection_sql(dc, spec)} FROM {qi(dc.name)} t "
            f"WHERE {where} ORDER BY t.{qi(dc.key)} LIMIT 1) x"
        )
        row = self._fetchone(query, sql.values)
        return row[0] if row else None

    def compute(self, dc: DataClass, attr_names: list[str], where: str, sql: SqlParams) -> dict[str, dict]:
        """count/sum/average/min/max per attribute (text and dates: count/min/max only)."""
        exprs: list[str] = []
        layout: list[tuple[str, list[str]]] = []
        for name in attr_names:
            attr = dc.by_name[name]
            col = f"t.{qi(name)}"
            ops = ["count"]
            exprs.append(f"count({col})")
            if attr.type in ("long", "long64", "word", "number", "duration"):
                ops += ["sum", "average"]
                exprs += [f"sum({col})", f"avg({col})::double precision"]
            if attr.type != "bool":
                ops += ["min", "max"]
                exprs += [value_sql(attr, f"min({col})"), value_sql(attr, f"max({col})")]
            layout.append((name, ops))
        row = self._fetchone(f"SELECT {', '.join(exprs)} FROM {qi(dc.name)} t WHERE {where}", sql.values)
        result: dict[str, dict] = {}
        values = iter(row)
        for name, ops in layout:
            result[name] = {}
            for op in ops:
                value = next(values)
                if isinstance(value, float) and value.is_integer() and dc.by_name[name].type != "number":
                    value = int(value)
                result[name][op] = value
        return result

    def attribute_values(
        self, dc: DataClass, name: str, where: str, sql: SqlParams, order: str, top: int | None, skip: int,
    ) -> list:
        """The non-null values of one attribute over the entities ``skip``… ``skip+top`` of the ordered selection."""
        attr = dc.by_name[name]
        col = f"t.{qi(name)}"
        limit = f" LIMIT {sql.add(top)}" if top is not None else ""
        query = (
            f"SELECT coalesce(json_agg(d.v ORDER BY d.ord) FILTER (WHERE d.raw IS NOT NULL), '[]')::text FROM "
            f"(SELECT {col} AS raw, {value_sql(attr, col)} AS v, row_number() OVER (ORDER BY {order}) AS ord "
            f"FROM {qi(dc.name)} t WHERE {where} ORDER BY {order}{limit} OFFSET {sql.add(skip)}) d"
        )
        return list(json.loads(self._fetchone(query, sql.values)[0]))

    def count(self, dataclass: str) -> int:
        return int(self._fetchone(f"SELECT count(*) FROM {qi(DATACLASSES[dataclass].name)}")[0])

    def get(self, dataclass: str, key: object) -> dict | None:
        """One entity as the REST layer would return it, or None."""
        dc = DATACLASSES[dataclass]
        sql = SqlParams()
        where = f"t.{qi(dc.key)} = {sql.add(coerce_value(dc.key_attribute, key))}"
        text = self.one(dc, None, where, sql)
        return json.loads(text) if text else None

    # --- writes ---------------------------------------------------------------------------------

    def save(self, dataclass: str, entities: Iterable[dict], *, atomic: bool = False) -> list[SaveResult]:
        """Create (no ``__KEY``) or update (``__KEY``, optional ``__STAMP`` check) entities, 4D style.

        Per-entity problems are reported in the result (as 4D does inside each entity); with ``atomic``
        any problem raises StoreError and nothing is saved.
        """
        dc = DATACLASSES[dataclass]
        results: list[SaveResult] = []
        with self.transaction() as cur:
            cur.execute(f"SELECT global_stamp FROM {_META} FOR UPDATE")
            stamp = int(cur.fetchone()[0])
            for entity in entities:
                result = self._save_one(cur, dc, entity, stamp)
                results.append(result)
                if result.errors and atomic:
                    raise StoreError(result.errors)
                if not result.errors and dc.tracked:
                    stamp += 1
            cur.execute(f"UPDATE {_META} SET global_stamp = %s", (stamp,))
        return results

    def _entity_values(self, dc: DataClass, entity: dict) -> tuple[dict[str, object], list[tuple[int, str]]]:
        values: dict[str, object] = {}
        errors: list[tuple[int, str]] = []
        for name, raw in entity.items():
            if (name.startswith("__") and dc.attribute(name) is None) or name in (GLOBAL_STAMP, "uri"):
                continue
            attr = dc.attribute(name)
            if attr is None:
                errors.append((1500, f'The "{name}" attribute cannot be found in The "{dc.name}" datastore class'))
                continue
            if attr.is_relation:
                raw = raw.get("__KEY") if isinstance(raw, dict) else raw
                attr = dc.by_name[attr.foreign_key or ""]
            try:
                values[attr.name] = coerce_value(attr, raw)
            except ValueError as exc:
                errors.append((1046, f"Cannot save entity of dataclass {dc.name}: {exc}"))
        return values, errors

    def _save_one(self, cur: psycopg2.extensions.cursor, dc: DataClass, entity: object, stamp: int) -> SaveResult:
        if not isinstance(entity, dict):
            return SaveResult(None, {}, [(1806, "Each entity must be a JSON object")])
        values, errors = self._entity_values(dc, entity)
        if errors:
            return SaveResult(entity.get("__KEY"), entity, errors)
        table, key_col = qi(dc.name), qi(dc.key)
        tracking = {GLOBAL_STAMP: stamp} if dc.tracked else {}
        raw_key = entity.get("__KEY")
        if raw_key is not None:
            try:
                key = coerce_value(dc.key_attribute, raw_key)
            except ValueError:
                return SaveResult(raw_key, entity, [(1543, f"Cannot load entity #{raw_key} of dataclass {dc.name}")])
            cur.execute(f"SELECT _e_stamp FROM {table} WHERE {key_col} = %s FOR UPDATE", (key,))
            row = cur.fetchone()
            if row is None:
                return SaveResult(key, entity, [(1543, f"Cannot load entity #{key} of dataclass {dc.name}")])
            if "__STAMP" in entity and entity["__STAMP"] != row[0]:
                return SaveResult(key, entity, [
                    (1263, f"Given stamp does not match current one for record #{key} of table {dc.name}"),
                    (1046, f"Cannot save record #{key} in table {dc.name}"),
                ])
            if values.get(dc.key, key) != key:
                return SaveResult(key, entity, [(1046, "The primary key of an existing entity cannot change")])
            values.pop(dc.key, None)
            changes = {**values, **tracking}
            sets = [f"{qi(name)} = %s" for name in changes] + ["_e_stamp = _e_stamp + 1", "_e_modified = now()"]
            cur.execute(f"UPDATE {table} SET {', '.join(sets)} WHERE {key_col} = %s", (*changes.values(), key))
            return SaveResult(key, entity)
        key = values.get(dc.key)
        if key is None:
            cur.execute(f"SELECT coalesce(max({key_col}), 0) + 1 FROM {table}")
            key = cur.fetchone()[0]
            values[dc.key] = key
        else:
            cur.execute(f"SELECT 1 FROM {table} WHERE {key_col} = %s", (key,))
            if cur.fetchone():
                return SaveResult(key, entity, [(1046, f"Duplicated primary key {key} in table {dc.name}")])
        row_values = {**values, **tracking}
        cols = ", ".join(qi(name) for name in row_values)
        marks = ", ".join(["%s"] * len(row_values))
        cur.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(row_values.values()))
        return SaveResult(key, entity)

    def delete_where(self, dc: DataClass, where: str, sql: SqlParams) -> list[str]:
        """Delete the selection; tracked tables record each key in ``__DeletedRecords`` with its own stamp."""
        table, key_col = qi(dc.name), qi(dc.key)
        with self.transaction() as cur:
            cur.execute(f"SELECT global_stamp FROM {_META} FOR UPDATE")
            stamp = int(cur.fetchone()[0])
            if not dc.tracked:
                cur.execute(f"DELETE FROM {table} t WHERE {where} RETURNING t.{key_col}::text", sql.values)
                return [row[0] for row in cur.fetchall()]
            first = sql.add(stamp)
            cur.execute(
                f"WITH d AS (DELETE FROM {table} t WHERE {where} RETURNING t.{key_col} AS k), "
                "n AS (SELECT k, row_number() OVER (ORDER BY k) - 1 AS i FROM d) "
                f'INSERT INTO {qi(DELETED_RECORDS)} ("__PrimaryKey", "__Stamp", "__TableName", "__TableNumber") '
                f"SELECT k::text, {first} + i, {sql.add(dc.name)}, {sql.add(dc.table_number)} FROM n "
                'RETURNING "__PrimaryKey"',
                sql.values,
            )
            deleted = [row[0] for row in cur.fetchall()]
            cur.execute(f"UPDATE {_META} SET global_stamp = %s", (stamp + len(deleted),))
        return deleted

    # --- data file: backup, restore, stamp (what an administrator can do to a 4D data file) ----------

    def backup(self) -> None:
        """Keep a copy of the whole data file (every table and the global stamp), as a 4D backup does."""
        with self.transaction() as cur:
            for name in [*DATACLASSES, META_TABLE]:
                cur.execute(f"DROP TABLE IF EXISTS {qi(BACKUP_PREFIX + name)}")
                cur.execute(f"CREATE TABLE {qi(BACKUP_PREFIX + name)} AS TABLE {qi(name)}")

    def restore(self) -> int:
        """Put the backed-up data file back: records, deletions and the global stamp all go back in time.

        Returns the global stamp now in force (lower than before whenever anything changed since the backup).
        """
        with self.transaction() as cur:
            for name in [*DATACLASSES, META_TABLE]:
                cur.execute(f"DELETE FROM {qi(name)}")
                cur.execute(f"INSERT INTO {qi(name)} SELECT * FROM {qi(BACKUP_PREFIX + name)}")
            cur.execute(f"SELECT global_stamp FROM {_META}")
            return int(cur.fetchone()[0])

    def set_global_stamp(self, value: int) -> None:
        """``ds.setGlobalStamp()`` (DOC https://developer.4d.com/docs/API/DataStoreClass#setglobalstamp): any
        value, lower than the current one included."""
        with self.transaction() as cur:
            cur.execute(f"UPDATE {_META} SET global_stamp = %s", (int(value),))

    # --- convenience API for tests and demos -----------------------------------------------------

    def insert(self, dataclass: str, records: Iterable[dict]) -> list[dict]:
        """Create entities (primary key optional) and return them as REST JSON; raises StoreError."""
        return self._saved(dataclass, [{k: v for k, v in r.items() if k != "__KEY"} for r in records])

    def update(self, dataclass: str, key: object, changes: dict, stamp: int | None = None) -> dict:
        """Modify one entity (``stamp`` enables the optimistic-lock check) and return it; raises StoreError."""
        entity = {**changes, "__KEY": key}
        if stamp is not None:
            entity["__STAMP"] = stamp
        return self._saved(dataclass, [entity])[0]

    def delete(self, dataclass: str, keys: Iterable[object]) -> int:
        """Delete entities by primary key; returns how many existed."""
        dc = DATACLASSES[dataclass]
        sql = SqlParams()
        typed = [coerce_value(dc.key_attribute, k) for k in keys]
        return len(self.delete_where(dc, f"t.{qi(dc.key)} = ANY({sql.add(typed)})", sql))

    def _saved(self, dataclass: str, entities: list[dict]) -> list[dict]:
        results = self.save(dataclass, entities, atomic=True)
        return [self.get(dataclass, r.key) or {} for r in results]
