"""The engine on the 4D path: the emulator over HTTP, the app database on PostgreSQL."""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec, specs_for
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.sources.legacy_4d.resource import Legacy4DResource
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME
from erp_sandbox.legacy_4d.seed import INJECTION_TEXTS
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

LEGACY_SPECS = specs_for("legacy_4d")
PRODUCT_REJECT_KINDS = ("blank_name", "blank_sku", "duplicate_sku", "negative_price", "empty_date",
                        "control_chars", "oversized_text")


@pytest.fixture(params=["directory", "authentify"])
def legacy4d_server(request: pytest.FixtureRequest, make_legacy4d_server) -> EmulatorServer:
    """Every test here runs against a default-mode server (directory login) and a force-login one."""
    return make_legacy4d_server(force_login=request.param == "authentify")


def _resource(server: EmulatorServer, **overrides: object) -> Legacy4DResource:
    mode = "authentify" if server.config.force_login else "directory"
    options: dict = {"page_size": 100, "batch_rows": 250, "auth_mode": mode} | overrides
    return Legacy4DResource(host="127.0.0.1", port=server.port, username=USERNAME, password=PASSWORD, **options)


def _sync_all(resource: Legacy4DResource, app_db: sa.Engine, mode: str = "incremental") -> dict[str, SyncReport]:
    return {spec.entity: run_sync(spec, resource.source(), app_db, mode=mode, max_rejected_share=0.5)
            for spec in LEGACY_SPECS}


def _rows(app_db: sa.Engine, sql: str, **params: object) -> list[sa.Row]:
    with app_db.connect() as connection:
        return list(connection.execute(sa.text(sql), params))


def test_all_tables_load_with_bad_records_quarantined(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, app_db: sa.Engine
) -> None:
    reports = _sync_all(_resource(legacy4d_server), app_db)
    counts, bad = legacy4d_seeded["counts"], legacy4d_seeded["bad"]
    for spec in LEGACY_SPECS:
        report = reports[spec.entity]
        assert report.processed == report.created + report.rejected, spec.entity
        if spec.entity != "erp_category":
            assert report.processed == counts[spec.source_table], spec.entity
    assert reports["erp_product"].rejected == sum(bad[kind] for kind in PRODUCT_REJECT_KINDS)
    assert reports["erp_order"].rejected == bad["orphan_order"]
    assert reports["erp_inventory"].rejected >= bad["orphan_inventory"]
    categories = _rows(app_db, "select name, description from erp_category order by name")
    assert categories
    assert all(row.description == f"Imported from legacy: {row.name}" for row in categories)
    order_errors = _rows(app_db, "select error_message from sync_error where entity = 'erp_order'")
    reasons = {row.error_message for row in order_errors}
    assert len(reasons) == bad["orphan_order"]
    assert all("parent erp_customer (customer_legacy_id=" in reason for reason in reasons)
    loaded_injection = _rows(app_db, "select name from erp_product where name = any(:texts)",
                             texts=list(INJECTION_TEXTS))
    assert len(loaded_injection) == bad["injection_text"]  # injection-looking text is data, stored verbatim
    assert _rows(app_db, "select count(*) from erp_product")[0][0] == reports["erp_product"].created


def test_incremental_reads_changes_and_deletions_by_global_stamp(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore, app_db: sa.Engine
) -> None:
    resource = _resource(legacy4d_server, overlap_stamps=0)  # exact counts; the overlap has its own test
    _sync_all(resource, app_db)
    product = _rows(app_db, "select legacy_id, list_price from erp_product order by legacy_id limit 1")[0]
    legacy4d_store.update("Products", product.legacy_id, {"Price": 1234.5})
    legacy4d_store.insert("Products", [{
        "ProductID": 900001, "ProductName": "New valve", "SKU": "NEW-900001", "Category": "Valves", "Price": 9.99,
        "Cost": 4.5, "TaxRate": 19, "IsPurchased": True, "IsManufactured": False, "CreatedDate": "2025-01-02",
    }])
    inventory = _rows(app_db, "select legacy_id from erp_inventory order by legacy_id limit 1")[0].legacy_id
    legacy4d_store.delete("Inventory", [inventory])

    reports = _sync_all(resource, app_db)
    assert reports["erp_product"].mode == "incremental"
    assert (reports["erp_product"].created, reports["erp_product"].updated) == (1, 1)
    assert reports["erp_product"].processed == 2
    assert reports["erp_inventory"].deleted == 1
    assert reports["erp_inventory"].processed == 0
    assert reports["erp_order"].processed == 0
    price = _rows(app_db, "select list_price from erp_product where legacy_id = :id", id=product.legacy_id)[0][0]
    assert str(price) == "1234.5000"
    deleted = _rows(app_db, "select deleted_at from erp_inventory where legacy_id = :id", id=inventory)[0][0]
    assert deleted is not None


def test_child_whose_parent_is_missing_is_rejected_with_that_reason(
    legacy4d_store: LegacyStore, legacy4d_server: EmulatorServer, app_db: sa.Engine
) -> None:
    legacy4d_store.insert("Customers", [{"CustomerID": 1, "CustomerName": "Acme", "IsActive": True}])
    legacy4d_store.insert("Orders", [
        {"OrderID": 10, "CustomerID": 1, "OrderDate": "2025-03-01", "Status": "OPEN", "TotalAmount": 10,
         "Currency": "EUR"},
        {"OrderID": 11, "CustomerID": 77, "OrderDate": "2025-03-01", "Status": "OPEN", "TotalAmount": 10,
         "Currency": "EUR"},
    ])
    resource = _resource(legacy4d_server)
    run_sync(get_spec("erp_customer"), resource.source(), app_db)
    report = run_sync(get_spec("erp_order"), resource.source(), app_db, max_rejected_share=1.0)
    assert (report.created, report.rejected) == (1, 1)
    (error,) = _rows(app_db, "select source_key, rules, error_message, raw_record from sync_error")
    assert error.source_key == [11]
    assert error.rules == ["missing_parent:erp_customer"]
    assert "parent erp_customer (customer_legacy_id=77) is not live in the application database" in (
        error.error_message)
    assert error.raw_record["CustomerID"] == 77


def test_every_sync_of_a_deployment_runs_in_its_one_session(
    legacy4d_seeded: dict, make_legacy4d_server, app_db: sa.Engine
) -> None:
    """Logging out frees nothing on 4D v18-v21, so the deployment keeps its one session (and its one license)
    for every sync, incremental or full, instead of leaving one behind per sync."""
    server = make_legacy4d_server(licenses=1)
    _sync_all(_resource(server), app_db, mode="full")
    _sync_all(_resource(server), app_db)
    stats = requests.get(f"{server.base_url}/_emulator/stats", timeout=10).json()
    assert stats["sessions_opened"] == 1
    assert stats["max_concurrent_sessions"] == stats["licenses_in_use"] == 1
    logins = [r for r in stats["last_requests"] if r["target"] == "/rest/$directory/login"]
    assert len(logins) <= 1


@pytest.mark.parametrize("force_login", [False, True], ids=["directory", "authentify"])
def test_every_sync_holds_the_one_license_in_both_login_modes(
    force_login: bool, legacy4d_seeded: dict, make_legacy4d_server, app_db: sa.Engine
) -> None:
    server = make_legacy4d_server(licenses=1, force_login=force_login)
    _sync_all(_resource(server), app_db, mode="full")
    stats = requests.get(f"{server.base_url}/_emulator/stats", timeout=10).json()
    assert stats["sessions_opened"] == 1 and stats["max_concurrent_sessions"] == 1


def test_the_overlap_re_reads_recent_stamps_and_counts_them_unchanged(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore, app_db: sa.Engine
) -> None:
    """A record saved in a 4D transaction before the watermark was read and committed after its page was read
    carries a stamp below the next watermark; re-reading LEGACY_SYNC_OVERLAP_STAMPS below it catches it."""
    spec = get_spec("erp_customer")
    run_sync(spec, _resource(legacy4d_server).source(), app_db, mode="full", max_rejected_share=0.5)
    legacy4d_store.update("Customers", 1, {"CreditLimit": 4321.0})
    report = run_sync(spec, _resource(legacy4d_server, overlap_stamps=100_000).source(), app_db,
                      max_rejected_share=0.5)
    assert report.updated == 1 and report.created == 0
    assert report.processed == legacy4d_store.count("Customers")  # everything re-read, only the change written
    assert report.unchanged == report.processed - report.updated - report.rejected


CATEGORY_SPELLINGS = ["Plumbing ", "Plumbing", "\u00a0", "Tools", "tools", "Électricité", "Electricite", "  ", None]


def _products_with_categories(store: LegacyStore, count: int) -> None:
    store.insert("Products", [{
        "ProductID": key, "ProductName": f"Product {key}", "SKU": f"SKU-{key}", "Price": 1.0, "IsPurchased": True,
        "IsManufactured": False, "CreatedDate": "2024-05-06",
        "Category": CATEGORY_SPELLINGS[key * 7 % len(CATEGORY_SPELLINGS)],
    } for key in range(1, count + 1)])


def test_categories_are_read_completely_and_decoded_like_the_product_column(
    legacy4d_store: LegacyStore, legacy4d_server: EmulatorServer, app_db: sa.Engine
) -> None:
    """Not 4D's $distinct (entity-paged, case/accent-insensitive): a complete read, decoded by the same decoder
    as erp_product.category, so every product's category names a category row exactly (case and accents as 4D
    stores them; trailing spaces dropped; blank or NBSP-only is no category)."""
    _products_with_categories(legacy4d_store, 60)
    resource = _resource(legacy4d_server, page_size=4)
    categories = run_sync(get_spec("erp_category"), resource.source(), app_db, mode="full")
    products = run_sync(get_spec("erp_product"), resource.source(), app_db, mode="full")
    assert (categories.rejected, products.rejected, products.created) == (0, 0, 60)
    names = {row.name for row in _rows(app_db, "select name from erp_category where deleted_at is null")}
    assert names == {"Plumbing", "Tools", "tools", "Électricité", "Electricite"}
    used = {row.category for row in _rows(app_db, "select distinct category from erp_product")}
    assert used == names | {None}
    assert resource.source().count_rows(get_spec("erp_category")) == len(names)


def test_get_or_create_never_deletes_a_category(
    legacy4d_store: LegacyStore, legacy4d_server: EmulatorServer, app_db: sa.Engine
) -> None:
    _products_with_categories(legacy4d_store, 18)
    resource = _resource(legacy4d_server)
    run_sync(get_spec("erp_category"), resource.source(), app_db, mode="full")
    legacy4d_store.delete("Products", [row["ProductID"] for row in legacy4d_store_products(legacy4d_store, "Tools")])
    report = run_sync(get_spec("erp_category"), resource.source(), app_db, mode="full")
    assert report.deleted == 0
    assert _rows(app_db, "select deleted_at from erp_category where name = 'Tools'")[0].deleted_at is None


def legacy4d_store_products(store: LegacyStore, category: str) -> list[dict]:
    return [product for key in range(1, store.count("Products") + 1)
            if (product := store.get("Products", key)) and product["Category"] == category]
