"""The application's customers, orders and invoices (the 4D ERP's Customers, Orders, Invoices)."""

from __future__ import annotations

from django.db import models


class Customer(models.Model):
    legacy_id = models.BigIntegerField(unique=True, help_text="CustomerID in the 4D ERP")
    name = models.TextField()
    email = models.TextField(null=True, blank=True)
    phone = models.TextField(null=True, blank=True)
    street = models.TextField(null=True, blank=True)
    city = models.TextField(null=True, blank=True)
    postal_code = models.TextField(null=True, blank=True)
    country = models.TextField(null=True, blank=True)
    credit_limit = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    is_active = models.BooleanField()
    created_on = models.DateField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    legacy_id = models.BigIntegerField(unique=True, help_text="OrderID in the 4D ERP")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    order_date = models.DateField()
    order_time = models.TimeField(null=True, blank=True)
    delivery_date = models.DateField(null=True, blank=True)
    status = models.TextField()
    total_amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.TextField()
    deleted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"order {self.legacy_id}"


class Invoice(models.Model):
    legacy_id = models.BigIntegerField(unique=True, help_text="InvoiceID in the 4D ERP")
    invoice_number = models.TextField()
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="invoices")
    invoice_date = models.DateField()
    due_date = models.DateField(null=True, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    tax_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    is_paid = models.BooleanField()
    deleted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.invoice_number
