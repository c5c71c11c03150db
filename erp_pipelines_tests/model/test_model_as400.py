"""Model-based test of the AS400 sync (issue 11): random changes to the real stand-in, random runs, and after
every run the application tables, the open quarantine and the run's counts compared with the reference model.

The stand-in is written as its owner (the ERP's own writes) with psycopg2; the sync reads it through ODBC as
production does, in small batches (3-7 rows), so duplicates land on every side of a batch boundary. Parent
PRODUCTLIB.PRODUCTS (SKU unique among live products) and child INVENTORYLIB.INVENTORY (orphans), both without
a unique key for the test, as DDS physical files without UNIQUE are, so the same key can be held twice.

Decoding is the model's own, from the documented formats (IBM i: CHAR is blank-padded and compares ignoring
trailing blanks only, so ' 777' and '777' are two records and two target keys, '777 ' and '777' one; CYYMMDD
dates with C=0 for 19xx and C=1 for 20xx and 0 for "no date"; HHMMSS times; DECIMAL quantities) and the
contract.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from erp_pipelines.catalog import get_spec
from erp_pipelines.core.source import ChangeRange
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sources.as400.adapter import As400Source
from erp_pipelines_tests.model.harness import (
    ModelChecks,
    StepCounter,
    TableView,
    constraints,
    model_settings,
    reset_app_database,
    run_time_limit,
    terminate_run_session,
)
from erp_pipelines_tests.model.reference import (
    Outcome,
    Record,
    TableModel,
    canonical_number,
    canonical_raw,
)
from erp_pipelines_tests.support.sandbox import as400_test_resource, empty_app_database
from erp_sandbox.as400.schema import create_schema

pytestmark = [pytest.mark.integration, pytest.mark.timeout(run_time_limit())]

PRODUCT, STOCK = get_spec("product"), get_spec("product_stock")
OVERLAP = dt.timedelta(seconds=300)  # contract 8: incremental reads start at watermark - 300 s
Failure = tuple[str, int]  # which session dies (source or application), after which batch


def _char(value: object) -> object:
    """CHAR values compare without their trailing blanks (the driver hands them over padded)."""
    return value.rstrip(" ") if isinstance(value, str) else value


PRODUCT_COLUMNS = {"ITEMNO": _char, "ITEMDESC": _char, "SKU": _char, "ITEMCLS": _char, "UOM": _char,
                   "ITEMSTS": _char, "CRTDAT": canonical_number, "CHGDAT": canonical_number,
                   "CHGTIM": canonical_number}
STOCK_COLUMNS = {"ITEMNO": _char, "WHSE": _char, "ONHAND": canonical_number, "ALLOC": canonical_number,
                 "ONORD": canonical_number, "UOM": _char, "BIN": _char, "LOTCTL": _char,
                 "CHGDAT": canonical_number, "CHGTIM": canonical_number}
PRODUCT_VALUES = ("description", "sku", "category", "unit_of_measure", "is_active", "created_on", "source_changed_at")
STOCK_VALUES = ("on_hand", "allocated", "on_order", "unit_of_measure", "bin_location", "is_lot_controlled",
                "source_changed_at")

# Pools: first entries are the plain ones (Hypothesis shrinks towards them), the rest the hard cases.
ITEM_NUMBERS = ["P1", "P2", "P3", "777", " 777", "  777", "A|B", "A", "O'K", ""]
STOCK_ITEMS = ["P1", "P2", "777", " 777", "A|B", "A", "O'K", "P9"]
WAREHOUSES = ["001", "002", "X", "B|X", "01", " 01"]
SKUS = ["S1", "S2", "S3", "S4", "S|5", "S'6", "", "S\x85"]
DESCRIPTIONS = ["BOLT", "HEX NUT 'M8'", "PIPE A|B", "", "VALVE\x01", "LAMP\x9f", "GLUE\x7f", "   "]
CLASSES = ["FAST", "", "PL|M", "EL\x1b"]
STATUSES = ["A", "I", "X", ""]
DATES = [1240115, 0, 991231, 1000229, 1251341, 1240230, 1230229]  # 2024-01-15, none, 1999-12-31, 2000-02-29, bad
QUANTITIES = ["5.000", "0", "12.345", "-1.000"]
BINS = ["B1", "", "O'K|1", "\x9fB"]
LOT_FLAGS = ["N", "Y", "Z"]
STAMPS = ["now", "now", "past", "future", "bad time", "no date"]


def to_cyymmdd(moment: dt.datetime) -> tuple[int, int]:
    return ((moment.year - 1900) * 10_000 + moment.month * 100 + moment.day,
            moment.hour * 10_000 + moment.minute * 100 + moment.second)


def cyymmdd(number: int) -> dt.date | str | None:
    """IBM i CYYMMDD (C=0: 19xx, C=1: 20xx); 0 is "no date"; 'bad' for an impossible date."""
    if number == 0:
        return None
    century, rest = divmod(number, 1_000_000)
    if century not in (0, 1) or number < 0:
        return "bad"
    try:
        return dt.date(1900 + 100 * century + rest // 10_000, rest // 100 % 100, rest % 100)
    except ValueError:
        return "bad"


def stamp(date: int, time: int) -> dt.datetime | None:
    """CHGDAT + CHGTIM; None when either is impossible or the date is missing (the column is required)."""
    day = cyymmdd(date)
    hours, minutes, seconds = time // 10_000, time // 100 % 100, time % 100
    if not isinstance(day, dt.date) or time < 0 or hours > 23 or minutes > 59 or seconds > 59:
        return None
    return dt.datetime(day.year, day.month, day.day, hours, minutes, seconds)


def _control(text: str) -> bool:
    """Contract 12: C0 and C1 controls (U+0000-U+001F, U+007F-U+009F) are refused in text."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)


def text(raw: str, column: str, faults: set[str], *, required: bool = False, blank_as_null: bool = False) -> Any:
    value = raw.rstrip(" ")
    if _control(value) or (required and not value.strip()):
        faults.add(column)
    return None if blank_as_null and not value else value


def flag(raw: str, column: str, faults: set[str], true: str, false: str) -> bool | None:
    value = {true: True, false: False}.get(raw.strip(" "))
    if value is None:
        faults.add(column)
    return value


def changed_at(row: dict[str, Any], faults: set[str]) -> dt.datetime | None:
    value = stamp(row["CHGDAT"], row["CHGTIM"])
    if value is None:
        faults.add("source_changed_at")
    return value


def decode_product(row: dict[str, Any]) -> Record:
    faults: set[str] = set()
    item = row["ITEMNO"].rstrip(" ")
    if not item:
        faults.add("item_number")
    created = cyymmdd(row["CRTDAT"])
    if created == "bad":
        faults.add("created_on")
    values = {
        "item_number": item,
        "description": text(row["ITEMDESC"], "description", faults, required=True),
        "sku": text(row["SKU"], "sku", faults, required=True),
        "category": text(row["ITEMCLS"], "category", faults, blank_as_null=True),
        "unit_of_measure": text(row["UOM"], "unit_of_measure", faults, blank_as_null=True),
        "is_active": flag(row["ITEMSTS"], "is_active", faults, "A", "I"),
        "created_on": created,
        "source_changed_at": changed_at(row, faults),
    }
    return Record(
        exact_key=(row["ITEMNO"].rstrip(" "),),
        target_key=(item,) if item else None,
        values=None if faults else values,
        faults=frozenset(faults),
        raw=canonical_raw(row, PRODUCT_COLUMNS),
        unique_value=None if "sku" in faults else values["sku"],
    )


def decode_stock(row: dict[str, Any]) -> Record:
    faults: set[str] = set()
    item, warehouse = row["ITEMNO"].rstrip(" "), row["WHSE"].rstrip(" ")
    for column, value in (("item_number", item), ("warehouse", warehouse)):
        if not value:
            faults.add(column)
    quantities = {}
    for column, source in (("on_hand", "ONHAND"), ("allocated", "ALLOC"), ("on_order", "ONORD")):
        quantities[column] = decimal.Decimal(row[source])
        if quantities[column] < 0:
            faults.add(column)
    values = {
        "item_number": item,
        "warehouse": warehouse,
        **quantities,
        "unit_of_measure": text(row["UOM"], "unit_of_measure", faults, blank_as_null=True),
        "bin_location": text(row["BIN"], "bin_location", faults, blank_as_null=True),
        "is_lot_controlled": flag(row["LOTCTL"], "is_lot_controlled", faults, "Y", "N"),
        "source_changed_at": changed_at(row, faults),
    }
    keyed = item and warehouse
    return Record(
        exact_key=(row["ITEMNO"].rstrip(" "), row["WHSE"].rstrip(" ")),
        target_key=(item, warehouse) if keyed else None,
        values=None if faults else values,
        faults=frozenset(faults),
        raw=canonical_raw(row, STOCK_COLUMNS),
        parent_key=(item,) if item else None,
    )


@dataclass
class As400Stand:
    """The real components one test drives: the stand-in (as its owner), the app database, the ODBC source."""

    owner_url: str
    engine: sa.Engine
    app_url: str
    counter: StepCounter
    tracking: str = "stamps"
    """stamps: each incremental read is predicted from CHGDAT/CHGTIM and the overlap window; auto: PRODUCTS and
    INVENTORY are journaled, so it is predicted from what changed since the last committed run."""

    def __post_init__(self) -> None:
        self.settings = as400_test_resource().replaced(change_tracking=self.tracking)
        self.owner = psycopg2.connect(self.owner_url)
        self.owner.autocommit = True
        with self.engine.connect() as connection:
            self.constraints = constraints(connection)

    def sql(self, statement: str, parameters: tuple = ()) -> None:
        with self.owner.cursor() as cursor:
            cursor.execute(statement, parameters)

    def reset(self) -> None:
        """Empty stand-in and application tables; the schema rebuilt if a run broke it (reported by then)."""
        self.sql('truncate "PRODUCTLIB"."PRODUCTS", "PRODUCTLIB"."MEASUREMENTS", "PRODUCTLIB"."PRICING", '
                 '"INVENTORYLIB"."INVENTORY"')
        reset_app_database(self.app_url, self.constraints)

    def terminate_reader_sessions(self) -> None:
        """The source session dies mid-read (as the fault tests do: pg_terminate_backend of the reader)."""
        self.sql("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s and datname = %s "
                 "and pid <> pg_backend_pid()", (self.settings.username, self.settings.database))


VIEWS = {
    "product": TableView("product", PRODUCT.target_table, PRODUCT.business_key, PRODUCT_VALUES, PRODUCT_COLUMNS),
    "product_stock": TableView("product_stock", STOCK.target_table, STOCK.business_key, STOCK_VALUES,
                               STOCK_COLUMNS),
}


class PhysicalFile:
    """One stand-in table as the ERP writes it, without a unique key (a DDS physical file without UNIQUE holds
    duplicates): rows are told apart by their PostgreSQL row address, keys compare as Db2 compares CHAR."""

    def __init__(self, stand: As400Stand, table: str, key_columns: tuple[str, ...]) -> None:
        self.stand, self.table, self.key_columns = stand, table, key_columns
        self.rows: list[dict[str, Any]] = []  # the raw rows as written, each with its "ctid"
        self.changed: set[tuple[str, ...]] = set()  # keys written or deleted since the last committed run
        self.lost: list[dict[str, Any]] = []  # rows deleted (or re-keyed away) since then, as they were

    def key(self, row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(row[name].rstrip(" ") for name in self.key_columns)

    def find(self, key: tuple[str, ...]) -> dict[str, Any] | None:
        """The first row with this exact key (trailing blanks ignored, leading ones significant)."""
        wanted = tuple(part.rstrip(" ") for part in key)
        return next((row for row in self.rows if self.key(row) == wanted), None)

    def write(self, values: dict[str, Any], existing: dict[str, Any] | None) -> None:
        """Changes `existing` to `values`, or inserts them as a new row (a duplicate when the key exists)."""
        columns = list(values)
        names = ", ".join(f'"{name}"' for name in columns)
        with self.stand.owner.cursor() as cursor:
            if existing is None:
                cursor.execute(f"insert into {self.table} ({names}) values ({', '.join(['%s'] * len(columns))}) "
                               "returning ctid::text", tuple(values.values()))
                self.rows.append(values)
            else:
                sets = ", ".join(f'"{name}" = %s' for name in columns)
                cursor.execute(f"update {self.table} set {sets} where ctid = %s::tid returning ctid::text",
                               (*values.values(), existing["ctid"]))
                values = existing | values
                self.rows[self.rows.index(existing)] = values
                self.changed.add(self.key(existing))
                self.lost.append(existing)
            values["ctid"] = cursor.fetchone()[0]
        self.changed.add(self.key(values))

    def delete(self, existing: dict[str, Any] | None) -> None:
        if existing is not None:
            self.stand.sql(f"delete from {self.table} where ctid = %s::tid", (existing["ctid"],))
            self.rows.remove(existing)
            self.changed.add(self.key(existing))
            self.lost.append(existing)

    def committed(self) -> None:
        """A run committed: the journal position moved past every change so far."""
        self.changed.clear()
        self.lost.clear()


class As400Machine(RuleBasedStateMachine, ModelChecks):
    """Random source changes and runs; after each run the model and the application database must agree."""

    stand: As400Stand
    views = VIEWS

    def __init__(self) -> None:
        super().__init__()
        self.stand.reset()
        self.engine = self.stand.engine
        self.expected_constraints = self.stand.constraints
        self.stand.counter.examples += 1
        self.products = PhysicalFile(self.stand, '"PRODUCTLIB"."PRODUCTS"', ("ITEMNO",))
        self.stock = PhysicalFile(self.stand, '"INVENTORYLIB"."INVENTORY"', ("ITEMNO", "WHSE"))
        self.models = {"product": TableModel("product", unique_column="sku"),
                       "product_stock": TableModel("product_stock", parent="product")}
        self.batch_rows = 5

    def _step(self) -> None:
        self.stand.counter.steps += 1

    # --- source changes --------------------------------------------------------------------------------

    @staticmethod
    def _stamp(kind: str) -> tuple[int, int]:
        now = dt.datetime.now().replace(microsecond=0)
        moments = {"past": now - dt.timedelta(days=2), "future": now + dt.timedelta(hours=3)}
        date, time = to_cyymmdd(moments.get(kind, now))
        if kind == "bad time":
            time = 256199
        if kind == "no date":
            date = 0
        return date, time

    def _write_product(self, values: dict[str, Any], existing: dict[str, Any] | None,
                       stamp_kind: str = "now") -> None:
        values["CHGDAT"], values["CHGTIM"] = self._stamp(stamp_kind)
        self.products.write(values, existing)

    @initialize(batch_rows=st.integers(3, 7))
    def choose_batch_size(self, batch_rows: int) -> None:
        self.batch_rows = batch_rows

    @rule(item=st.sampled_from(ITEM_NUMBERS), description=st.sampled_from(DESCRIPTIONS),
          sku=st.sampled_from(SKUS), item_class=st.sampled_from(CLASSES), unit=st.sampled_from(["EA", ""]),
          status=st.sampled_from(STATUSES), created=st.sampled_from(DATES), stamp_kind=st.sampled_from(STAMPS),
          another_copy=st.booleans())
    def write_product(self, item: str, description: str, sku: str, item_class: str, unit: str, status: str,
                      created: int, stamp_kind: str, another_copy: bool) -> None:
        """Insert a product, change one, or insert another row with an existing key (a duplicate)."""
        self._step()
        self._write_product({"ITEMNO": item, "ITEMDESC": description, "SKU": sku, "ITEMCLS": item_class,
                             "UOM": unit, "ITEMSTS": status, "CRTDAT": created},
                            None if another_copy else self.products.find((item,)), stamp_kind)

    @rule(item=st.sampled_from(ITEM_NUMBERS))
    def delete_product(self, item: str) -> None:
        self._step()
        self.products.delete(self.products.find((item,)))

    @rule(item=st.sampled_from(STOCK_ITEMS), warehouse=st.sampled_from(WAREHOUSES),
          on_hand=st.sampled_from(QUANTITIES), allocated=st.sampled_from(["0", "1.500", "-0.001"]),
          unit=st.sampled_from(["EA", ""]), bin_location=st.sampled_from(BINS), lot=st.sampled_from(LOT_FLAGS),
          stamp_kind=st.sampled_from(STAMPS), another_copy=st.booleans())
    def write_stock(self, item: str, warehouse: str, on_hand: str, allocated: str, unit: str, bin_location: str,
                    lot: str, stamp_kind: str, another_copy: bool) -> None:
        self._step()
        date, time = self._stamp(stamp_kind)
        values = {"ITEMNO": item, "WHSE": warehouse, "ONHAND": on_hand, "ALLOC": allocated, "ONORD": "0",
                  "UOM": unit, "BIN": bin_location, "LOTCTL": lot, "CHGDAT": date, "CHGTIM": time}
        self.stock.write(values, None if another_copy else self.stock.find((item, warehouse)))

    @rule(item=st.sampled_from(STOCK_ITEMS), warehouse=st.sampled_from(WAREHOUSES))
    def delete_stock(self, item: str, warehouse: str) -> None:
        self._step()
        self.stock.delete(self.stock.find((item, warehouse)))

    @rule(items=st.lists(st.sampled_from(ITEM_NUMBERS), min_size=2, max_size=3, unique_by=lambda i: i.rstrip()))
    def rotate_skus(self, items: list[str]) -> None:
        """Two products swap their SKUs, or three rotate them (contract 4)."""
        self._step()
        present = [row for row in (self.products.find((item,)) for item in items) if row is not None]
        skus = [row["SKU"] for row in present]
        for row, sku in zip(present, skus[1:] + skus[:1], strict=True):
            self._write_product({"SKU": sku}, row)

    @rule(old=st.sampled_from(ITEM_NUMBERS), new=st.sampled_from(ITEM_NUMBERS))
    def recreate_under_new_key(self, old: str, new: str) -> None:
        """A product deleted and created again under another key with the old SKU (a value freed by deletion)."""
        self._step()
        row = self.products.find((old,))
        if row is None or self.products.find((new,)) is not None:
            return
        self.products.delete(row)
        self._write_product({**{name: value for name, value in row.items() if name != "ctid"}, "ITEMNO": new}, None)

    @rule(item=st.sampled_from(ITEM_NUMBERS), sku=st.sampled_from(SKUS[:6]))
    def fix_product(self, item: str, sku: str) -> None:
        """The ERP's user corrects a product (stamped now): every value valid, the SKU kept when it was valid."""
        self._step()
        row = self.products.find((item,))
        if row is None:
            return
        kept = row["SKU"] if "sku" not in decode_product(row).faults else sku
        self._write_product({"ITEMDESC": "FIXED", "SKU": kept, "ITEMCLS": "FAST", "ITEMSTS": "A",
                             "CRTDAT": 1240115}, row)

    @rule(item=st.sampled_from(STOCK_ITEMS), warehouse=st.sampled_from(WAREHOUSES))
    def fix_stock(self, item: str, warehouse: str) -> None:
        self._step()
        row = self.stock.find((item, warehouse))
        if row is None:
            return
        date, time = self._stamp("now")
        self.stock.write({"ONHAND": "1.000", "ALLOC": "0", "BIN": "B1", "LOTCTL": "N", "CHGDAT": date,
                          "CHGTIM": time}, row)

    # --- runs ------------------------------------------------------------------------------------------

    MODES = st.sampled_from(["incremental", "full", "replay"])

    FAILURES = st.none() | st.tuples(st.sampled_from(["source", "application"]), st.integers(1, 3))

    @rule(product_mode=MODES, stock_mode=MODES, failing=st.sampled_from(["product", "product_stock"]),
          failure=FAILURES)
    def run_both(self, product_mode: str, stock_mode: str, failing: str, failure: Failure | None) -> None:
        """Product then stock, as Dagster orders them; optionally one of them loses its source session or its
        application-database session after a batch."""
        self._step()
        for entity, mode in (("product", product_mode), ("product_stock", stock_mode)):
            self._run(entity, mode, failure if failing == entity else None)

    @rule(mode=MODES, failure=FAILURES)
    def run_product(self, mode: str, failure: Failure | None) -> None:
        self._step()
        self._run("product", mode, failure)

    @rule(mode=MODES)
    def run_stock(self, mode: str) -> None:
        self._step()
        self._run("product_stock", mode, None)

    @rule(entity=st.sampled_from(["product", "product_stock"]), days_back=st.integers(0, 3),
          days=st.none() | st.integers(1, 3))
    def backfill(self, entity: str, days_back: int, days: int | None) -> None:
        """A backfill (issue 17) of the stamps from `days_back` days ago on, for `days` days or open-ended: it reads
        only the rows stamped in that range, concludes nothing about the others and leaves the watermark alone."""
        self._step()
        since = dt.date.today() - dt.timedelta(days=days_back)
        until = None if days is None else since + dt.timedelta(days=days)
        watermark = self._stored_watermark(entity)
        self._run(entity, "backfill", None, ChangeRange(since.isoformat(), until and until.isoformat()))
        assert self._stored_watermark(entity) == watermark, f"{entity}: a backfill moved the watermark"

    def teardown(self) -> None:
        """Every example ends with an incremental and a full run of both tables, checked like any other."""
        for mode in ("incremental", "full"):
            for entity in ("product", "product_stock"):
                self._run(entity, mode, None)

    def _stored_watermark(self, entity: str) -> dict | None:
        with self.stand.engine.connect() as connection:
            return connection.execute(sa.text("select value from sync_watermark where entity = :e"),
                                      {"e": entity}).scalar_one_or_none()

    def _watermark(self, entity: str) -> dt.datetime | None:
        value = self._stored_watermark(entity)
        if value is None or self.journaled:
            return None
        assert isinstance(value, dict) and "changed_at" in value, f"{entity}: watermark {value!r}"
        return dt.datetime.fromisoformat(value["changed_at"]).replace(tzinfo=None)

    @property
    def journaled(self) -> bool:
        return self.stand.tracking == "auto"

    def _file(self, entity: str) -> PhysicalFile:
        return self.products if entity == "product" else self.stock

    def _read(self, entity: str, mode: str, changes: ChangeRange | None = None) -> tuple[str, list[Record]]:
        """What the run reads, as the contract says (8, 10); returns the effective mode too."""
        rows, decode = (self.products.rows, decode_product) if entity == "product" else (self.stock.rows, decode_stock)
        records = [decode(row) for row in rows]
        if changes is not None:  # the raw (CHGDAT, CHGTIM) pair in [since, until), as Db2 compares the numbers
            since = to_cyymmdd(dt.datetime.fromisoformat(changes.since))
            until = to_cyymmdd(dt.datetime.fromisoformat(changes.until)) if changes.until else None
            return mode, [record for record, row in zip(records, rows, strict=True)
                          if since <= (row["CHGDAT"], row["CHGTIM"]) and (until is None or
                                                                          (row["CHGDAT"], row["CHGTIM"]) < until)]
        watermark = self._stored_watermark(entity)
        if mode == "incremental" and watermark is None:
            mode = "full"
        if mode == "replay":
            return mode, [record for record in records if record.exact_key in self.models[entity].quarantine]
        if mode == "full":
            return mode, records
        if self.journaled:  # the keys the journal names since the last committed run, read again from the file
            file = self._file(entity)
            return mode, [record for record, row in zip(records, rows, strict=True) if file.key(row) in file.changed]
        watermark = self._watermark(entity)
        date, time = to_cyymmdd(watermark - OVERLAP)  # type: ignore[operator]
        return mode, [record for record, row in zip(records, rows, strict=True)
                      if row["CHGDAT"] > date or (row["CHGDAT"] == date and row["CHGTIM"] >= time)]

    def _run(self, entity: str, mode: str, failure: Failure | None, changes: ChangeRange | None = None) -> None:
        spec = PRODUCT if entity == "product" else STOCK
        source = As400Source(self.stand.settings.replaced(batch_rows=self.batch_rows))
        fired = []

        def kill(report: Any) -> None:
            if failure is not None and report.batches == failure[1] and not fired:
                fired.append(True)
                if failure[0] == "source":
                    self.stand.terminate_reader_sessions()
                else:
                    terminate_run_session(self.engine)

        effective, read = self._read(entity, mode, changes)
        self.stand.counter.runs += 1
        described = f"{entity} {mode} run" + (f", {failure[0]} session killed after batch {failure[1]}"
                                              if failure else "")
        try:
            run_sync(spec, source, self.stand.engine, mode=mode, changes=changes, on_batch=kill)  # type: ignore[arg-type]
        except Exception as exc:
            if not fired:
                raise AssertionError(f"{described}: the run raised {type(exc).__name__}: {exc}") from exc
            self.check_failed_run(entity, described)
            return
        model = self.models[entity]
        products = self.models["product"]
        outcome = model.apply(read, effective, parent_live=products.live if model.parent else None,
                              deleted_at_source=self._deleted(entity, effective))
        if effective not in ("replay", "backfill"):  # neither moves the journal position
            self._file(entity).committed()
        self._check(entity, described, outcome)

    def _deleted(self, entity: str, mode: str) -> set[Any]:
        """Journal, incremental: the target keys of rows deleted (or re-keyed away) whose key no row holds now."""
        if not self.journaled or mode != "incremental":
            return set()
        file = self._file(entity)
        decode = decode_product if entity == "product" else decode_stock
        held = {file.key(row) for row in file.rows}
        return {decode(row).target_key for row in file.lost
                if file.key(row) not in held and decode(row).target_key is not None}

    def _check(self, entity: str, described: str, outcome: Outcome) -> None:
        problems = []
        watermark = self._watermark(entity)
        if watermark is not None and watermark > dt.datetime.now():
            problems.append(f"{entity}: watermark {watermark} is past the source's current time (contract 8)")
        self.check_run(entity, described, outcome, problems)


KEYLESS = {'"PRODUCTLIB"."PRODUCTS"': ('"PRODUCTS_PK"', '"ITEMNO"'),
           '"INVENTORYLIB"."INVENTORY"': ('"INVENTORY_PK"', '"ITEMNO", "WHSE"')}


@pytest.fixture(params=["stamps", "auto"], ids=["change stamps", "journal"])
def as400_stand(request: pytest.FixtureRequest, as400_owner_url: str, app_url: str) -> Iterator[As400Stand]:
    """The stand-in's files without their primary keys for the test (DDS physical files without UNIQUE: real
    IBM i files hold duplicate keys), given back afterwards; once read by change stamps, once by journal."""
    create_schema(as400_owner_url)
    counter = StepCounter(f"as400 {request.param}")
    stand = As400Stand(as400_owner_url, empty_app_database(app_url), app_url, counter, request.param)
    for table, (constraint, _) in KEYLESS.items():
        stand.sql(f"alter table {table} drop constraint if exists {constraint}")
    try:
        yield stand
    finally:
        stand.reset()
        for table, (constraint, columns) in KEYLESS.items():
            stand.sql(f"alter table {table} add constraint {constraint} primary key ({columns})")
        stand.owner.close()
        print(counter.report())


def test_as400_sync_agrees_with_the_reference_model(as400_stand: As400Stand) -> None:
    """Invariant after every run: every source record read is live with its decoded values or open in the
    quarantine under its exact key; counts add up and match the model (contract 1-11)."""
    machine = type("As400ModelMachine", (As400Machine,), {"stand": as400_stand})
    run_state_machine_as_test(machine, settings=model_settings())
    as400_stand.counter.assert_enough_steps()

