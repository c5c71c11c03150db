"""The application's product models: what both seeds import into (4D: `Category`, `Product` keyed by
`legacy_id`; AS400: `Product` keyed by `item_number`, with its measurements, stock and prices).

A synced table keeps the source's business key in columns of its own with a unique constraint (the
sync matches rows by it); references to other tables are the usual surrogate ids, which the sync resolves.
The application owns these tables (its migrations); erp_pipelines only reads and writes rows. Fields the
sync never writes carry database defaults (`db_default`): a Python-only `default=` is invisible to a row
inserted outside the ORM, and a NOT NULL column without one would refuse every insert the sync makes.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SourceTimestampField(models.DateTimeField):
    """A local time as the source recorded it, without a time zone (`timestamp without time zone`): the
    legacy systems store local times, and Django's DateTimeField would be `timestamp with time zone`."""

    def db_type(self, connection) -> str:
        return "timestamp"

    def get_prep_value(self, value):
        """Kept naive: with USE_TZ, DateTimeField would make a value aware and PostgreSQL would then store
        it shifted to UTC; an aware value (from an admin form) is taken as wall time in the current zone."""
        value = self.to_python(value)
        if value is not None and timezone.is_aware(value):
            value = timezone.make_naive(value)
        return value


class Category(models.Model):
    name = models.TextField(unique=True)
    description = models.TextField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    legacy_id = models.BigIntegerField(unique=True, null=True, blank=True, help_text="ProductID in the 4D ERP")
    item_number = models.TextField(unique=True, null=True, blank=True, help_text="ITEMNO in the AS400 item master")
    name = models.TextField()
    description = models.TextField(null=True, blank=True)
    sku = models.TextField(unique=True, null=True, blank=True)
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="products")
    item_class = models.TextField(null=True, blank=True, help_text="ITEMCLS in the AS400 item master")
    unit_of_measure = models.TextField(null=True, blank=True)
    list_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    cost_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    tax_rate = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)
    is_active = models.BooleanField(default=True, db_default=True)
    is_purchased = models.BooleanField(default=False, db_default=False)
    is_manufactured = models.BooleanField(default=False, db_default=False)
    created_on = models.DateField(null=True, blank=True)
    source_changed_at = SourceTimestampField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="set when the source deleted the product")
    internal_notes = models.TextField(blank=True, default="", db_default="",
                                      help_text="kept by the application: no sync writes it")

    def __str__(self) -> str:
        return f"{self.sku or self.item_number or self.legacy_id} {self.name}"


class ProductMeasurement(models.Model):
    item_number = models.TextField(help_text="ITEMNO in the AS400: the record's key at the source")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="measurements")
    measure_type = models.TextField()
    value = models.DecimalField(max_digits=11, decimal_places=4)
    unit = models.TextField(null=True, blank=True)
    source_changed_at = SourceTimestampField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item_number", "measure_type"], name="uq_measurement_key")]


class ProductStock(models.Model):
    item_number = models.TextField(help_text="ITEMNO in the AS400: the record's key at the source")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="stock")
    warehouse = models.TextField()
    on_hand = models.DecimalField(max_digits=11, decimal_places=3)
    allocated = models.DecimalField(max_digits=11, decimal_places=3)
    on_order = models.DecimalField(max_digits=11, decimal_places=3)
    unit_of_measure = models.TextField(null=True, blank=True)
    bin_location = models.TextField(null=True, blank=True)
    is_lot_controlled = models.BooleanField()
    source_changed_at = SourceTimestampField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item_number", "warehouse"], name="uq_stock_key")]


class ProductPricing(models.Model):
    item_number = models.TextField(help_text="ITEMNO in the AS400: the record's key at the source")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="prices")
    price_list = models.TextField()
    effective_on = models.DateField()
    expires_on = models.DateField(null=True, blank=True)
    unit_price = models.DecimalField(max_digits=11, decimal_places=4)
    currency = models.TextField()
    source_changed_at = SourceTimestampField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item_number", "price_list", "effective_on"],
                                               name="uq_pricing_key")]
