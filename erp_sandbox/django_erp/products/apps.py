"""The `products` app, imported as a top-level package so its tables are `products_...` (the sync's targets)."""

from django.apps import AppConfig


class ProductsConfig(AppConfig):
    name = "products"
    default_auto_field = "django.db.models.BigAutoField"
