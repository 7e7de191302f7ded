"""Root URLs: the admin back office, the REST API and its schema and docs."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
