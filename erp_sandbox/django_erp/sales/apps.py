"""The `sales` app, imported as a top-level package so its tables are `sales_...` (the sync's targets)."""

from django.apps import AppConfig


class SalesConfig(AppConfig):
    name = "sales"
    default_auto_field = "django.db.models.BigAutoField"
