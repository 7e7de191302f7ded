"""The outbox in the admin: what is pending, delivered or failed, and putting failed events back."""

import json

from django.contrib import admin
from django.utils.html import format_html

from crm.events import relay
from crm.models import OutboxEvent, OutboxStatus
from crm.webhooks.services import webhooks_manageable_by


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    """Read-only: events are written by the services and moved on by the relay."""

    list_display = ("id", "type", "record_type", "record_id", "actor", "occurred_at", "status", "attempts")
    list_filter = ("status", "record_type", "type")
    search_fields = ("=event_id", "type")
    list_select_related = ("actor",)
    show_full_result_count = False
    date_hierarchy = "occurred_at"
    actions = ["relay_again"]
    fields = (
        "event_id",
        "type",
        "occurred_at",
        "actor",
        "record_type",
        "record_id",
        "pipeline_id",
        "status",
        "attempts",
        "relayed_at",
        "last_error",
        "payload_pretty",
    )
    readonly_fields = fields

    def has_module_permission(self, request):
        return webhooks_manageable_by(request.user)

    def has_view_permission(self, request, obj=None):
        return webhooks_manageable_by(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # an event is never edited: the outbox is read-only

    def has_relay_permission(self, request):
        return webhooks_manageable_by(request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="payload")
    def payload_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False))

    @admin.action(description="Relay the selected failed events again", permissions=["relay"])
    def relay_again(self, request, queryset):
        count = relay.outbox_retry(
            events=list(queryset.filter(status=OutboxStatus.FAILED)), user=request.user
        )
        self.message_user(request, f"{count} failed event(s) put back in the outbox.")
