"""Root URLs: the admin back office, the REST API and its schema and docs, the health check."""

from django.contrib import admin
from django.urls import path

from crm_project.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
