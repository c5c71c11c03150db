"""The admin of the synced stock per warehouse and bills of material; products are raw ids (thousands)."""

from django.contrib import admin

from inventory.models import BillOfMaterial, Inventory


@admin.register(Inventory)
class InventoryAdmin(admin.ModelAdmin):
    list_display = ("legacy_id", "product", "warehouse", "quantity_on_hand", "quantity_reserved", "reorder_level",
                    "last_count_date")
    list_filter = ("warehouse",)
    list_select_related = ("product",)
    search_fields = ("legacy_id", "product__sku", "product__name")
    raw_id_fields = ("product",)


@admin.register(BillOfMaterial)
class BillOfMaterialAdmin(admin.ModelAdmin):
    list_display = ("legacy_id", "parent_product", "component_product", "quantity", "unit", "is_active")
    list_filter = ("is_active",)
    list_select_related = ("parent_product", "component_product")
    search_fields = ("legacy_id", "parent_product__sku", "component_product__sku")
    raw_id_fields = ("parent_product", "component_product")
