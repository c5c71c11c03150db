"""The whitelisted AS400 tables and how each becomes an application table."""

from __future__ import annotations

import sqlalchemy as sa

from erp_pipelines.core.decoders import Decimal, Flag, TrimmedText
from erp_pipelines.core.spec import (
    ApplicationTable,
    ChangeTracking,
    Column,
    ForeignKey,
    HardDelete,
    SoftDeleteTimestamp,
    TableSpec,
)
from erp_pipelines.sources.as400.decoders import CyymmddDate, CyymmddHhmmssTimestamp
from erp_pipelines.sources.as400.models import (
    ProductMeasurementModel,
    ProductModel,
    ProductPricingModel,
    ProductStockModel,
)

CHANGED = ChangeTracking(columns=("CHGDAT", "CHGTIM"))
ITEM_NUMBER = Column.of("item_number", "ITEMNO", TrimmedText(), sa.Text(), nullable=False)
SOURCE_CHANGED_AT = Column.of(
    "source_changed_at", ("CHGDAT", "CHGTIM"), CyymmddHhmmssTimestamp(), sa.DateTime(), nullable=False
)

PRODUCT = TableSpec(
    entity="product",
    source_system="as400",
    source_table="PRODUCTLIB.PRODUCTS",
    target_table="product",
    business_key=("item_number",),
    columns=(
        ITEM_NUMBER,
        Column.of("description", "ITEMDESC", TrimmedText(), sa.Text(), nullable=False),
        Column.of("sku", "SKU", TrimmedText(), sa.Text(), nullable=False),
        Column.of("category", "ITEMCLS", TrimmedText(blank_as_null=True), sa.Text()),
        Column.of("unit_of_measure", "UOM", TrimmedText(blank_as_null=True), sa.Text()),
        Column.of("is_active", "ITEMSTS", Flag(["A"], ["I"]), sa.Boolean(), nullable=False),
        Column.of("created_on", "CRTDAT", CyymmddDate(), sa.Date()),
        SOURCE_CHANGED_AT,
    ),
    model=ProductModel,
    cadence="daily",
    description="Product master data from the AS400 item master PRODUCTLIB.PRODUCTS.",
    change_tracking=CHANGED,
    unique=(("sku",),),
    application=ApplicationTable("products_product", renamed=(("description", "name"), ("category", "item_class")),
                                 deletion=SoftDeleteTimestamp("deleted_at")),
)

PARENT_PRODUCT = ForeignKey(columns=("item_number",), parent=PRODUCT, parent_columns=("item_number",))
PRODUCT_ID = (("item_number", "product_id"),)
"""In the application's tables a product is referenced by its surrogate id, resolved from the item number."""

PRODUCT_MEASUREMENT = TableSpec(
    entity="product_measurement",
    aliases=("measurement", "measurements", "ProductMeasurement"),
    source_system="as400",
    source_table="PRODUCTLIB.MEASUREMENTS",
    target_table="product_measurement",
    business_key=("item_number", "measure_type"),
    columns=(
        ITEM_NUMBER,
        Column.of("measure_type", "MEASTYP", TrimmedText(), sa.Text(), nullable=False),
        Column.of("value", "MEASVAL", Decimal(11, 4), sa.Numeric(11, 4), nullable=False),
        Column.of("unit", "MEASUOM", TrimmedText(blank_as_null=True), sa.Text()),
        SOURCE_CHANGED_AT,
    ),
    model=ProductMeasurementModel,
    cadence="daily",
    description="Product dimensions and weights from PRODUCTLIB.MEASUREMENTS.",
    change_tracking=CHANGED,
    foreign_keys=(PARENT_PRODUCT,),
    application=ApplicationTable("products_productmeasurement", references=PRODUCT_ID, deletion=HardDelete()),
)

PRODUCT_PRICING = TableSpec(
    entity="product_pricing",
    aliases=("pricing", "ProductPricing"),
    source_system="as400",
    source_table="PRODUCTLIB.PRICING",
    target_table="product_pricing",
    business_key=("item_number", "price_list", "effective_on"),
    columns=(
        ITEM_NUMBER,
        Column.of("price_list", "PRCLST", TrimmedText(), sa.Text(), nullable=False),
        Column.of("effective_on", "EFFDAT", CyymmddDate(), sa.Date(), nullable=False),
        Column.of("expires_on", "EXPDAT", CyymmddDate(), sa.Date()),
        Column.of("unit_price", "UNITPRC", Decimal(11, 4), sa.Numeric(11, 4), nullable=False),
        Column.of("currency", "CURCDE", TrimmedText(), sa.Text(), nullable=False),
        SOURCE_CHANGED_AT,
    ),
    model=ProductPricingModel,
    cadence="daily",
    description="Price-list prices with validity dates from PRODUCTLIB.PRICING.",
    change_tracking=CHANGED,
    foreign_keys=(PARENT_PRODUCT,),
    application=ApplicationTable("products_productpricing", references=PRODUCT_ID, deletion=HardDelete()),
)

PRODUCT_STOCK = TableSpec(
    entity="product_stock",
    aliases=("stock", "ProductStock"),
    source_system="as400",
    source_table="INVENTORYLIB.INVENTORY",
    target_table="product_stock",
    business_key=("item_number", "warehouse"),
    columns=(
        ITEM_NUMBER,
        Column.of("warehouse", "WHSE", TrimmedText(), sa.Text(), nullable=False),
        Column.of("on_hand", "ONHAND", Decimal(11, 3), sa.Numeric(11, 3), nullable=False),
        Column.of("allocated", "ALLOC", Decimal(11, 3), sa.Numeric(11, 3), nullable=False),
        Column.of("on_order", "ONORD", Decimal(11, 3), sa.Numeric(11, 3), nullable=False),
        Column.of("unit_of_measure", "UOM", TrimmedText(blank_as_null=True), sa.Text()),
        Column.of("bin_location", "BIN", TrimmedText(blank_as_null=True), sa.Text()),
        Column.of("is_lot_controlled", "LOTCTL", Flag(["Y"], ["N"]), sa.Boolean(), nullable=False),
        SOURCE_CHANGED_AT,
    ),
    model=ProductStockModel,
    cadence="hourly",
    description="Inventory levels per product and warehouse from INVENTORYLIB.INVENTORY.",
    change_tracking=CHANGED,
    foreign_keys=(PARENT_PRODUCT,),
    application=ApplicationTable("products_productstock", references=PRODUCT_ID, deletion=HardDelete()),
)

AS400_TABLES: tuple[TableSpec, ...] = (PRODUCT, PRODUCT_MEASUREMENT, PRODUCT_PRICING, PRODUCT_STOCK)
