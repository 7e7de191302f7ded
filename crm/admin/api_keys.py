"""API keys in the admin: make one (its key shown once), change its scopes or expiry, revoke it."""

from django import forms
from django.contrib import admin, messages

from crm import services
from crm.admin.base import ServiceModelAdmin
from crm.models import ApiKey
from crm.selectors import user_sees_everything


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "expires_at", "rate")
        help_texts = {
            "scopes": 'Per resource of /api/v1/crm/ (or "*" for all): "read" or "write". '
            'Example: {"leads": "read", "activities": "write"}.',
        }


@admin.register(ApiKey)
class ApiKeyAdmin(ServiceModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "user", "scopes", "expires_at", "last_used_at", "status")
    list_filter = ("revoked_at",)
    list_select_related = ("user",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "user", "last_used_at", "revoked_at", "created_at")
    actions = ["revoke_selected"]

    def get_queryset(self, request):
        keys = super().get_queryset(request)
        return keys if user_sees_everything(request.user) else keys.filter(user=request.user)

    def get_fields(self, request, obj=None):
        fields = ("name", "scopes", "expires_at", "rate")
        return (*fields, *self.readonly_fields) if obj else fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else ()

    @admin.display(description="status")
    def status(self, obj):
        if obj.revoked_at:
            return "revoked"
        return "active" if obj.is_active else "expired"

    def create_record(self, request, data):
        key, raw = services.api_key_create(user=request.user, data=data)
        self.message_user(
            request,
            f"The key “{key.name}” is: {raw} — copy it now: it is not shown again.",
            messages.WARNING,
        )
        return key

    def update_record(self, request, obj, data):
        return services.api_key_update(user=request.user, key=obj, data=data)

    def delete_record(self, request, obj):
        # Deleting a key revokes it: the row stays, with when it was last used, for the record.
        services.api_key_revoke(user=request.user, key=obj)

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        for key in queryset:
            services.api_key_revoke(user=request.user, key=key)
        self.message_user(request, f"{queryset.count()} key(s) revoked.", messages.SUCCESS)
