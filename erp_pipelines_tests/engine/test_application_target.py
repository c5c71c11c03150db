"""Syncing into the application's own tables (the sandbox Django ERP), read back through the Django ORM.

The application owns these tables: its migrations made them, the sync only writes rows. References are
surrogate ids resolved from the parent's business key; deletions follow each table's policy; a migration
that breaks the mapping stops the next run before it writes anything.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import PROJECT_SPECS
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.drift import ApplicationTableDriftError
from erp_pipelines.engine.reconcile import reconcile
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines.sources.legacy_4d.resource import Legacy4DResource
from erp_pipelines_tests.support.django_app import DjangoApp
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME
from erp_sandbox.as400.seed import SeedManifest
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

LEGACY_4D = [spec.onto_application() for spec in PROJECT_SPECS if spec.source_system == "legacy_4d"]
AS400 = [spec.onto_application() for spec in PROJECT_SPECS if spec.source_system == "as400"]


def _spec(specs: list[TableSpec], entity: str) -> TableSpec:
    return next(spec for spec in specs if spec.entity == entity)


def _resource(server: EmulatorServer) -> Legacy4DResource:
    return Legacy4DResource(host="127.0.0.1", port=server.port, username=USERNAME, password=PASSWORD,
                            page_size=100, batch_rows=250, overlap_stamps=0)


def _sync(specs: list[TableSpec], source: Callable[[], object], app_db: sa.Engine,
          mode: str = "incremental") -> dict[str, SyncReport]:
    reports = {spec.entity: run_sync(spec, source(), app_db, mode=mode, max_rejected_share=0.5) for spec in specs}
    for report in reports.values():
        assert report.processed == report.created + report.updated + report.unchanged + report.rejected
    return reports


def _scalar(app_db: sa.Engine, sql: str, **params: object) -> object:
    with app_db.connect() as connection:
        return connection.execute(sa.text(sql), params).scalar_one()


def test_4d_sync_is_read_back_by_the_orm_with_ids_resolved(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore, app_db: sa.Engine,
    django_app: DjangoApp,
) -> None:
    resource = _resource(legacy4d_server)
    reports = _sync(LEGACY_4D, resource.source, app_db)
    from products.models import Category, Product
    from sales.models import Order

    assert Product.objects.filter(deleted_at__isnull=True).count() == reports["erp_product"].created
    assert Category.objects.count() == reports["erp_category"].created
    record = legacy4d_store.get("Products", 1) or {}
    product = Product.objects.get(legacy_id=1)
    assert product.name == record["ProductName"]
    assert product.category is not None and product.category.name == record["Category"].rstrip()
    assert product in product.category.products.all()
    assert product.is_active and product.internal_notes == ""  # application defaults on insert
    order = Order.objects.select_related("customer").first()
    assert order is not None and order.customer.orders.filter(pk=order.pk).exists()
    for spec in LEGACY_4D:
        if spec.entity != "erp_category":
            assert reconcile(spec, resource.source(), app_db).passed, spec.entity
    again = _sync(LEGACY_4D, resource.source, app_db, mode="full")
    assert all(r.created == r.updated == r.deleted == 0 for r in again.values())


def test_application_only_field_survives_updates_and_deletion_policies_apply(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore, app_db: sa.Engine,
    django_app: DjangoApp,
) -> None:
    resource = _resource(legacy4d_server)
    _sync(LEGACY_4D, resource.source, app_db)
    from inventory.models import BillOfMaterial, Inventory
    from products.models import Product

    Product.objects.filter(legacy_id=2).update(internal_notes="call supplier first")
    legacy4d_store.update("Products", 2, {"ProductName": "Renamed in 4D"})
    inventory_id = Inventory.objects.order_by("legacy_id").values_list("legacy_id", flat=True).first()
    bom_id = BillOfMaterial.objects.order_by("legacy_id").values_list("legacy_id", flat=True).first()
    assert inventory_id is not None and bom_id is not None
    legacy4d_store.delete("Inventory", [inventory_id])
    legacy4d_store.delete("BillOfMaterials", [bom_id])
    victim = Product.objects.filter(deleted_at__isnull=True).exclude(legacy_id=2).order_by("legacy_id").first()
    assert victim is not None
    victim = victim.legacy_id
    legacy4d_store.delete("Products", [victim])
    reports = _sync(LEGACY_4D, resource.source, app_db)

    renamed = Product.objects.get(legacy_id=2)
    assert renamed.name == "Renamed in 4D" and renamed.internal_notes == "call supplier first"
    assert not Inventory.objects.filter(legacy_id=inventory_id).exists()  # hard delete
    assert not BillOfMaterial.objects.get(legacy_id=bom_id).is_active  # soft delete by flag
    assert Product.objects.get(legacy_id=victim).deleted_at is not None  # soft delete by timestamp
    assert reports["erp_product"].deleted == 1 and reports["erp_inventory"].deleted == 1
    categories = _scalar(app_db, "select count(*) from products_category")
    legacy4d_store.update("Products", 2, {"Category": "A category nobody else has"})
    _sync(LEGACY_4D, resource.source, app_db, mode="full")
    legacy4d_store.update("Products", 2, {"Category": renamed.category.name if renamed.category else "Valves"})
    _sync(LEGACY_4D, resource.source, app_db, mode="full")
    assert _scalar(app_db, "select count(*) from products_category") == categories + 1  # never deleted


def test_a_renamed_mapped_column_stops_the_run_before_it_writes(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore, app_db: sa.Engine,
    django_app: DjangoApp,
) -> None:
    resource = _resource(legacy4d_server)
    _sync(LEGACY_4D, resource.source, app_db)
    legacy4d_store.update("Products", 3, {"ProductName": "Changed while the application migrated"})
    product = _spec(LEGACY_4D, "erp_product")
    before = _scalar(app_db, "select name from products_product where legacy_id = 3")
    django_app.execute("alter table products_product rename column sku to stock_keeping_unit")
    # What Django's migration does for a new field with a Python-only `default=`: fill, then drop the default.
    django_app.execute("alter table products_product add column supplier_code text not null default ''; "
                       "alter table products_product alter column supplier_code drop default")
    try:
        with pytest.raises(ApplicationTableDriftError) as failure:
            run_sync(product, resource.source(), app_db)
    finally:
        django_app.execute("alter table products_product rename column stock_keeping_unit to sku")
        django_app.execute("alter table products_product drop column supplier_code")
    message = str(failure.value)
    assert "column sku (spec column sku) is missing" in message
    assert "column supplier_code is not mapped, NOT NULL and has no database default" in message
    assert _scalar(app_db, "select name from products_product where legacy_id = 3") == before
    assert _scalar(app_db, "select status from sync_run where entity = 'erp_product' order by id desc limit 1") \
        == "FAILED"
    assert run_sync(product, resource.source(), app_db).updated == 1


def test_as400_children_resolve_product_ids_across_batches_and_a_late_parent_is_replayed(
    seed: Callable[..., SeedManifest], as400: As400Resource, as400_source_sql: Callable[[str], None],
    app_db: sa.Engine, django_app: DjangoApp,
) -> None:
    seed(products=120, warehouses=3, bad_share=0.0)
    small = as400.replaced(change_tracking="stamps", batch_rows=50)
    as400_source_sql("""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = '' where "ITEMNO" = (
                        select min("ITEMNO") from "PRODUCTLIB"."PRODUCTS")""")
    reports = _sync(AS400, small.source, app_db)
    assert reports["product"].rejected == 1
    assert reports["product_stock"].rejected == 3  # its three warehouses wait for their product
    from products.models import Product, ProductStock

    assert ProductStock.objects.count() == reports["product_stock"].created
    stock = ProductStock.objects.select_related("product").order_by("id").last()
    assert stock is not None and stock.product.item_number == stock.item_number
    as400_source_sql("""update "PRODUCTLIB"."PRODUCTS" set "ITEMDESC" = 'Fixed at the source' where "ITEMDESC" = ''""")
    _sync(AS400[:1], small.source, app_db, mode="replay")
    replayed = _sync(AS400[1:], small.source, app_db, mode="replay")
    assert replayed["product_stock"].created == 3 and replayed["product_stock"].rejected == 0
    fixed = Product.objects.get(name="Fixed at the source")
    assert fixed.stock.count() == 3 and fixed.legacy_id is None
    for spec in AS400:
        assert reconcile(spec, small.source(), app_db).passed, spec.entity
