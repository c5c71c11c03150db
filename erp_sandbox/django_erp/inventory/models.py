"""The application's stock per warehouse and bills of material (the 4D ERP's Inventory, BillOfMaterials)."""

from __future__ import annotations

from django.db import models
from products.models import Product


class Inventory(models.Model):
    legacy_id = models.BigIntegerField(unique=True, help_text="InventoryID in the 4D ERP")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="inventory")
    warehouse = models.TextField()
    quantity_on_hand = models.DecimalField(max_digits=14, decimal_places=3)
    quantity_reserved = models.DecimalField(max_digits=14, decimal_places=3)
    reorder_level = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    last_count_date = models.DateField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "inventory"


class BillOfMaterial(models.Model):
    legacy_id = models.BigIntegerField(unique=True, help_text="BomID in the 4D ERP")
    parent_product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="components")
    component_product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="used_in")
    quantity = models.DecimalField(max_digits=14, decimal_places=4)
    unit = models.TextField(null=True, blank=True)
    is_active = models.BooleanField(default=True, db_default=True,
                                    help_text="false once the line was deleted in the 4D ERP")
