"""The `inventory` app, imported as a top-level package so its tables are `inventory_...` (the sync's targets)."""

from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"
    default_auto_field = "django.db.models.BigAutoField"
