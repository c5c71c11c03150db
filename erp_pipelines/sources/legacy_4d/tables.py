"""The 4D legacy ERP's tables and how each becomes an application table."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from erp_pipelines.core.decoders import Boolean, Decimal, Decoded, Integer, Template, Text, TrimmedText
from erp_pipelines.core.spec import (
    ApplicationTable,
    ChangeTracking,
    Column,
    ForeignKey,
    HardDelete,
    SoftDeleteFlag,
    SoftDeleteTimestamp,
    TableSpec,
)
from erp_pipelines.sources.legacy_4d.decoders import FourDDate, FourDTime
from erp_pipelines.sources.legacy_4d.models import (
    ErpBillOfMaterialModel,
    ErpCategoryModel,
    ErpCustomerModel,
    ErpInventoryModel,
    ErpInvoiceModel,
    ErpOrderModel,
    ErpProductModel,
)

# 4D's change marker is a stamp, not a time: the overlap re-read is counted in stamps by the 4D adapter
# (LEGACY_SYNC_OVERLAP_STAMPS), so no overlap in seconds applies here.
DELETED_AT = SoftDeleteTimestamp("deleted_at")
"""The application's soft-delete column of the 4D entities' tables (`deleted_at` set when 4D deleted the record)."""
GLOBAL_STAMP = ChangeTracking(columns=("__GlobalStamp",), overlap_seconds=0)


class CategoryName(TrimmedText):
    """A 4D category as both `erp_category.name` and `erp_product.category` read it (one decoder for both, so
    a product's category always names a category row): trailing spaces dropped; empty or all-whitespace text
    (NBSP included) is no category. Case and accents are kept exactly as 4D stores them ("Tools" and "tools"
    are two categories), which is how the application's foreign key compares them."""

    def __init__(self) -> None:
        super().__init__(blank_as_null=True)

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        trimmed = super().__call__(columns).values
        blank = pc.fill_null(pc.utf8_is_space(trimmed), False)
        return Decoded(pc.if_else(blank, pa.scalar(None, pa.string()), trimmed))


CATEGORY = CategoryName()


def _legacy_id(attribute: str) -> Column:
    return Column.of("legacy_id", attribute, Integer(), sa.BigInteger(), nullable=False,
                     description=f"{attribute} in the 4D ERP")


def _reference(target: str, attribute: str, parent: TableSpec) -> tuple[Column, ForeignKey]:
    column = Column.of(target, attribute, Integer(), sa.BigInteger(), nullable=False,
                       description=f"{attribute} → {parent.entity}")
    return column, ForeignKey(columns=(target,), parent=parent, parent_columns=("legacy_id",))


ERP_CATEGORY = TableSpec(
    entity="erp_category",
    aliases=("Category",),
    source_system="legacy_4d",
    source_table="Products",
    target_table="erp_category",
    business_key=("name",),
    columns=(
        Column.of("name", "Category", CATEGORY, sa.Text(), nullable=False),
        Column.of("description", "Category", Template("Imported from legacy: {}"), sa.Text()),
    ),
    model=ErpCategoryModel,
    cadence="daily",
    description="Product categories, created from the distinct Category values of 4D Products (get-or-create: "
                "never deleted by a sync), decoded exactly as erp_product.category is.",
    distinct_values_of="Category",
    application=ApplicationTable("products_category"),
)

ERP_PRODUCT = TableSpec(
    entity="erp_product",
    aliases=("Products",),
    source_system="legacy_4d",
    source_table="Products",
    target_table="erp_product",
    business_key=("legacy_id",),
    columns=(
        _legacy_id("ProductID"),
        Column.of("name", "ProductName", Text(), sa.Text(), nullable=False),
        Column.of("description", "Description", Text(), sa.Text()),
        Column.of("sku", "SKU", Text(), sa.Text(), nullable=False),
        Column.of("category", "Category", CATEGORY, sa.Text()),
        Column.of("list_price", "Price", Decimal(14, 4), sa.Numeric(14, 4), nullable=False),
        Column.of("cost_price", "Cost", Decimal(14, 4), sa.Numeric(14, 4)),
        Column.of("tax_rate", "TaxRate", Decimal(7, 4), sa.Numeric(7, 4)),
        Column.of("is_purchased", "IsPurchased", Boolean(), sa.Boolean(), nullable=False),
        Column.of("is_manufactured", "IsManufactured", Boolean(), sa.Boolean(), nullable=False),
        Column.of("created_on", "CreatedDate", FourDDate(), sa.Date(), nullable=False),
    ),
    model=ErpProductModel,
    cadence="daily",
    description="Products of the 4D ERP: name and SKU required, SKU unique, exact prices, category.",
    change_tracking=GLOBAL_STAMP,
    foreign_keys=(ForeignKey(columns=("category",), parent=ERP_CATEGORY, parent_columns=("name",)),),
    unique=(("sku",),),
    application=ApplicationTable("products_product", references=(("category", "category_id"),), deletion=DELETED_AT),
)

ERP_CUSTOMER = TableSpec(
    entity="erp_customer",
    aliases=("Customers",),
    source_system="legacy_4d",
    source_table="Customers",
    target_table="erp_customer",
    business_key=("legacy_id",),
    columns=(
        _legacy_id("CustomerID"),
        Column.of("name", "CustomerName", Text(), sa.Text(), nullable=False),
        Column.of("email", "Email", Text(), sa.Text()),
        Column.of("phone", "Phone", Text(), sa.Text()),
        Column.of("street", "Street", Text(), sa.Text()),
        Column.of("city", "City", Text(), sa.Text()),
        Column.of("postal_code", "PostalCode", Text(), sa.Text()),
        Column.of("country", "Country", Text(), sa.Text()),
        Column.of("credit_limit", "CreditLimit", Decimal(14, 2), sa.Numeric(14, 2)),
        Column.of("is_active", "IsActive", Boolean(), sa.Boolean(), nullable=False),
        Column.of("created_on", "CreatedDate", FourDDate(), sa.Date()),
    ),
    model=ErpCustomerModel,
    cadence="daily",
    description="Customers of the 4D ERP.",
    change_tracking=GLOBAL_STAMP,
    application=ApplicationTable("sales_customer", deletion=DELETED_AT),
)

_ORDER_CUSTOMER, _ORDER_CUSTOMER_FK = _reference("customer_legacy_id", "CustomerID", ERP_CUSTOMER)
ERP_ORDER = TableSpec(
    entity="erp_order",
    aliases=("Orders",),
    source_system="legacy_4d",
    source_table="Orders",
    target_table="erp_order",
    business_key=("legacy_id",),
    columns=(
        _legacy_id("OrderID"),
        _ORDER_CUSTOMER,
        Column.of("order_date", "OrderDate", FourDDate(), sa.Date(), nullable=False),
        Column.of("order_time", "OrderTime", FourDTime(), sa.Time()),
        Column.of("delivery_date", "DeliveryDate", FourDDate(), sa.Date()),
        Column.of("status", "Status", Text(), sa.Text(), nullable=False),
        Column.of("total_amount", "TotalAmount", Decimal(14, 2), sa.Numeric(14, 2), nullable=False),
        Column.of("currency", "Currency", Text(), sa.Text(), nullable=False),
    ),
    model=ErpOrderModel,
    cadence="daily",
    description="Sales orders of the 4D ERP; each references a customer.",
    change_tracking=GLOBAL_STAMP,
    foreign_keys=(_ORDER_CUSTOMER_FK,),
    application=ApplicationTable("sales_order", references=(("customer_legacy_id", "customer_id"),),
                                 deletion=DELETED_AT),
)

_INVOICE_ORDER, _INVOICE_ORDER_FK = _reference("order_legacy_id", "OrderID", ERP_ORDER)
ERP_INVOICE = TableSpec(
    entity="erp_invoice",
    aliases=("Invoices",),
    source_system="legacy_4d",
    source_table="Invoices",
    target_table="erp_invoice",
    business_key=("legacy_id",),
    columns=(
        _legacy_id("InvoiceID"),
        Column.of("invoice_number", "InvoiceNumber", Text(), sa.Text(), nullable=False),
        _INVOICE_ORDER,
        Column.of("invoice_date", "InvoiceDate", FourDDate(), sa.Date(), nullable=False),
        Column.of("due_date", "DueDate", FourDDate(), sa.Date()),
        Column.of("amount", "Amount", Decimal(14, 2), sa.Numeric(14, 2), nullable=False),
        Column.of("tax_amount", "TaxAmount", Decimal(14, 2), sa.Numeric(14, 2)),
        Column.of("is_paid", "IsPaid", Boolean(), sa.Boolean(), nullable=False),
    ),
    model=ErpInvoiceModel,
    cadence="daily",
    description="Invoices of the 4D ERP; each references an order.",
    change_tracking=GLOBAL_STAMP,
    foreign_keys=(_INVOICE_ORDER_FK,),
    application=ApplicationTable("sales_invoice", references=(("order_legacy_id", "order_id"),),
                                 deletion=DELETED_AT),
)

_INVENTORY_PRODUCT, _INVENTORY_PRODUCT_FK = _reference("product_legacy_id", "ProductID", ERP_PRODUCT)
ERP_INVENTORY = TableSpec(
    entity="erp_inventory",
    aliases=("Inventory",),
    source_system="legacy_4d",
    source_table="Inventory",
    target_table="erp_inventory",
    business_key=("legacy_id",),
    columns=(
        _legacy_id("InventoryID"),
        _INVENTORY_PRODUCT,
        Column.of("warehouse", "Warehouse", Text(), sa.Text(), nullable=False),
        Column.of("quantity_on_hand", "QuantityOnHand", Decimal(14, 3), sa.Numeric(14, 3), nullable=False),
        Column.of("quantity_reserved", "QuantityReserved", Decimal(14, 3), sa.Numeric(14, 3), nullable=False),
        Column.of("reorder_level", "ReorderLevel", Decimal(14, 3), sa.Numeric(14, 3)),
        Column.of("last_count_date", "LastCountDate", FourDDate(), sa.Date()),
    ),
    model=ErpInventoryModel,
    cadence="daily",
    description="Stock per product and warehouse in the 4D ERP.",
    change_tracking=GLOBAL_STAMP,
    foreign_keys=(_INVENTORY_PRODUCT_FK,),
    application=ApplicationTable("inventory_inventory", references=(("product_legacy_id", "product_id"),),
                                 deletion=HardDelete()),
)

_BOM_PARENT, _BOM_PARENT_FK = _reference("parent_product_legacy_id", "ParentProductID", ERP_PRODUCT)
_BOM_COMPONENT, _BOM_COMPONENT_FK = _reference("component_product_legacy_id", "ComponentProductID", ERP_PRODUCT)
ERP_BILL_OF_MATERIAL = TableSpec(
    entity="erp_bill_of_material",
    aliases=("BillOfMaterials", "BOM"),
    source_system="legacy_4d",
    source_table="BillOfMaterials",
    target_table="erp_bill_of_material",
    business_key=("legacy_id",),
    columns=(
        _legacy_id("BomID"),
        _BOM_PARENT,
        _BOM_COMPONENT,
        Column.of("quantity", "Quantity", Decimal(14, 4), sa.Numeric(14, 4), nullable=False),
        Column.of("unit", "Unit", Text(), sa.Text()),
    ),
    model=ErpBillOfMaterialModel,
    cadence="daily",
    description="Bill-of-materials lines of manufactured products in the 4D ERP.",
    change_tracking=GLOBAL_STAMP,
    foreign_keys=(_BOM_PARENT_FK, _BOM_COMPONENT_FK),
    application=ApplicationTable(
        "inventory_billofmaterial", deletion=SoftDeleteFlag("is_active"),
        references=(("parent_product_legacy_id", "parent_product_id"),
                    ("component_product_legacy_id", "component_product_id"))),
)

LEGACY_4D_TABLES: tuple[TableSpec, ...] = (
    ERP_CATEGORY,
    ERP_PRODUCT,
    ERP_CUSTOMER,
    ERP_ORDER,
    ERP_INVOICE,
    ERP_INVENTORY,
    ERP_BILL_OF_MATERIAL,
)
