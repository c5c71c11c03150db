"""Model-based test of the 4D sync (issue 11): random changes through the emulator's REST server, random runs,
and after every run erp_product, erp_category, the open quarantine and the run's counts compared with the
reference model.

Source changes use 4D's documented REST writes only (`POST /rest/Products?$method=update` to create or change
an entity, `POST /rest/Products(key)?$method=delete`), so the emulator's data change tracking stamps them as 4D
does (`__GlobalStamp`, `__DeletedRecords`). The sync reads through small pages (2-4 entities) and small batches
(3-7), so SKU clashes and mixed JSON types (10 and 10.5 in one batch) land on every side of a boundary.

Decoding is the model's own, from 4D's documented REST formats (dates `d!m!yyyy` with `0!0!0` for "no date",
numbers as JSON numbers, booleans) and the contract; the derived categories use exactly the decoding of the
product's category column.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from erp_pipelines.catalog import get_spec
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sources.legacy_4d.adapter import DEFAULT_OVERLAP_STAMPS, Legacy4DSource
from erp_pipelines.sources.legacy_4d.client import Legacy4DClient
from erp_pipelines.sources.legacy_4d.session import SessionJar
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
    TargetRow,
    canonical_flag,
    canonical_number,
    canonical_raw,
)
from erp_pipelines_tests.support.django_app import DjangoApp
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME, start_emulator
from erp_pipelines_tests.support.sandbox import empty_app_database
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(run_time_limit())]

PRODUCT, CATEGORY = get_spec("erp_product"), get_spec("erp_category")


def _as_sent(value: object) -> object:
    return value


RAW_COLUMNS = {"ProductID": canonical_number, "ProductName": _as_sent, "Description": _as_sent, "SKU": _as_sent,
               "Category": _as_sent, "Price": canonical_number, "Cost": canonical_number,
               "TaxRate": canonical_number, "IsPurchased": canonical_flag, "IsManufactured": canonical_flag,
               "CreatedDate": _as_sent, "__GlobalStamp": canonical_number}
PRODUCT_VALUES = ("name", "description", "sku", "category", "list_price", "cost_price", "tax_rate", "is_purchased",
                  "is_manufactured", "created_on")
VIEWS = {
    "erp_product": TableView("erp_product", PRODUCT.target_table, PRODUCT.business_key, PRODUCT_VALUES, RAW_COLUMNS),
    "erp_category": TableView("erp_category", CATEGORY.target_table, CATEGORY.business_key, (),
                              {"Category": _as_sent}),
}
APPLICATION_VIEWS = {
    # The application's tables seen as the model sees a product: its category by name, live by deleted_at.
    "erp_product": TableView(
        "erp_product", "(select p.*, c.name as category from products_product p left join products_category c "
        "on c.id = p.category_id where p.legacy_id is not null)", PRODUCT.business_key, PRODUCT_VALUES, RAW_COLUMNS),
    "erp_category": TableView("erp_category", "(select name, null::timestamptz as deleted_at from products_category)",
                              CATEGORY.business_key, (), {"Category": _as_sent}),
}

IDS = [1, 2, 3, 4, 5, 6]
NAMES = ["Valve", "Pipe 'A|B'", "   ", "", "Valve\x01", "Lamp\x85", "X" * 201, None]
SKUS = ["S1", "S2", "S3", "S4", "S|5", "S'6", "", None]
CATEGORIES = ["Valves", "Plumbing", "Plumbing ", "Tools  ", "tools", "", None, "\xa0", "Gl\x9fue"]
PRICES = [10.5, 10, 0, 12.25, -1.0, 12.00001, 1e15, None, float("nan")]
TAX_RATES = [19.0, None, 7, 150.0]
FLAGS = [False, True, None]
DATES = ["2024-05-01", "2000-02-29", None]


def _control(text: str) -> bool:
    """Contract 12: C0 and C1 controls (U+0000-U+001F, U+007F-U+009F) are refused in text."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)


def text(value: object, column: str, faults: set[str], *, required: bool = False, limit: int) -> Any:
    if value is None:
        if required:
            faults.add(column)
        return None
    if not isinstance(value, str) or _control(value) or len(value) > limit or (required and not value.strip()):
        faults.add(column)
    return value


def category(value: object, faults: set[str]) -> str | None:
    """Products.Category as the product column decodes it, and so the derived category too (contract): trailing
    spaces dropped, all-whitespace text (NBSP too) is no category, case and accents kept (the documented choice
    of the catalog: "Tools" and "tools" are two categories)."""
    if value is None:
        return None
    name = str(value).rstrip(" ")
    if not name.strip():
        return None
    if _control(name) or len(name) > 100:
        faults.add("category")
    return name


def number(value: object, column: str, faults: set[str], *, digits: int, scale: int, required: bool = False,
           low: decimal.Decimal = decimal.Decimal(0), high: decimal.Decimal | None = None) -> decimal.Decimal | None:
    """A JSON number into NUMERIC(digits, scale): exact (no rounding), finite, within the column's range."""
    if value is None:
        if required:
            faults.add(column)
        return None
    try:
        amount = decimal.Decimal(repr(value) if isinstance(value, float) else str(value))
    except decimal.InvalidOperation:
        faults.add(column)
        return None
    if (not amount.is_finite() or amount != amount.quantize(decimal.Decimal(1).scaleb(-scale))
            or abs(amount) >= decimal.Decimal(10) ** (digits - scale) or amount < low
            or (high is not None and amount > high)):
        faults.add(column)
        return None
    return amount


def four_d_date(value: object, faults: set[str]) -> Any:
    """4D REST dates are `d!m!yyyy`; `0!0!0` is the empty date (refused: the column is required)."""
    try:
        day, month, year = (int(part) for part in str(value).split("!"))
        return dt.date(year, month, day)
    except ValueError:
        faults.add("created_on")
        return None


def decode_product(entity: dict[str, Any]) -> Record:
    faults: set[str] = set()
    values = {
        "legacy_id": entity["ProductID"],
        "name": text(entity["ProductName"], "name", faults, required=True, limit=200),
        "description": text(entity["Description"], "description", faults, limit=4000),
        "sku": text(entity["SKU"], "sku", faults, required=True, limit=50),
        "category": category(entity["Category"], faults),
        "list_price": number(entity["Price"], "list_price", faults, digits=14, scale=4, required=True),
        "cost_price": number(entity["Cost"], "cost_price", faults, digits=14, scale=4),
        "tax_rate": number(entity["TaxRate"], "tax_rate", faults, digits=7, scale=4, high=decimal.Decimal(100)),
        "is_purchased": entity["IsPurchased"],
        "is_manufactured": entity["IsManufactured"],
        "created_on": four_d_date(entity["CreatedDate"], faults),
    }
    for column in ("is_purchased", "is_manufactured"):
        if values[column] is None:
            faults.add(column)
    key = (entity["ProductID"],)
    return Record(exact_key=key, target_key=key, values=None if faults else values, faults=frozenset(faults),
                  raw=canonical_raw(entity, RAW_COLUMNS),
                  parent_key=None if "category" in faults or values["category"] is None else (values["category"],),
                  unique_value=None if "sku" in faults else values["sku"])


class RestWriter:
    """The ERP's own writes, through 4D's REST server (one logged-in session)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.login()

    def login(self) -> None:
        response = self.http.post(f"{self.base_url}/rest/$directory/login", timeout=10,
                                  headers={"username-4D": USERNAME, "password-4D": PASSWORD})
        assert response.json() == {"result": True}, response.text

    def _post(self, path: str, body: str | None = None) -> requests.Response:
        """One write; a session that timed out (long profile) is opened again once."""
        for _ in range(2):
            response = self.http.post(f"{self.base_url}{path}", data=body, timeout=30,
                                      headers={"Content-Type": "application/json"})
            if response.status_code != 401:
                break
            self.login()
        assert response.status_code == 200, response.text
        return response

    def save(self, entity: dict[str, Any]) -> dict[str, Any]:
        """`$method=update`: creates the entity (no `__KEY`) or changes it; returns it as the server stored it.
        Sent as written (json.dumps keeps NaN, as a 4D server parsing it would receive it)."""
        saved = self._post("/rest/Products?$method=update", json.dumps(entity)).json()
        assert "__ERROR" not in saved, saved
        return {name: saved.get(name) for name in RAW_COLUMNS}

    def delete(self, key: int) -> None:
        self._post(f"/rest/Products({key})?$method=delete")

    def fail_product_reads(self) -> None:
        """Every further request for Products fails (HTTP 500): the source dies mid-read."""
        response = requests.post(f"{self.base_url}/_emulator/faults", timeout=10,
                                 json={"kind": "http_500", "count": -1, "path_contains": "/rest/Products"})
        assert response.status_code == 201, response.text

    def clear_faults(self) -> None:
        requests.delete(f"{self.base_url}/_emulator/faults", timeout=10).raise_for_status()


@dataclass
class FourDStand:
    """The real components one test drives: the emulator (REST and its store), the application database."""

    store: LegacyStore
    server: EmulatorServer
    engine: sa.Engine
    app_url: str
    counter: StepCounter
    django: DjangoApp | None = None
    """Set when the runs write the application's own tables (the sandbox Django ERP)."""

    @property
    def product(self) -> TableSpec:
        return PRODUCT.onto_application() if self.django else PRODUCT

    @property
    def category(self) -> TableSpec:
        return CATEGORY.onto_application() if self.django else CATEGORY

    @property
    def views(self) -> dict[str, TableView]:
        return APPLICATION_VIEWS if self.django else VIEWS

    def __post_init__(self) -> None:
        self.writer = RestWriter(self.server.base_url)
        self.sessions = SessionJar()  # one 4D session for every run, as a deployment keeps it (licenses)
        with self.engine.connect() as connection:
            self.constraints = constraints(connection)

    def reset(self) -> None:
        """An empty 4D datastore and application database; the schema rebuilt if a run broke it."""
        self.store.truncate()
        reset_app_database(self.app_url, self.constraints)
        if self.django:
            self.django.empty()

    def source(self, page_size: int, batch_rows: int, overlap: int) -> Legacy4DSource:
        """The 4D source with small pages and batches; no retries, so an injected failure fails the read."""
        def client() -> Legacy4DClient:
            return Legacy4DClient(self.server.host, self.server.port, USERNAME, PASSWORD, page_size=page_size,
                                  max_retries=0, backoff_seconds=0.0, jar=self.sessions)
        return Legacy4DSource(client, batch_rows=batch_rows, overlap_stamps=overlap)


class FourDMachine(RuleBasedStateMachine, ModelChecks):
    """Random REST writes and runs; after each run the model and the application database must agree."""

    stand: FourDStand

    def __init__(self) -> None:
        super().__init__()
        self.views = self.stand.views
        self.stand.reset()
        self.stand.counter.examples += 1
        self.engine = self.stand.engine
        self.expected_constraints = self.stand.constraints
        self.entities: dict[int, dict[str, Any]] = {}  # ProductID -> the entity as the server stores it
        self.next_stamp = 1  # the datastore's global stamp (4D: each save or deletion takes it, then +1)
        self.deletions: list[tuple[int, int]] = []  # `__DeletedRecords`: (key, stamp)
        self.models = {"erp_product": TableModel("erp_product", parent="erp_category", unique_column="sku"),
                       "erp_category": TableModel("erp_category")}
        self.categories: set[str] = set()  # contract 6: derived reference rows are never deleted
        self.page_size, self.batch_rows, self.overlap = 3, 5, DEFAULT_OVERLAP_STAMPS

    def _step(self) -> None:
        self.stand.counter.steps += 1

    @initialize(page_size=st.integers(2, 4), batch_rows=st.integers(3, 7),
                overlap=st.sampled_from([DEFAULT_OVERLAP_STAMPS, 0, 3]))
    def choose_sizes(self, page_size: int, batch_rows: int, overlap: int) -> None:
        """Pages, batches and the stamps an incremental read goes back (the adapter's default re-reads every
        stamp of a short example; 0 and 3 make incremental reads differ from full ones)."""
        self.page_size, self.batch_rows, self.overlap = page_size, batch_rows, overlap

    # --- source changes --------------------------------------------------------------------------------

    def _save(self, key: int, values: dict[str, Any]) -> None:
        entity = {**values, "__KEY": key} if key in self.entities else {**values, "ProductID": key}
        self.entities[key] = self.stand.writer.save(entity)
        self.next_stamp = int(self.entities[key]["__GlobalStamp"]) + 1

    @rule(key=st.sampled_from(IDS), name=st.sampled_from(NAMES), sku=st.sampled_from(SKUS),
          category_name=st.sampled_from(CATEGORIES), price=st.sampled_from(PRICES),
          tax_rate=st.sampled_from(TAX_RATES), manufactured=st.sampled_from(FLAGS), created=st.sampled_from(DATES))
    def write_product(self, key: int, name: str | None, sku: str | None, category_name: str | None,
                      price: float | None, tax_rate: float | None, manufactured: bool | None,
                      created: str | None) -> None:
        """Create a product, or change one."""
        self._step()
        self._save(key, {"ProductName": name, "Description": "spare part", "SKU": sku, "Category": category_name,
                         "Price": price, "Cost": 4.25, "TaxRate": tax_rate, "IsPurchased": True,
                         "IsManufactured": manufactured, "CreatedDate": created})

    @rule(key=st.sampled_from(IDS))
    def delete_product(self, key: int) -> None:
        self._step()
        if key in self.entities:
            self.stand.writer.delete(key)
            del self.entities[key]
            self.deletions.append((key, self.next_stamp))
            self.next_stamp += 1

    @rule(keys=st.lists(st.sampled_from(IDS), min_size=2, max_size=3, unique=True))
    def rotate_skus(self, keys: list[int]) -> None:
        """Two products swap their SKUs, or three rotate them (contract 4)."""
        self._step()
        present = [key for key in keys if key in self.entities]
        skus = [self.entities[key]["SKU"] for key in present]
        for key, sku in zip(present, skus[1:] + skus[:1], strict=True):
            self._save(key, {"SKU": sku})

    @rule(old=st.sampled_from(IDS), new=st.sampled_from(IDS))
    def recreate_under_new_key(self, old: int, new: int) -> None:
        """A product deleted and created again under another key with its SKU (a value freed by deletion)."""
        self._step()
        if old not in self.entities or new in self.entities:
            return
        values = {name: value for name, value in self.entities[old].items()
                  if name not in ("ProductID", "__GlobalStamp")}
        values["CreatedDate"] = "2024-05-01"
        self.delete_product(old)
        self._save(new, values)

    @rule(key=st.sampled_from(IDS), sku=st.sampled_from(SKUS[:6]))
    def fix_product(self, key: int, sku: str) -> None:
        """The ERP's user corrects a product: every value valid, the SKU kept when it was valid."""
        self._step()
        entity = self.entities.get(key)
        if entity is None:
            return
        kept = entity["SKU"] if "sku" not in decode_product(entity).faults else sku
        self._save(key, {"ProductName": "Fixed", "SKU": kept, "Category": "Valves", "Price": 1.5, "TaxRate": 7,
                         "IsManufactured": False, "CreatedDate": "2024-05-01"})

    # --- runs ------------------------------------------------------------------------------------------

    MODES = st.sampled_from(["incremental", "full", "replay"])

    FAILURES = st.none() | st.tuples(st.sampled_from(["server", "application"]), st.integers(1, 3))

    @rule(mode=MODES, failure=FAILURES)
    def run_both(self, mode: str, failure: tuple[str, int] | None) -> None:
        """Categories then products, as Dagster orders them; optionally the products run loses the 4D server
        or its application-database session after a batch."""
        self._step()
        self._run_categories(mode)
        self._run_products(mode, failure)

    @rule(mode=MODES, failure=FAILURES)
    def run_products_only(self, mode: str, failure: tuple[str, int] | None) -> None:
        """Products without refreshing the categories first: a new category is a missing parent."""
        self._step()
        self._run_products(mode, failure)

    def teardown(self) -> None:
        """Every example ends with an incremental and a full run of both, checked like any other."""
        for mode in ("incremental", "full"):
            self._run_categories(mode)
            self._run_products(mode, None)

    def _run_categories(self, mode: str) -> None:
        """Contract 6: derived reference rows are created from every product's decoded category, never deleted."""
        self.stand.counter.runs += 1
        source = self.stand.source(self.page_size, self.batch_rows, self.overlap)
        try:
            run_sync(self.stand.category, source, self.engine, mode=mode)  # type: ignore[arg-type]
        except Exception as exc:
            raise AssertionError(f"erp_category {mode} run raised {type(exc).__name__}: {exc}") from exc
        if mode == "incremental":  # no change tracking, so never a watermark: an incremental run reads in full
            mode = "full"
        faulty = set()
        for entity in self.entities.values():
            faults: set[str] = set()
            name = category(entity["Category"], faults)
            if faults:
                faulty.add((entity["Category"],))
            elif name is not None and mode != "replay":
                self.categories.add(name)
        model = self.models["erp_category"]
        opened = set(model.quarantine)  # rule 7: only a full read or a replay closes what it no longer finds
        opened = faulty if mode == "full" else opened & faulty if mode == "replay" else opened | faulty
        model.quarantine = {key: set() for key in opened}
        model.target = {(name,): model.target.get((name,)) or TargetRow({"name": name}) for name in self.categories}
        rows, quarantine, run, _ = self.observe("erp_category")
        problems = []
        live = {key for key, (_, is_live) in rows.items() if is_live}
        if live != set(model.target):
            problems.append(f"erp_category live {sorted(live)}, model {sorted(model.target)} (from the products' "
                            "decoded categories, never deleted)")
        if set(quarantine) != opened:
            problems.append(f"erp_category open quarantine {sorted(quarantine)}, model {sorted(opened)}")
        if run is None or run.processed != run.created + run.updated + run.unchanged + run.rejected:
            problems.append(f"erp_category sync_run does not add up: {run}")
        assert not problems, f"after the erp_category {mode} run:\n  " + "\n  ".join(problems)

    def _read(self, mode: str) -> tuple[str, list[Record], list[tuple[int]]]:
        """What a products run reads: 4D data change tracking, entities and `__DeletedRecords` stamped at or
        after the watermark's global stamp less the overlap; deleted keys that exist again are not deletions."""
        with self.engine.connect() as connection:
            watermark = connection.execute(sa.text("select value from sync_watermark where entity = 'erp_product'")
                                           ).scalar_one_or_none()
        if mode == "incremental" and watermark is None:
            mode = "full"
        model = self.models["erp_product"]
        records = {key: decode_product(entity) for key, entity in sorted(self.entities.items())}
        if mode == "full":
            return mode, list(records.values()), []
        if mode == "replay":
            return mode, [record for record in records.values() if record.exact_key in model.quarantine], []
        since = max(0, int(watermark["global_stamp"]) - self.overlap)  # type: ignore[index]
        gone = sorted({(key,) for key, stamp in self.deletions if stamp >= since and key not in self.entities})
        return mode, [records[key] for key, entity in sorted(self.entities.items())
                      if int(entity["__GlobalStamp"]) >= since], gone

    def _run_products(self, mode: str, failure: tuple[str, int] | None) -> None:
        fired = []

        def fail(report: Any) -> None:
            if failure is not None and report.batches == failure[1] and not fired:
                fired.append(True)
                if failure[0] == "server":
                    self.stand.writer.fail_product_reads()
                else:
                    terminate_run_session(self.engine)

        effective, read, gone = self._read(mode)
        self.stand.counter.runs += 1
        described = f"erp_product {mode} run" + (f", {failure[0]} failing after batch {failure[1]}" if failure else "")
        source = self.stand.source(self.page_size, self.batch_rows, self.overlap)
        try:
            run_sync(self.stand.product, source, self.engine, mode=mode, on_batch=fail)  # type: ignore[arg-type]
        except Exception as exc:
            if not fired:
                raise AssertionError(f"{described}: the run raised {type(exc).__name__}: {exc}") from exc
            self.check_failed_run("erp_product", described)
            return
        finally:
            if fired:
                self.stand.writer.clear_faults()
        model = self.models["erp_product"]
        categories = self.models["erp_category"]
        for key in gone:  # deleted at the source and reported so: their entries close with them
            model.quarantine.pop(key, None)
        outcome: Outcome = model.apply(read, effective, parent_live=categories.live, deleted_at_source=gone)
        problems = []
        with self.engine.connect() as connection:
            watermark = connection.execute(sa.text("select value from sync_watermark where entity = 'erp_product'")
                                           ).scalar_one_or_none()
        if effective != "replay" and (watermark is None or int(watermark["global_stamp"]) > self.next_stamp):
            problems.append(f"watermark {watermark} is past the datastore's stamp at the read, {self.next_stamp}")
        self.check_run("erp_product", described, outcome, problems)


@pytest.fixture(params=["project", "application"])
def four_d_stand(request: pytest.FixtureRequest, legacy4d_store: LegacyStore, app_url: str) -> Iterator[FourDStand]:
    """Runs into the project's tables, and into the application's own (the Django ERP's products_product,
    ids resolved from category names, the application's unique SKU constraint)."""
    server = start_emulator(legacy4d_store.url)
    counter = StepCounter(f"legacy_4d, {request.param} tables")
    django = request.getfixturevalue("django_session") if request.param == "application" else None
    try:
        yield FourDStand(legacy4d_store, server, empty_app_database(app_url), app_url, counter, django)
    finally:
        server.stop()
        print(counter.report())


def test_legacy_4d_sync_agrees_with_the_reference_model(four_d_stand: FourDStand) -> None:
    """Invariant after every run: every entity read is live with its decoded values or open in the quarantine
    under its key; counts add up and match the model; categories follow the products (contract 1-11)."""
    machine = type("FourDModelMachine", (FourDMachine,), {"stand": four_d_stand})
    run_state_machine_as_test(machine, settings=model_settings())
    four_d_stand.counter.assert_enough_steps()
