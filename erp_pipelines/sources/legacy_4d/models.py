"""Validation models of the application tables fed from the 4D legacy ERP."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa_pandas

from erp_pipelines.core.fields import BOOL, DATE, INT, TEXT, TIME, decimal, text

LEGACY_ID = {"ge": 1, "nullable": False, "description": "Primary key in the 4D ERP"}


class ErpCategoryModel(pa_pandas.DataFrameModel):
    """A product category, created from the products' Category values (get-or-create)."""

    name: TEXT = text(required=True, max_length=100, description="Category name as used by 4D products")
    description: TEXT = text(max_length=200, description="'Imported from legacy: <name>'")

    class Config:
        strict = True


class ErpProductModel(pa_pandas.DataFrameModel):
    """A product of the 4D ERP (Products)."""

    legacy_id: INT = pa_pandas.Field(**LEGACY_ID)
    name: TEXT = text(required=True, max_length=200, description="ProductName; required")
    description: TEXT = text(max_length=4000, description="Description")
    sku: TEXT = text(required=True, max_length=50, description="SKU; required, unique among live products")
    category: TEXT = text(max_length=100, description="Category name (erp_category)")
    list_price: decimal(14, 4) = pa_pandas.Field(ge=0, nullable=False, description="Price")
    cost_price: decimal(14, 4) = pa_pandas.Field(ge=0, nullable=True, description="Cost")
    tax_rate: decimal(7, 4) = pa_pandas.Field(in_range={"min_value": 0, "max_value": 100}, nullable=True,
                                              description="TaxRate in percent")
    is_purchased: BOOL = pa_pandas.Field(nullable=False, description="IsPurchased")
    is_manufactured: BOOL = pa_pandas.Field(nullable=False, description="IsManufactured")
    created_on: DATE = pa_pandas.Field(nullable=False, description="CreatedDate (0!0!0 is refused)")

    class Config:
        strict = True


class ErpCustomerModel(pa_pandas.DataFrameModel):
    """A customer (Customers)."""

    legacy_id: INT = pa_pandas.Field(**LEGACY_ID)
    name: TEXT = text(required=True, max_length=200, description="CustomerName")
    email: TEXT = text(max_length=200, str_matches=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="Email")
    phone: TEXT = text(max_length=50, description="Phone")
    street: TEXT = text(max_length=200, description="Street")
    city: TEXT = text(max_length=100, description="City")
    postal_code: TEXT = text(max_length=20, description="PostalCode")
    country: TEXT = text(max_length=100, description="Country")
    credit_limit: decimal(14, 2) = pa_pandas.Field(ge=0, nullable=True, description="CreditLimit")
    is_active: BOOL = pa_pandas.Field(nullable=False, description="IsActive")
    created_on: DATE = pa_pandas.Field(nullable=True, description="CreatedDate")

    class Config:
        strict = True


class ErpOrderModel(pa_pandas.DataFrameModel):
    """A sales order (Orders)."""

    legacy_id: INT = pa_pandas.Field(**LEGACY_ID)
    customer_legacy_id: INT = pa_pandas.Field(nullable=False, description="CustomerID → erp_customer")
    order_date: DATE = pa_pandas.Field(nullable=False, description="OrderDate")
    order_time: TIME = pa_pandas.Field(nullable=True, description="OrderTime (4D time, ms since midnight)")
    delivery_date: DATE = pa_pandas.Field(nullable=True, description="DeliveryDate (0!0!0 = not delivered)")
    status: TEXT = pa_pandas.Field(isin=["OPEN", "SHIPPED", "INVOICED", "CANCELLED"], description="Status")
    total_amount: decimal(14, 2) = pa_pandas.Field(ge=0, nullable=False, description="TotalAmount")
    currency: TEXT = pa_pandas.Field(str_matches=r"^[A-Z]{3}$", description="Currency (ISO code)")

    @pa_pandas.dataframe_check(error="delivery_date is before order_date")
    def delivered_after_ordered(cls, frame: pd.DataFrame) -> pd.Series:
        return (frame["delivery_date"] >= frame["order_date"]).fillna(True).astype(bool)

    class Config:
        strict = True


class ErpInvoiceModel(pa_pandas.DataFrameModel):
    """An invoice (Invoices)."""

    legacy_id: INT = pa_pandas.Field(**LEGACY_ID)
    invoice_number: TEXT = text(required=True, max_length=50, description="InvoiceNumber")
    order_legacy_id: INT = pa_pandas.Field(nullable=False, description="OrderID → erp_order")
    invoice_date: DATE = pa_pandas.Field(nullable=False, description="InvoiceDate")
    due_date: DATE = pa_pandas.Field(nullable=True, description="DueDate")
    amount: decimal(14, 2) = pa_pandas.Field(nullable=False, description="Amount")
    tax_amount: decimal(14, 2) = pa_pandas.Field(nullable=True, description="TaxAmount")
    is_paid: BOOL = pa_pandas.Field(nullable=False, description="IsPaid")

    @pa_pandas.dataframe_check(error="due_date is before invoice_date")
    def due_after_invoiced(cls, frame: pd.DataFrame) -> pd.Series:
        return (frame["due_date"] >= frame["invoice_date"]).fillna(True).astype(bool)

    class Config:
        strict = True


class ErpInventoryModel(pa_pandas.DataFrameModel):
    """Stock of a product in a warehouse (Inventory)."""

    legacy_id: INT = pa_pandas.Field(**LEGACY_ID)
    product_legacy_id: INT = pa_pandas.Field(nullable=False, description="ProductID → erp_product")
    warehouse: TEXT = text(required=True, max_length=50, description="Warehouse")
    quantity_on_hand: decimal(14, 3) = pa_pandas.Field(ge=0, nullable=False, description="QuantityOnHand")
    quantity_reserved: decimal(14, 3) = pa_pandas.Field(ge=0, nullable=False, description="QuantityReserved")
    reorder_level: decimal(14, 3) = pa_pandas.Field(ge=0, nullable=True, description="ReorderLevel")
    last_count_date: DATE = pa_pandas.Field(nullable=True, description="LastCountDate")

    class Config:
        strict = True


class ErpBillOfMaterialModel(pa_pandas.DataFrameModel):
    """One component line of a manufactured product's bill of materials (BillOfMaterials)."""

    legacy_id: INT = pa_pandas.Field(**LEGACY_ID)
    parent_product_legacy_id: INT = pa_pandas.Field(nullable=False, description="ParentProductID → erp_product")
    component_product_legacy_id: INT = pa_pandas.Field(nullable=False,
                                                       description="ComponentProductID → erp_product")
    quantity: decimal(14, 4) = pa_pandas.Field(gt=0, nullable=False, description="Quantity per parent")
    unit: TEXT = text(max_length=20, description="Unit")

    @pa_pandas.dataframe_check(error="a product cannot be its own component")
    def not_its_own_component(cls, frame: pd.DataFrame) -> pd.Series:
        return (frame["parent_product_legacy_id"] != frame["component_product_legacy_id"]).fillna(True).astype(bool)

    class Config:
        strict = True
