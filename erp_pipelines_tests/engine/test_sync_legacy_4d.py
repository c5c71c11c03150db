"""The engine on the 4D path: the emulator over HTTP, the app database on PostgreSQL."""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec, specs_for
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.resources import Legacy4DResource
from erp_pipelines_tests.fixtures_legacy_4d import PASSWORD, USERNAME
from erp_sandbox.legacy_4d.seed import INJECTION_TEXTS
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

LEGACY_SPECS = specs_for("legacy_4d")
PRODUCT_REJECT_KINDS = ("blank_name", "blank_sku", "duplicate_sku", "negative_price", "empty_date",
                        "control_chars", "oversized_text")


def _resource(server: EmulatorServer, **overrides: object) -> Legacy4DResource:
    return Legacy4DResource(host="127.0.0.1", port=server.port, username=USERNAME, password=PASSWORD,
                            page_size=100, batch_rows=250, **overrides)


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
    resource = _resource(legacy4d_server)
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


def test_a_sync_holds_one_license_and_releases_it(
    legacy4d_seeded: dict, make_legacy4d_server, app_db: sa.Engine
) -> None:
    server = make_legacy4d_server(licenses=1)
    _sync_all(_resource(server), app_db)
    stats = requests.get(f"{server.base_url}/_emulator/stats", timeout=10).json()
    assert stats["max_concurrent_sessions"] == 1
    assert stats["sessions_open"] == 0
