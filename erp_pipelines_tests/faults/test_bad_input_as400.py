"""Bad input from the AS400: each kind is quarantined with its reason while the rest loads, no run ends in a
traceback, and once the source is fixed, replay (or the next run) loads the record exactly once.

One scenario serves every case, so the stand-in is synced a handful of times, not once per kind: clean
data is seeded, every bad record is planted, the four tables are synced, synced again (nothing may be
quarantined twice), every record is fixed the way an operator would (by SQL, which leaves the change stamp
alone, so only replay can see it; a corrected key or a new parent is new to the sync), then replay, the
next run, a second replay for the child whose parent arrived, and a last full run that must find nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec, specs_for
from erp_pipelines.core.source import SchemaDriftError
from erp_pipelines.core.spec import Column, TableSpec
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sources.as400.adapter import to_cyymmdd_hhmmss
from erp_pipelines.sources.as400.decoders import EbcdicText
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines_tests.support.bad_input import (
    PhaseReader,
    Scenario,
    assert_good_rows_loaded,
    assert_quarantined_with_reason,
    assert_rerun_quarantined_nothing_twice,
)
from erp_pipelines_tests.support.sandbox import as400_test_resource, empty_app_database
from erp_sandbox.as400.seed import SeedManifest, seed_as400

pytestmark = pytest.mark.integration

SPECS = specs_for("as400")
PRODUCTS, MEASUREMENTS, PRICING, INVENTORY = (spec.source_table for spec in SPECS)
OLD_STAMP = {"CHGDAT": 1250101, "CHGTIM": 120000}  # valid, and older than anything the seed writes
Write = tuple[str, dict[str, Any]]


def _table(name: str) -> str:
    library, table = name.split(".")
    return f'"{library}"."{table}"'


def insert(table: str, **values: Any) -> Write:
    columns = ", ".join(f'"{name}"' for name in values)
    marks = ", ".join(f"%({name})s" for name in values)
    return f"insert into {_table(table)} ({columns}) values ({marks})", values


def update(table: str, where: dict[str, Any], **values: Any) -> Write:
    sets = ", ".join(f'"{name}" = %(set_{name})s' for name in values)
    match = " and ".join(f'"{name}" = %(key_{name})s' for name in where)
    params = {f"set_{k}": v for k, v in values.items()} | {f"key_{k}": v for k, v in where.items()}
    return f"update {_table(table)} set {sets} where {match}", params


def a_product(item: str, **values: Any) -> Write:
    good = {"ITEMDESC": "GOOD PRODUCT", "SKU": f"SKU-{item}", "ITEMCLS": "TOOL", "UOM": "EA", "ITEMSTS": "A",
            "CRTDAT": 1200101, **OLD_STAMP}
    return insert(PRODUCTS, ITEMNO=item, **(good | values))


def a_stock(item: str, warehouse: str, **values: Any) -> Write:
    good = {"ONHAND": 10, "ALLOC": 0, "ONORD": 0, "UOM": "EA", "BIN": "B00001", "LOTCTL": "N", **OLD_STAMP}
    return insert(INVENTORY, ITEMNO=item, WHSE=warehouse, **(good | values))


def a_price(item: str, **values: Any) -> Write:
    good = {"PRCLST": "PROM", "EFFDAT": 1250601, "EXPDAT": 0, "UNITPRC": 9.99, "CURCDE": "EUR", **OLD_STAMP}
    return insert(PRICING, ITEMNO=item, **(good | values))


def now_stamp() -> dict[str, int]:
    date, time = to_cyymmdd_hhmmss(dt.datetime.now().replace(microsecond=0))
    return {"CHGDAT": date, "CHGTIM": time}


@dataclass(frozen=True)
class Case:
    """One kind of bad input: how it is planted, what the quarantine must say, how it is fixed."""

    kind: str
    entity: str
    key: str  # the record's exact key values joined by '|' (a label for these cases: none holds a '|')
    plant: list[Write]
    rule: str | None  # the rule recorded (prefix); None: the record is not bad and must load verbatim
    reason: str  # part of the quarantine message, naming the column
    fix: list[Write]
    found: dict[str, Any]  # the record in the target table once loaded
    closed_by: str = "replay"
    copies: int = 1  # records quarantined under this key (every copy of a duplicate key)
    partners: int = 0  # other records the same fault quarantines (the product already holding a SKU)

    @property
    def quarantined(self) -> int:
        return self.copies + self.partners


def product_case(kind: str, item: str, rule: str | None, reason: str, bad: dict[str, Any],
                 good: dict[str, Any] | None = None) -> Case:
    return Case(kind, "product", item, [a_product(item, **bad)], rule, reason,
                [update(PRODUCTS, {"ITEMNO": item}, **good)] if good else [], {"item_number": item})


def stock_case(kind: str, item: str, warehouse: str, rule: str, reason: str, bad: dict[str, Any],
               good: dict[str, Any]) -> Case:
    return Case(kind, "product_stock", f"{item}|{warehouse}", [a_stock(item, warehouse, **bad)], rule, reason,
                [update(INVENTORY, {"ITEMNO": item, "WHSE": warehouse}, **good)],
                {"item_number": item, "warehouse": warehouse})


def price_case(kind: str, item: str, rule: str, reason: str, bad: dict[str, Any], good: dict[str, Any]) -> Case:
    return Case(kind, "product_pricing", f"{item}|PROM|1250601", [a_price(item, **bad)], rule, reason,
                [update(PRICING, {"ITEMNO": item, "PRCLST": "PROM"}, **good)],
                {"item_number": item, "price_list": "PROM", "effective_on": dt.date(2025, 6, 1)})


INJECTION = "'; DROP TABLE product; --"
CASES = [
    product_case("CYYMMDD month 13", "ZZ-MONTH13", "created_on:decode",
                 "created_on: CRTDAT=1251341 is not a valid CYYMMDD date", {"CRTDAT": 1251341}, {"CRTDAT": 1200101}),
    product_case("negative CYYMMDD date", "ZZ-NEGDATE", "created_on:decode",
                 "created_on: CRTDAT=-1250101 is not a valid CYYMMDD date", {"CRTDAT": -1250101}, {"CRTDAT": 0}),
    product_case("CYYMMDD 0 where a date is required", "ZZ-NOSTAMP", "source_changed_at:not_nullable",
                 "source_changed_at failed not_nullable", {"CHGDAT": 0}, OLD_STAMP),
    product_case("impossible HHMMSS time 25:61:99", "ZZ-BADTIME", "source_changed_at:decode",
                 "CHGTIM=256199 is not a valid CYYMMDD date with HHMMSS time", {"CHGTIM": 256199}, OLD_STAMP),
    product_case("negative HHMMSS time", "ZZ-NEGTIME", "source_changed_at:decode",
                 "CHGTIM=-1 is not a valid CYYMMDD date with HHMMSS time", {"CHGTIM": -1}, OLD_STAMP),
    product_case("blank required text", "ZZ-BLANK", "description:not_blank", "description failed not_blank",
                 {"ITEMDESC": ""}, {"ITEMDESC": "FIXED"}),
    Case("duplicate SKU", "product", "ZZ-DUPSKU", [a_product("ZZ-DUPSKU", SKU="SKU-SHARED"),
                                                  a_product("ZZ-DUPSKU2", SKU="SKU-SHARED")], "duplicate_sku",
         "(sku='SKU-SHARED') would be held by more than one product: (item_number='ZZ-DUPSKU') (this read); "
         "(item_number='ZZ-DUPSKU2') (this read)", [update(PRODUCTS, {"ITEMNO": "ZZ-DUPSKU"}, SKU="SKU-ZZ-DUPSKU-2")],
         {"item_number": "ZZ-DUPSKU"}, partners=1),
    product_case("unknown status flag", "ZZ-FLAG", "is_active:decode", "ITEMSTS='X' is not a known flag value",
                 {"ITEMSTS": "X"}, {"ITEMSTS": "I"}),
    product_case("control characters", "ZZ-CTRL", "description:no_control_characters",
                 r"description failed no_control_characters", {"ITEMDESC": "BOLT\x07\x1b[0m"}, {"ITEMDESC": "BOLT"}),
    product_case("C1 control character (NEL, U+0085)", "ZZ-C1", "description:no_control_characters",
                 r"(value 'BOLT\x85NUT')", {"ITEMDESC": "BOLT\x85NUT"}, {"ITEMDESC": "BOLT NUT"}),
    product_case("EBCDIC substitution character (U+001A)", "ZZ-SUB", "description:no_control_characters",
                 r"(value 'M\x1aLLER')", {"ITEMDESC": "M\x1aLLER"}, {"ITEMDESC": "MÜLLER"}),
    product_case("replacement character U+FFFD", "ZZ-FFFD", "description:no_replacement_characters",
                 "description failed no_replacement_characters", {"ITEMDESC": "M\ufffdLLER"}, {"ITEMDESC": "MÜLLER"}),
    Case("injection-looking text", "product", "ZZ-INJECT", [a_product("ZZ-INJECT", ITEMDESC=INJECTION,
                                                                    SKU="1' OR '1'='1")], None, "", [],
         {"item_number": "ZZ-INJECT", "description": INJECTION, "sku": "1' OR '1'='1"}),
    product_case("change stamp in the future (2099-12-31)", "ZZ-FUTURE", None, "", {"CHGDAT": 1991231}),
    Case("blank key", "product", "", [a_product("", SKU="SKU-NOKEY")], "item_number:not_blank",
         "item_number failed not_blank", [update(PRODUCTS, {"ITEMNO": ""}, ITEMNO="ZZ-NOKEY", **now_stamp())],
         {"item_number": "ZZ-NOKEY"}),
    stock_case("negative quantity", "ITM000000003", "Q01", "on_hand:greater_than_or_equal_to",
               "on_hand failed greater_than_or_equal_to(0) (value -5.000)", {"ONHAND": -5}, {"ONHAND": 5}),
    stock_case("blank flag", "ITM000000003", "Q02", "is_lot_controlled:decode", "LOTCTL=' ' is not a known flag",
               {"LOTCTL": " "}, {"LOTCTL": "Y"}),
    stock_case("child of a quarantined parent", "ZZ-MONTH13", "Q01", "missing_parent:product",
               "parent product (item_number='ZZ-MONTH13')", {}, {"BIN": "B00002"}),
    Case("blank part of a composite key", "product_stock", "ITM000000004|", [a_stock("ITM000000004", "")],
         "warehouse:not_blank", "warehouse failed not_blank",
         [update(INVENTORY, {"ITEMNO": "ITM000000004", "WHSE": ""}, WHSE="Q03", **now_stamp())],
         {"item_number": "ITM000000004", "warehouse": "Q03"}),
    Case("orphan (parent missing)", "product_stock", "NOSUCHITEM|001", [a_stock("NOSUCHITEM", "001")],
         "missing_parent:product", "parent product (item_number='NOSUCHITEM') is not live in the application database",
         [a_product("NOSUCHITEM", **now_stamp())], {"item_number": "NOSUCHITEM", "warehouse": "001"},
         closed_by="replay after the next run"),
    Case("duplicate key in one read", "product_stock", "ITM000000005|001",
         [a_stock("ITM000000005", "001", ONHAND=777)], "duplicate_key",
         "duplicate business key (item_number='ITM000000005', warehouse='001'): read 2 times in this read",
         [(f'delete from {_table(INVENTORY)} where "ITEMNO" = %(item)s and "WHSE" = %(whse)s',
           {"item": "ITM000000005", "whse": "001"}), a_stock("ITM000000005", "001", ONHAND=777)],
         {"item_number": "ITM000000005", "warehouse": "001", "on_hand": 777}, copies=2),
    price_case("CYYMMDD 31 February", "ITM000000006", "expires_on:decode",
               "expires_on: EXPDAT=1230231 is not a valid CYYMMDD date", {"EXPDAT": 1230231}, {"EXPDAT": 0}),
    price_case("sentinel date 9999999", "ITM000000007", "expires_on:decode",
               "expires_on: EXPDAT=9999999 is not a valid CYYMMDD date", {"EXPDAT": 9999999}, {"EXPDAT": 1261231}),
    price_case("negative price", "ITM000000008", "unit_price:greater_than_or_equal_to",
               "unit_price failed greater_than_or_equal_to(0)", {"UNITPRC": -1}, {"UNITPRC": 1}),
    price_case("currency code not ISO 4217-shaped", "ITM000000009", "currency:str_matches",
               "currency failed str_matches('^[A-Z]{3}$') (value 'us$')", {"CURCDE": "us$"}, {"CURCDE": "USD"}),
    price_case("expiry before the start date", "ITM000000010", "product_pricing:expires_on is before effective_on",
               "expires_on is before effective_on", {"EXPDAT": 1250501}, {"EXPDAT": 1251231}),
    Case("zero where only positive values make sense", "product_measurement", "ITM000000011|WGT",
         [update(MEASUREMENTS, {"ITEMNO": "ITM000000011", "MEASTYP": "WGT"}, MEASVAL=0)], "value:greater_than",
         "value failed greater_than(0) (value 0.0000)",
         [update(MEASUREMENTS, {"ITEMNO": "ITM000000011", "MEASTYP": "WGT"}, MEASVAL=1.25)],
         {"item_number": "ITM000000011", "measure_type": "WGT", "value": 1.25}),
]
REJECTED = [case for case in CASES if case.rule]
LOADED = [case for case in CASES if not case.rule]


def _execute(owner_url: str, writes: list[Write]) -> None:
    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        for statement, params in writes:
            cursor.execute(statement, params)
    connection.close()


@pytest.fixture(scope="module")
def scenario(app_url: str, as400_owner_url: str) -> Iterator[Scenario]:
    seed_as400(as400_owner_url, products=200, warehouses=2, bad_share=0.0)
    # A DDS physical file without UNIQUE keys: duplicates exist on real IBM i, so the stand-in allows them here.
    _execute(as400_owner_url, [(f'alter table {_table(INVENTORY)} drop constraint "INVENTORY_PK"', {})])
    try:
        yield _play(empty_app_database(app_url), as400_owner_url, as400_test_resource())
    finally:
        _execute(as400_owner_url, [(f'alter table {_table(INVENTORY)} add constraint "INVENTORY_PK" '
                                    'primary key ("ITEMNO", "WHSE")', {})])


def _play(engine: sa.Engine, owner_url: str, as400: As400Resource) -> Scenario:
    played = Scenario()
    _execute(owner_url, [write for case in CASES for write in case.plant])

    def sync(phase: str, mode: str, specs: list = SPECS) -> None:
        played.reports.setdefault(phase, {}).update(
            {spec.entity: run_sync(spec, as400.source(), engine, mode=mode) for spec in specs})

    with engine.connect() as connection:
        read = PhaseReader(connection, played)

        def found(when: str) -> None:
            for case in CASES:
                read.count_live(case.kind, when, get_spec(case.entity).target_table, case.found)
            connection.commit()

        sync("first run", "incremental")
        read.after_first_run(SPECS, as400.source().count_rows)
        found("first run")
        sync("full rerun", "full")
        read.after_rerun()
        _execute(owner_url, [write for case in CASES for write in case.fix])
        sync("replay", "replay")
        sync("next run", "incremental")
        sync("replay after the next run", "replay", [get_spec("product_stock")])
        sync("final full run", "full")
        read.at_the_end()
        found("end")
    return played


def test_no_run_fails_or_raises_on_bad_data(scenario: Scenario) -> None:
    """Every phase finished with a status (run_sync returned); bad data never fails or aborts a run."""
    assert scenario.failed_runs == 0
    assert {report.status for report in scenario.reports["first run"].values()} == {"PARTIALLY_COMPLETED"}


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.entity)
def test_every_good_row_loads(scenario: Scenario, spec: TableSpec) -> None:
    assert_good_rows_loaded(scenario, spec, sum(case.quarantined for case in REJECTED if case.entity == spec.entity))


@pytest.mark.parametrize("case", REJECTED, ids=lambda case: case.kind)
def test_bad_record_is_quarantined_with_its_reason(scenario: Scenario, case: Case) -> None:
    entries = scenario.quarantined[(case.entity, case.key)]
    assert len(entries) == case.copies
    for entry in entries:
        assert_quarantined_with_reason(entry, case.rule or "", case.reason, get_spec(case.entity))
    assert scenario.found[case.kind]["first run"] == 0  # no copy of a duplicate is loaded either


@pytest.mark.parametrize("case", LOADED, ids=lambda case: case.kind)
def test_odd_but_valid_record_loads_verbatim(scenario: Scenario, case: Case) -> None:
    """Text that looks like SQL is data: stored character for character, found by its exact values."""
    assert scenario.found[case.kind] == {"first run": 1, "end": 1}
    assert (case.entity, case.key) not in scenario.quarantined


def test_a_rerun_quarantines_nothing_twice_and_closes_nothing_still_bad(scenario: Scenario) -> None:
    assert_rerun_quarantined_nothing_twice(scenario, sum(case.quarantined for case in REJECTED))


@pytest.mark.parametrize("case", REJECTED, ids=lambda case: case.kind)
def test_fixed_record_loads_exactly_once_and_closes_its_entry(scenario: Scenario, case: Case) -> None:
    assert scenario.found[case.kind]["end"] == 1
    entries = scenario.closed[(case.entity, case.key)]
    assert len(entries) == case.copies  # never quarantined a second time
    for entry in entries:
        assert entry.resolved_at is not None
        assert scenario.phase_of(entry.resolved_by_run_id) == case.closed_by


def test_replay_and_next_run_load_each_fixed_record_once(scenario: Scenario) -> None:
    replay = scenario.reports["replay"]
    waiting = {"product_stock": 1}  # the orphan waits for its parent, which only the next run reads
    for spec in SPECS:
        fixed_in_place = sum(1 + case.partners for case in REJECTED if case.entity == spec.entity
                             and case.closed_by == "replay" and case.key != "" and not case.key.endswith("|"))
        assert replay[spec.entity].processed == fixed_in_place + waiting.get(spec.entity, 0)
        assert replay[spec.entity].rejected == waiting.get(spec.entity, 0)
    assert scenario.reports["replay after the next run"]["product_stock"].created == 1
    final = {entity: (r.created, r.updated, r.rejected, r.status)
             for entity, r in scenario.reports["final full run"].items()}
    assert final == {spec.entity: (0, 0, 0, "COMPLETED") for spec in SPECS}


def test_a_future_change_stamp_does_not_move_the_watermark(scenario: Scenario) -> None:
    """PRODUCTS is journaled in the stand-in: its watermark is a journal position, which no stamp can move;
    stamp tracking's own guard against future stamps is tested in engine/test_nothing_lost.py."""
    watermark = scenario.reports["first run"]["product"].watermark_after
    assert set(watermark) == {"journal", "receiver", "sequence"}
    assert watermark["journal"] == "PRODUCTLIB/QSQJRN"
    stamped = scenario.reports["first run"]["product_measurement"].watermark_after
    assert dt.datetime.fromisoformat(stamped["changed_at"]) < dt.datetime.now() + dt.timedelta(days=1)


@pytest.fixture
def ccsid_65535_description(as400_source_sql: Callable[[str], None]) -> Iterator[Callable[[str, bytes], Write]]:
    """ITEMDESC as CHAR(40) FOR BIT DATA (CCSID 65535): the stand-in holds the EBCDIC bytes in a bytea column.

    Yields a function that writes an item's description bytes; the column is CHAR again afterwards.
    """
    as400_source_sql(f'alter table {_table(PRODUCTS)} alter column "ITEMDESC" drop default, '
                     "alter column \"ITEMDESC\" type bytea using convert_to(rtrim(\"ITEMDESC\"), 'UTF8')")

    def _write(item: str, raw: bytes) -> Write:
        return update(PRODUCTS, {"ITEMNO": item}, ITEMDESC=psycopg2.Binary(raw))

    try:
        yield _write
    finally:
        as400_source_sql(f'alter table {_table(PRODUCTS)} alter column "ITEMDESC" type char(40) using \'\', '
                         "alter column \"ITEMDESC\" set default ''")


def test_ebcdic_bytes_of_a_ccsid_65535_column_are_decoded_or_rejected(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_db: sa.Engine, as400_owner_url: str,
    ccsid_65535_description: Callable[[str, bytes], Write],
) -> None:
    """cp037 text decodes (accents too, trailing EBCDIC blanks dropped); bytes that are no text (a packed
    number, x'00' fill) are quarantined; once the ERP writes text, replay loads it."""
    seed(products=20, bad_share=0.0)
    product = get_spec("product")
    ebcdic = dataclasses.replace(product, columns=tuple(
        Column.of("description", "ITEMDESC", EbcdicText(), column.sql_type, nullable=False)
        if column.target == "description" else column for column in product.columns))
    texts = {f"ITM{n:09d}": f"SCHRAUBE GRÖSSE {n} ½ ZOLL" for n in range(1, 21)}
    raw = {item: text.ljust(40).encode("cp037") for item, text in texts.items()}
    raw["ITM000000002"] = b"\x00\x00\x01\x23\x4f" + b"\x40" * 35  # packed decimal in a text column
    _execute(as400_owner_url, [ccsid_65535_description(item, value) for item, value in raw.items()])

    report = run_sync(ebcdic, as400.source(), app_db)
    assert (report.status, report.created, report.rejected) == ("PARTIALLY_COMPLETED", 19, 1)
    with app_db.connect() as connection:
        loaded = dict(connection.execute(sa.text("select item_number, description from product")).all())
        entry = connection.execute(sa.text("select rules, error_message, raw_record from sync_error")).one()
    assert loaded == {item: text for item, text in texts.items() if item != "ITM000000002"}
    assert entry.rules == ["description:decode"]
    assert "ITEMDESC=000001234f4040" in entry.error_message and "is not EBCDIC text (CCSID 37)" in entry.error_message

    _execute(as400_owner_url, [ccsid_65535_description("ITM000000002", "FIXED".encode("cp037"))])
    replay = run_sync(ebcdic, as400.source(), app_db, mode="replay")
    assert (replay.created, replay.rejected) == (1, 0)
    with app_db.connect() as connection:
        assert connection.execute(sa.text(
            "select description from product where item_number = 'ITM000000002'")).scalar_one() == "FIXED"
        assert connection.execute(sa.text("select count(*) from sync_error where resolved_at is null")).scalar() == 0


@pytest.mark.parametrize(
    ("ddl", "restore", "named"),
    [
        ('drop column "BIN", drop column "LOTCTL"',
         """add column "BIN" char(10) not null default '', add column "LOTCTL" char(1) not null default 'N'""",
         "column(s) BIN, LOTCTL expected by the 'product_stock' spec are missing at the source"),
        ("""add column "COLOR" char(10) not null default '', add column "WEIGHT" decimal(9, 3)""",
         'drop column "COLOR", drop column "WEIGHT"',
         "column(s) COLOR, WEIGHT at the source are not in the 'product_stock' spec"),
    ],
    ids=["missing columns", "unexpected columns"],
)
def test_schema_drift_fails_the_asset_naming_the_columns(
    seed: Callable[..., SeedManifest], as400: As400Resource, as400_source_sql: Callable[[str], None],
    failed_materialization: Callable, ddl: str, restore: str, named: str,
) -> None:
    seed(products=10, warehouses=1, bad_share=0.0)
    as400_source_sql(f"alter table {_table(INVENTORY)} {ddl}")
    try:
        description, error = failed_materialization(get_spec("product_stock"), {"as400": as400})
    finally:
        as400_source_sql(f"alter table {_table(INVENTORY)} {restore}")
    assert f"schema drift in INVENTORYLIB.INVENTORY: {named}" in description
    assert SchemaDriftError.__name__ in error and named in error
