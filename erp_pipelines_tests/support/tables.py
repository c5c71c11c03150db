"""The target tables the tests expect per source, written out rather than read from the catalog under test."""

AS400_TABLES = ["product", "product_measurement", "product_pricing", "product_stock"]
LEGACY_TABLES = ["erp_category", "erp_product", "erp_customer", "erp_order", "erp_invoice", "erp_inventory",
                 "erp_bill_of_material"]
