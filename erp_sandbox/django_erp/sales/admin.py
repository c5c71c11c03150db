"""The admin of the synced customers, orders and invoices, searchable by the 4D ERP's ids (`legacy_id`)."""

from django.contrib import admin

from sales.models import Customer, Invoice, Order


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("legacy_id", "name", "email", "city", "country", "credit_limit", "is_active", "deleted_at")
    list_filter = ("is_active", "country")
    search_fields = ("name", "email", "legacy_id")


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("legacy_id", "customer", "order_date", "delivery_date", "status", "total_amount", "currency",
                    "deleted_at")
    list_filter = ("status", "currency")
    list_select_related = ("customer",)
    search_fields = ("legacy_id", "customer__name", "customer__legacy_id")
    date_hierarchy = "order_date"
    raw_id_fields = ("customer",)


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ("invoice_number", "legacy_id", "order", "invoice_date", "due_date", "amount", "tax_amount",
                    "is_paid", "deleted_at")
    list_filter = ("is_paid",)
    list_select_related = ("order",)
    search_fields = ("invoice_number", "legacy_id", "order__legacy_id")
    date_hierarchy = "invoice_date"
    raw_id_fields = ("order",)
