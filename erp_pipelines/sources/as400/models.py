"""Validation models of the application tables fed from the AS400 (IBM i)."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa_pandas

from erp_pipelines.core.fields import BOOL, DATE, TEXT, TIMESTAMP, decimal, text


class ProductModel(pa_pandas.DataFrameModel):
    """A product master record (PRODUCTLIB.PRODUCTS)."""

    item_number: TEXT = text(required=True, max_length=15, description="Item number (ITEMNO), the business key")
    description: TEXT = text(required=True, max_length=40, description="Item description (ITEMDESC)")
    sku: TEXT = text(required=True, max_length=20, description="Stock keeping unit, unique among live products")
    category: TEXT = text(max_length=4, description="Item class (ITEMCLS)")
    unit_of_measure: TEXT = text(max_length=2, description="Stocking unit (UOM)")
    is_active: BOOL = pa_pandas.Field(nullable=False, description="ITEMSTS = 'A'")
    created_on: DATE = pa_pandas.Field(nullable=True, description="Creation date (CRTDAT, CYYMMDD; 0 = none)")
    source_changed_at: TIMESTAMP = pa_pandas.Field(
        nullable=False, description="Last change on the AS400 (CHGDAT + CHGTIM)"
    )

    class Config:
        strict = True


class ProductMeasurementModel(pa_pandas.DataFrameModel):
    """Product dimensions and weights (PRODUCTLIB.MEASUREMENTS)."""

    item_number: TEXT = text(required=True, max_length=15, description="Product (ITEMNO)")
    measure_type: TEXT = pa_pandas.Field(isin=["LEN", "WID", "HGT", "WGT"], description="LEN, WID, HGT or WGT")
    value: decimal(11, 4) = pa_pandas.Field(gt=0, nullable=False, description="Measured value (MEASVAL)")
    unit: TEXT = text(max_length=3, description="Unit of the value (MEASUOM)")
    source_changed_at: TIMESTAMP = pa_pandas.Field(nullable=False, description="CHGDAT + CHGTIM")

    class Config:
        strict = True


class ProductPricingModel(pa_pandas.DataFrameModel):
    """Price-list prices with validity dates (PRODUCTLIB.PRICING)."""

    item_number: TEXT = text(required=True, max_length=15, description="Product (ITEMNO)")
    price_list: TEXT = text(required=True, max_length=4, description="Price list (PRCLST)")
    effective_on: DATE = pa_pandas.Field(nullable=False, description="First day the price applies (EFFDAT)")
    expires_on: DATE = pa_pandas.Field(nullable=True, description="Last day (EXPDAT; 0 = open-ended)")
    unit_price: decimal(11, 4) = pa_pandas.Field(ge=0, nullable=False, description="Unit price (UNITPRC)")
    currency: TEXT = pa_pandas.Field(str_matches=r"^[A-Z]{3}$", description="ISO currency code (CURCDE)")
    source_changed_at: TIMESTAMP = pa_pandas.Field(nullable=False, description="CHGDAT + CHGTIM")

    @pa_pandas.dataframe_check(error="expires_on is before effective_on")
    def expiry_not_before_start(cls, frame: pd.DataFrame) -> pd.Series:
        return (frame["expires_on"] >= frame["effective_on"]).fillna(True).astype(bool)

    class Config:
        strict = True


class ProductStockModel(pa_pandas.DataFrameModel):
    """Stock per product and warehouse (INVENTORYLIB.INVENTORY)."""

    item_number: TEXT = text(required=True, max_length=15, description="Product (ITEMNO)")
    warehouse: TEXT = text(required=True, max_length=3, description="Warehouse (WHSE)")
    on_hand: decimal(11, 3) = pa_pandas.Field(ge=0, nullable=False, description="Quantity on hand (ONHAND)")
    allocated: decimal(11, 3) = pa_pandas.Field(ge=0, nullable=False, description="Allocated quantity (ALLOC)")
    on_order: decimal(11, 3) = pa_pandas.Field(ge=0, nullable=False, description="Quantity on order (ONORD)")
    unit_of_measure: TEXT = text(max_length=2, description="Unit (UOM)")
    bin_location: TEXT = text(max_length=10, description="Bin (BIN)")
    is_lot_controlled: BOOL = pa_pandas.Field(nullable=False, description="LOTCTL = 'Y'")
    source_changed_at: TIMESTAMP = pa_pandas.Field(nullable=False, description="CHGDAT + CHGTIM")

    class Config:
        strict = True
