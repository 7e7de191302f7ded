"""Webhook subscriptions and their deliveries in the admin (CRM Admins and superusers)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from crm.admin.base import ServiceModelAdmin
from crm.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription
from crm.webhooks import services

ANSWER_SHOWN = 80


class ManagedByCrmAdmins:
    def has_module_permission(self, request):
        return services.webhooks_manageable_by(request.user)

    def has_view_permission(self, request, obj=None):
        return services.webhooks_manageable_by(request.user)


class WebhookSubscriptionForm(forms.ModelForm):
    target_url = forms.URLField(max_length=2000, assume_scheme="https")
    event_types = forms.CharField(
        help_text="Comma-separated event types; `*` is a wildcard: opportunity.*, lead.stage_changed, *."
    )
    secret = forms.CharField(required=False, help_text="whsec_ + base64. Empty on create: generated.")

    class Meta:
        model = WebhookSubscription
        fields = ("name", "target_url", "event_types", "pipeline", "secret", "is_active", "owner")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["event_types"] = ", ".join(self.instance.event_types)

    def clean_event_types(self):
        return [part.strip() for part in self.cleaned_data["event_types"].split(",") if part.strip()]


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ManagedByCrmAdmins, ServiceModelAdmin):
    form = WebhookSubscriptionForm
    list_display = (
        "__str__",
        "target_url",
        "types",
        "is_active",
        "consecutive_failures",
        "owner",
        "disabled_at",
    )
    list_filter = ("is_active",)
    search_fields = ("name", "target_url")
    list_select_related = ("owner",)
    autocomplete_fields = ("pipeline",)
    raw_id_fields = ("owner",)
    readonly_fields = ("consecutive_failures", "disabled_at", "disabled_reason", "recent_deliveries")

    def has_add_permission(self, request):
        return services.webhooks_manageable_by(request.user)

    has_change_permission = has_delete_permission = ManagedByCrmAdmins.has_view_permission

    @admin.display(description="event types")
    def types(self, obj):
        return ", ".join(obj.event_types)

    @admin.display(description="recent deliveries")
    def recent_deliveries(self, obj):
        url = f"../../webhookdelivery/?subscription__id__exact={obj.pk}"
        return format_html('<a href="{}">See the deliveries of this subscription</a>', url)

    def create_record(self, request, data):
        return services.webhook_subscription_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.webhook_subscription_update(subscription=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.webhook_subscription_delete(subscription=obj, user=request.user)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("attempted_at", "status_code", "duration_ms", "response_excerpt", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ManagedByCrmAdmins, admin.ModelAdmin):
    """The delivery log: read-only, with redeliver."""

    list_display = (
        "id",
        "webhook_id",
        "event_type",
        "subscription",
        "status",
        "attempts",
        "last_status_code",
        "last_duration_ms",
        "answer",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", "subscription")
    search_fields = ("=webhook_id",)
    list_select_related = ("event", "subscription")
    show_full_result_count = False
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]
    fields = (
        "webhook_id",
        "subscription",
        "event",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_duration_ms",
        "last_response",
        "last_error",
        "delivered_at",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # the delivery log is read-only; redelivering is its own permission

    def has_redeliver_permission(self, request):
        return services.webhooks_manageable_by(request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="answer")
    def answer(self, obj):
        """The first bytes of the last answer, or why there was none (timeout, refused target)."""
        text = obj.last_response or obj.last_error
        return text if len(text) <= ANSWER_SHOWN else text[:ANSWER_SHOWN] + "…"

    @admin.display(description="event", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.action(description="Redeliver the selected deliveries", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        done, refused = 0, []
        for delivery in queryset.exclude(status=DeliveryStatus.DELIVERING):
            try:
                services.webhook_delivery_redeliver(delivery=delivery, user=request.user)
                done += 1
            except ValidationError as exc:
                refused.append(f"{delivery.webhook_id}: {' '.join(exc.messages)}")
        self.message_user(request, f"{done} deliver{'y' if done == 1 else 'ies'} queued again.")
        for message in refused:
            self.message_user(request, message, messages.WARNING)
