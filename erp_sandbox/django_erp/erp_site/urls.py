"""Only the admin: the sandbox ERP is there to look at (and edit) what the sync wrote."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
