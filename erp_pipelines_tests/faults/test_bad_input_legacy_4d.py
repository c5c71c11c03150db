"""Bad input from the 4D ERP: each kind is quarantined with its reason while the rest loads, no run ends in a
traceback, and once the source is fixed, replay loads the record exactly once.

Bad values the emulator's typed store can hold (NaN, infinities, empty dates, impossible times, control
characters, orphans...) are stored; those only a misbehaving server sends (``31!2!2020``, text or an object
where a number belongs, a bare ``NaN`` token, an unpaired surrogate, a NUL, an integer beyond 64 bits) are
served through the emulator's raw-value hook over valid stored values, so clearing the hook is their fix.
One scenario serves every case: seed, plant, sync, sync again (nothing quarantined twice), fix, replay,
and the next incremental run, which must find nothing new.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec, specs_for
from erp_pipelines.core.source import SchemaDriftError
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sources.legacy_4d.resource import Legacy4DResource
from erp_pipelines_tests.support.bad_input import (
    PhaseReader,
    Scenario,
    assert_good_rows_loaded,
    assert_quarantined_with_reason,
    assert_rerun_quarantined_nothing_twice,
)
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME, start_emulator
from erp_pipelines_tests.support.sandbox import empty_app_database
from erp_sandbox.legacy_4d import schema
from erp_sandbox.legacy_4d.schema import Attribute, qi
from erp_sandbox.legacy_4d.seed import seed_store
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

SPECS = specs_for("legacy_4d")
INJECTION = "Robert'); DROP TABLE erp_product;--"


def product(pid: int, **values: Any) -> dict[str, Any]:
    return {"ProductID": pid, "ProductName": f"Valve {pid}", "Description": "spare part", "SKU": f"SKU-{pid}",
            "Category": "Valves", "Price": 10.5, "Cost": 4.25, "TaxRate": 19.0, "IsPurchased": True,
            "IsManufactured": False, "CreatedDate": "2024-05-01"} | values


def order(oid: int, **values: Any) -> dict[str, Any]:
    return {"OrderID": oid, "CustomerID": 1, "OrderDate": "2025-03-01", "OrderTime": 36_000_000,
            "DeliveryDate": None, "Status": "OPEN", "TotalAmount": 100.0, "Currency": "EUR"} | values


def inventory(iid: int, **values: Any) -> dict[str, Any]:
    return {"InventoryID": iid, "ProductID": 1, "Warehouse": "MAIN", "QuantityOnHand": 5.0,
            "QuantityReserved": 0.0, "ReorderLevel": 1.0, "LastCountDate": "2025-01-01"} | values


def bom_line(bid: int, **values: Any) -> dict[str, Any]:
    return {"BomID": bid, "ParentProductID": 1, "ComponentProductID": 2, "Quantity": 2.0, "Unit": "pcs"} | values


def customer(cid: int, **values: Any) -> dict[str, Any]:
    return {"CustomerID": cid, "CustomerName": "Acme GmbH", "Email": "buyer@acme.example", "IsActive": True,
            "CreatedDate": "2024-01-01"} | values


@dataclass(frozen=True)
class Case:
    """One kind of bad input: the stored record (and what the server sends instead), the quarantine's reason,
    the fix (stored changes; values sent through the raw-value hook are fixed by clearing it)."""

    kind: str
    entity: str
    record: dict[str, Any]
    rule: str | None  # the rule recorded (prefix); None: the record is not bad and must load as sent
    reason: str  # part of the quarantine message, naming the column
    fix: dict[str, Any] = field(default_factory=dict)
    sent: dict[str, Any] = field(default_factory=dict)
    loaded: dict[str, Any] = field(default_factory=dict)  # target values of a record that must load as sent
    also: tuple[dict[str, Any], ...] = ()  # other (good) records the case needs
    partners: int = 0  # other records the same fault quarantines (the product already holding a SKU)

    @property
    def key(self) -> int:
        return int(next(iter(self.record.values())))

    @property
    def dataclass(self) -> str:
        return get_spec(self.entity).source_table


def product_case(kind: str, pid: int, rule: str | None, reason: str, bad: dict[str, Any],
                 good: dict[str, Any] | None = None, **options: Any) -> Case:
    return Case(kind, "erp_product", product(pid, **bad), rule, reason, good or {}, **options)


CASES = [
    product_case("empty 4D date 0!0!0 where a date is required", 100_001, "created_on:not_nullable",
                 "created_on failed not_nullable", {"CreatedDate": None}, {"CreatedDate": "2024-05-02"}),
    product_case("impossible 4D date 31!2!2020", 100_002, "created_on:decode",
                 "created_on: CreatedDate='31!2!2020' is not a valid 4D date (d!m!yyyy)", {},
                 sent={"CreatedDate": "31!2!2020"}),
    product_case("date in another format (ISO)", 100_003, "created_on:decode",
                 "created_on: CreatedDate='2020-02-01' is not a valid 4D date", {}, sent={"CreatedDate": "2020-02-01"}),
    product_case("number where a date belongs", 100_004, "created_on:decode",
                 "created_on: CreatedDate='20200201' is not a valid 4D date", {}, sent={"CreatedDate": 20200201}),
    product_case("blank required text", 100_005, "name:not_blank", "name failed not_blank", {"ProductName": "   "},
                 {"ProductName": "Valve 100005"}),
    product_case("missing required text (null)", 100_006, "sku:not_nullable", "sku failed not_nullable",
                 {"SKU": None}, {"SKU": "SKU-100006"}),
    product_case("oversized text", 100_007, "name:str_length", "name failed str_length", {"ProductName": "X" * 250},
                 {"ProductName": "Valve 100007"}),
    product_case("duplicate SKU", 100_009, "duplicate_sku",
                 "(sku='SKU-100008') would be held by more than one erp_product: (legacy_id=100008) (this read)",
                 {"SKU": "SKU-100008"}, {"SKU": "SKU-100009"}, also=(product(100_008),), partners=1),
    product_case("negative price", 100_010, "list_price:greater_than_or_equal_to",
                 "list_price failed greater_than_or_equal_to(0)", {"Price": -1.0}, {"Price": 1.0}),
    product_case("NaN (stored)", 100_011, "list_price:decode",
                 "list_price: Price='NaN' is not a decimal number that fits", {"Price": float("nan")}, {"Price": 2.0}),
    product_case("+Infinity", 100_012, "cost_price:decode",
                 "cost_price: Cost='Infinity' is not a decimal number that fits", {"Cost": float("inf")},
                 {"Cost": 1.0}),
    product_case("bare NaN token in the JSON", 100_013, "tax_rate:decode",
                 "tax_rate: TaxRate=nan is not a decimal number that fits", {}, sent={"TaxRate": float("nan")}),
    product_case("numeric overflow for NUMERIC(14,4)", 100_014, "list_price:decode",
                 "is not a decimal number that fits", {"Price": 1e15}, {"Price": 3.0}),
    product_case("more decimals than the column's scale", 100_015, "list_price:decode",
                 "list_price: Price='12.00001' is not a decimal number that fits", {"Price": 12.00001},
                 {"Price": 12.0}),
    product_case("value out of range (tax rate 150 %)", 100_016, "tax_rate:in_range", "tax_rate failed in_range",
                 {"TaxRate": 150.0}, {"TaxRate": 7.0}),
    product_case("text where a number belongs", 100_017, "list_price:decode",
                 "list_price: Price='twelve' is not a decimal number that fits", {}, sent={"Price": "twelve"}),
    product_case("object where a number belongs", 100_018, "list_price:decode",
                 """list_price: Price='{"amount": 5}' is a JSON object or array, not a value""", {},
                 sent={"Price": {"amount": 5}}),
    product_case("object where text belongs", 100_019, "name:decode",
                 """name: ProductName='{"en": "Valve"}' is a JSON object or array, not a value""", {},
                 sent={"ProductName": {"en": "Valve"}}),
    product_case("array where text belongs", 100_020, "description:decode",
                 """description: Description='["spare", "part"]' is a JSON object or array""", {},
                 sent={"Description": ["spare", "part"]}),
    product_case("boolean as unknown text", 100_021, "is_purchased:decode",
                 "is_purchased: IsPurchased='yes' is not a boolean", {}, sent={"IsPurchased": "yes"}),
    product_case("null in a required boolean", 100_022, "is_manufactured:not_nullable",
                 "is_manufactured failed not_nullable", {"IsManufactured": None}, {"IsManufactured": True}),
    product_case("control characters", 100_023, "name:no_control_characters", "name failed no_control_characters",
                 {"ProductName": "Valve\x01\x1b[0m"}, {"ProductName": "Valve"}),
    product_case("NUL character", 100_024, "description:no_control_characters", r"(value 'spare\x00part')", {},
                 sent={"Description": "spare\x00part"}),
    product_case("unpaired surrogate (invalid Unicode)", 100_025, "name:no_replacement_characters",
                 "name failed no_replacement_characters", {}, sent={"ProductName": "Valve \ud800"}),
    product_case("replacement character U+FFFD", 100_026, "description:no_replacement_characters",
                 "description failed no_replacement_characters", {"Description": "M\ufffdller"},
                 {"Description": "Müller"}),
    product_case("injection-looking text", 100_027, None, "", {"ProductName": INJECTION,
                                                               "Description": "<script>alert(1)</script>"},
                 loaded={"name": INJECTION, "description": "<script>alert(1)</script>"}),
    product_case("boolean as text 'true'", 100_028, None, "", {}, sent={"IsPurchased": "true"},
                 loaded={"is_purchased": True}),
    product_case("number as text", 100_029, None, "", {}, sent={"Price": "12.50"}, loaded={"list_price": 12.5}),
    Case("malformed email", "erp_customer", customer(900_001, Email="not-an-email"), "email:str_matches",
         "email failed str_matches", {"Email": "buyer@acme.example"}),
    Case("time of day beyond 24 h", "erp_order", order(900_001, OrderTime=90_000_000), "order_time:decode",
         "order_time: OrderTime=90000000 is not a time of day in milliseconds", {"OrderTime": 36_000_000}),
    Case("negative time", "erp_order", order(900_002, OrderTime=-1000), "order_time:decode",
         "order_time: OrderTime=-1000 is not a time of day", {"OrderTime": 0}),
    Case("missing reference key (null)", "erp_order", order(900_003, CustomerID=None),
         "customer_legacy_id:not_nullable", "customer_legacy_id failed not_nullable", {"CustomerID": 2}),
    Case("orphan (parent missing)", "erp_order", order(900_004, CustomerID=99_999), "missing_parent:erp_customer",
         "parent erp_customer (customer_legacy_id=99999) is not live in the application database", {"CustomerID": 3}),
    Case("value outside the code list", "erp_order", order(900_005, Status="LOST"), "status:isin",
         "status failed isin", {"Status": "CANCELLED"}),
    Case("reference beyond 64 bits", "erp_order", order(900_006), "customer_legacy_id:decode",
         "customer_legacy_id: CustomerID='99999999999999999999' is not a whole number",
         sent={"CustomerID": 99_999_999_999_999_999_999}),
    Case("delivery before the order date", "erp_order", order(900_007, DeliveryDate="2025-02-01"),
         "erp_order:delivery_date is before order_date", "delivery_date is before order_date",
         {"DeliveryDate": "2025-03-04"}),
    Case("-Infinity quantity", "erp_inventory", inventory(900_001, QuantityOnHand=float("-inf")),
         "quantity_on_hand:decode", "QuantityOnHand='-Infinity' is not a decimal number", {"QuantityOnHand": 3.0}),
    Case("negative quantity", "erp_inventory", inventory(900_002, QuantityReserved=-3.0),
         "quantity_reserved:greater_than_or_equal_to", "quantity_reserved failed greater_than_or_equal_to(0)",
         {"QuantityReserved": 3.0}),
    Case("text where a quantity belongs", "erp_inventory", inventory(900_003), "quantity_on_hand:decode",
         "quantity_on_hand: QuantityOnHand='lots' is not a decimal number", sent={"QuantityOnHand": "lots"}),
    Case("child of a quarantined parent", "erp_inventory", inventory(900_004, ProductID=100_001),
         "missing_parent:erp_product", "parent erp_product (product_legacy_id=100001)"),
    Case("product is its own component", "erp_bill_of_material", bom_line(900_001, ParentProductID=3,
                                                                           ComponentProductID=3),
         "erp_bill_of_material:a product cannot be its own component", "a product cannot be its own component",
         {"ComponentProductID": 4}),
    Case("zero quantity", "erp_bill_of_material", bom_line(900_002, Quantity=0.0), "quantity:greater_than",
         "quantity failed greater_than(0)", {"Quantity": 0.5}),
]
REJECTED = [case for case in CASES if case.rule]
LOADED = [case for case in CASES if not case.rule]


def send_raw_values(server: EmulatorServer, dataclass: str, key: int, values: dict[str, Any]) -> None:
    """Make the server send these values for one entity (json.dumps keeps NaN and surrogates as sent)."""
    response = requests.post(f"{server.base_url}/_emulator/raw_values", timeout=10, data=json.dumps(
        {"dataclass": dataclass, "key": key, "values": values}))
    assert response.status_code == 201, response.text


def _resource(server: EmulatorServer) -> Legacy4DResource:
    """No overlap: the raw values the emulator sends are changed without a stamp (not something 4D can do), so
    re-reading unchanged stamps would count their removal as an edit."""
    return Legacy4DResource(host="127.0.0.1", port=server.port, username=USERNAME, password=PASSWORD,
                            overlap_stamps=0)


@pytest.fixture(scope="module")
def scenario(app_url: str, legacy4d_session_store: LegacyStore) -> Iterator[Scenario]:
    store = legacy4d_session_store
    store.truncate()
    seed_store(store.url, products=400, seed=11, bad_share=0.0)
    server = start_emulator(store.url)
    try:
        yield _play(empty_app_database(app_url), store, server)
    finally:
        server.stop()


def _play(engine: sa.Engine, store: LegacyStore, server: EmulatorServer) -> Scenario:
    played = Scenario()
    for case in CASES:
        for record in (*case.also, case.record):
            store.insert(get_spec(case.entity).source_table, [record])
        if case.sent:
            send_raw_values(server, case.dataclass, case.key, case.sent)
    source = _resource(server).source()

    def sync(phase: str, mode: str) -> None:
        played.reports[phase] = {spec.entity: run_sync(spec, source, engine, mode=mode) for spec in SPECS}

    with engine.connect() as connection:
        read = PhaseReader(connection, played)

        def found(when: str) -> None:
            for case in CASES:
                read.count_live(case.kind, when, get_spec(case.entity).target_table,
                                {"legacy_id": case.key} | case.loaded)
            connection.commit()

        sync("first run", "incremental")
        read.after_first_run(SPECS, source.count_rows)
        found("first run")
        sync("full rerun", "full")
        read.after_rerun()
        for case in REJECTED:
            if case.fix:
                store.update(case.dataclass, case.key, case.fix)
        requests.delete(f"{server.base_url}/_emulator/raw_values", timeout=10).raise_for_status()
        sync("replay", "replay")
        sync("next run", "incremental")
        read.at_the_end()
        found("end")
    return played


def test_no_run_fails_or_raises_on_bad_data(scenario: Scenario) -> None:
    """Every phase finished with a status (run_sync returned); bad data never fails or aborts a run."""
    assert scenario.failed_runs == 0
    first = scenario.reports["first run"]
    assert {entity for entity, report in first.items() if report.status == "PARTIALLY_COMPLETED"} == {
        case.entity for case in REJECTED}


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.entity)
def test_every_good_row_loads(scenario: Scenario, spec: TableSpec) -> None:
    assert_good_rows_loaded(scenario, spec, sum(1 + case.partners for case in REJECTED if case.entity == spec.entity))


@pytest.mark.parametrize("case", REJECTED, ids=lambda case: case.kind)
def test_bad_record_is_quarantined_with_its_reason(scenario: Scenario, case: Case) -> None:
    (entry,) = scenario.quarantined[(case.entity, str(case.key))]
    assert_quarantined_with_reason(entry, case.rule or "", case.reason, get_spec(case.entity))
    assert scenario.found[case.kind]["first run"] == 0


@pytest.mark.parametrize("case", LOADED, ids=lambda case: case.kind)
def test_odd_but_valid_record_loads_as_sent(scenario: Scenario, case: Case) -> None:
    """Text that looks like SQL or HTML is data; "true" and "12.50" as text are the boolean and the number."""
    assert scenario.found[case.kind] == {"first run": 1, "end": 1}
    assert (case.entity, str(case.key)) not in scenario.quarantined


def test_raw_record_of_a_nul_character_is_kept_readable(scenario: Scenario) -> None:
    """JSON in PostgreSQL cannot hold NUL: the quarantine keeps the record with the NUL spelled out."""
    (entry,) = scenario.quarantined[("erp_product", "100024")]
    assert entry.raw_record["Description"] == "spare\\u0000part"


def test_a_rerun_quarantines_nothing_twice_and_closes_nothing_still_bad(scenario: Scenario) -> None:
    assert_rerun_quarantined_nothing_twice(scenario, sum(1 + case.partners for case in REJECTED))


@pytest.mark.parametrize("case", REJECTED, ids=lambda case: case.kind)
def test_fixed_record_loads_exactly_once_and_closes_its_entry(scenario: Scenario, case: Case) -> None:
    assert scenario.found[case.kind]["end"] == 1
    (entry,) = scenario.closed[(case.entity, str(case.key))]  # never quarantined a second time
    assert entry.resolved_at is not None
    assert scenario.phase_of(entry.resolved_by_run_id) == "replay"


def test_replay_loads_each_fixed_record_once_and_the_next_run_finds_nothing_new(scenario: Scenario) -> None:
    for spec in SPECS:
        fixed = sum(1 + case.partners for case in REJECTED if case.entity == spec.entity)
        replay = scenario.reports["replay"][spec.entity]
        assert (replay.processed, replay.created, replay.rejected) == (fixed, fixed, 0), spec.entity
        next_run = scenario.reports["next run"][spec.entity]
        assert (next_run.created, next_run.rejected, next_run.status) == (0, 0, "COMPLETED"), spec.entity


@pytest.fixture
def altered_products(legacy4d_store: LegacyStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Change the Products dataclass in the 4D structure (the emulator's catalog, and its table for new fields)."""
    added: list[Attribute] = []

    def _alter(drop: tuple[str, ...] = (), add: tuple[Attribute, ...] = ()) -> None:
        products = schema.DATACLASSES["Products"]
        attributes = tuple(a for a in products.attributes if a.name not in drop) + add
        monkeypatch.setitem(schema.DATACLASSES, "Products", dataclasses.replace(products, attributes=attributes))
        with legacy4d_store.transaction() as cursor:
            for attribute in add:
                cursor.execute(f"alter table {qi('Products')} add column {qi(attribute.name)} "
                               f"{schema.PG_TYPES[attribute.type]}")
        added.extend(add)

    yield _alter
    with legacy4d_store.transaction() as cursor:
        for attribute in added:
            cursor.execute(f"alter table {qi('Products')} drop column {qi(attribute.name)}")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"drop": ("Cost", "TaxRate")}, "column(s) Cost, TaxRate expected by the 'erp_product' spec are missing"),
        ({"add": (Attribute("Color", "string"), Attribute("Weight", "number"))},
         "column(s) Color, Weight at the source are not in the 'erp_product' spec"),
    ],
    ids=["missing attributes", "unexpected attributes"],
)
def test_schema_drift_fails_the_asset_naming_the_attributes(
    legacy4d_server: EmulatorServer, altered_products: Callable[..., None],
    failed_materialization: Callable, change: dict, named: str,
) -> None:
    altered_products(**change)
    description, error = failed_materialization(get_spec("erp_product"), {"legacy_4d": _resource(legacy4d_server)})
    assert f"schema drift in 4D Products: {named}" in description
    assert SchemaDriftError.__name__ in error and named in error
