"""The admin of the synced products: searchable by every source's key (SKU, 4D `legacy_id`, AS400
`item_number`), so an operator can find a row named in a sync's report. Foreign keys to products are raw
ids: a select of every product would render thousands of options."""

from django.contrib import admin

from products.models import Category, Product, ProductMeasurement, ProductPricing, ProductStock


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "description")
    search_fields = ("name",)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "category", "list_price", "is_active", "deleted_at")
    list_filter = ("category", "is_active")
    list_select_related = ("category",)
    search_fields = ("sku", "name", "legacy_id", "item_number")


@admin.register(ProductMeasurement)
class ProductMeasurementAdmin(admin.ModelAdmin):
    list_display = ("item_number", "product", "measure_type", "value", "unit", "source_changed_at")
    list_filter = ("measure_type",)
    list_select_related = ("product",)
    search_fields = ("item_number", "product__sku", "product__name")
    raw_id_fields = ("product",)


@admin.register(ProductStock)
class ProductStockAdmin(admin.ModelAdmin):
    list_display = ("item_number", "warehouse", "on_hand", "allocated", "on_order", "bin_location",
                    "is_lot_controlled", "source_changed_at")
    list_filter = ("warehouse", "is_lot_controlled")
    search_fields = ("item_number", "bin_location", "product__sku")
    raw_id_fields = ("product",)


@admin.register(ProductPricing)
class ProductPricingAdmin(admin.ModelAdmin):
    list_display = ("item_number", "price_list", "effective_on", "expires_on", "unit_price", "currency")
    list_filter = ("price_list", "currency")
    search_fields = ("item_number", "product__sku")
    raw_id_fields = ("product",)
