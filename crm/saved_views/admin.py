"""Saved views in the admin: one's own views and those shared with one, renamed, shared or deleted here;
they are made and opened on the lists themselves."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils.html import format_html

from crm.admin.base import ServiceModelAdmin
from crm.models import SavedView

from .services import (
    saved_view_create,
    saved_view_delete,
    saved_view_editable_by,
    saved_view_list,
    saved_view_update,
)
from .specs import list_spec


@admin.register(SavedView)
class SavedViewAdmin(ServiceModelAdmin):
    saved_views_enabled = False
    list_display = ("name", "list_key", "owner", "sharing", "team", "is_default", "open_link")
    list_filter = ("list_key", "sharing", "is_default")
    list_select_related = ("owner", "team")
    search_fields = ("name",)
    fields = ("name", "list_key", "filters", "search", "ordering", "columns", "sharing", "team", "is_default")
    autocomplete_fields = ("team",)

    def get_queryset(self, request):
        return saved_view_list(user=request.user)

    def get_readonly_fields(self, request, obj=None):
        return ("list_key",) if obj is not None else ()

    def _editable(self, request, obj) -> bool:
        return obj is None or saved_view_editable_by(request.user).filter(pk=obj.pk).exists()

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._editable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._editable(request, obj)

    def create_record(self, request, data):
        return saved_view_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return saved_view_update(saved_view=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        try:
            saved_view_delete(saved_view=obj, user=request.user)
        except PermissionDenied as exc:
            raise ValidationError(str(exc)) from exc

    @admin.display(description="open")
    def open_link(self, obj):
        spec = list_spec(obj.list_key, self.admin_site)
        if spec is None:
            return "—"
        opts = spec.model._meta
        url = reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist")
        return format_html('<a href="{}?view={}">Open the list</a>', url, obj.pk)
