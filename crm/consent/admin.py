"""Consent in the admin: purposes, the consent records' list, and on every lead's and contact's page
the person's consents and channel preferences as rows (written by the consent services)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError

from crm.admin.base import ServiceHistoryAdmin, register_inline, register_inline_saver, save_inline_forms
from crm.consent import selectors, services
from crm.models import ChannelPreference, ConsentPurpose, ConsentRecord


@admin.register(ConsentPurpose)
class ConsentPurposeAdmin(ServiceHistoryAdmin):
    list_display = ("name", "requires_consent", "is_active", "updated_at")
    list_filter = ("requires_consent", "is_active")
    search_fields = ("name",)
    fields = ("name", "description", "requires_consent", "is_active")

    def create_record(self, request, data):
        return services.consent_purpose_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.consent_purpose_update(purpose=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.consent_purpose_delete(purpose=obj, user=request.user)


class InForceFilter(admin.SimpleListFilter):
    title = "in force"
    parameter_name = "in_force"

    def lookups(self, request, model_admin):
        return (("yes", "In force"), ("no", "Withdrawn"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(withdrawn_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(withdrawn_at__isnull=False)
        return queryset


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ServiceHistoryAdmin):
    list_display = (
        "purpose",
        "person",
        "lawful_basis",
        "source",
        "granted_at",
        "withdrawn_at",
        "recorded_by",
    )
    list_filter = (InForceFilter, "purpose", "lawful_basis", "source", "granted_at")
    list_select_related = ("purpose", "lead", "contact", "recorded_by")
    search_fields = ("purpose__name", "lead__name", "lead__email", "contact__last_name", "contact__email")
    autocomplete_fields = ("purpose", "lead", "contact")
    readonly_fields = ("recorded_by", "created_at", "updated_at")
    fields = (
        "purpose",
        "lead",
        "contact",
        "lawful_basis",
        "source",
        "granted_at",
        "withdrawn_at",
        "evidence",
        "recorded_by",
        "created_at",
        "updated_at",
    )
    date_hierarchy = "granted_at"
    show_full_result_count = False
    actions = ["withdraw_selected"]

    def get_queryset(self, request):
        return selectors.consent_list(user=request.user)

    def get_readonly_fields(self, request, obj=None):
        readonly = self.readonly_fields
        if obj is not None:  # a consent stays about its purpose and person
            readonly = ("purpose", "lead", "contact", *readonly)
        return readonly

    @admin.display(description="person")
    def person(self, obj):
        return obj.lead or obj.contact

    @admin.action(description="Withdraw the selected consents", permissions=["change"])
    def withdraw_selected(self, request, queryset):
        done = 0
        for consent in queryset:
            try:
                services.consent_withdraw(consent=consent, user=request.user)
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(
                    request, f"{consent}: {' '.join(getattr(exc, 'messages', [str(exc)]))}", messages.ERROR
                )
                continue
            done += 1
        self.message_user(request, f"{done} consent(s) withdrawn.", messages.SUCCESS)

    def create_record(self, request, data):
        return services.consent_grant(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.consent_update(consent=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.consent_delete(consent=obj, user=request.user)


@admin.register(ChannelPreference)
class ChannelPreferenceAdmin(ServiceHistoryAdmin):
    """Read here, changed on the person's page (or by the person on their preference page)."""

    list_display = ("channel", "allowed", "person", "source", "recorded_by", "updated_at")
    list_filter = ("channel", "allowed", "source")
    list_select_related = ("lead", "contact", "recorded_by")
    search_fields = ("lead__name", "lead__email", "contact__last_name", "contact__email")
    fields = ("lead", "contact", "channel", "allowed", "source", "recorded_by", "updated_at")
    readonly_fields = fields
    show_full_result_count = False

    def get_queryset(self, request):
        return selectors.channel_preference_list(user=request.user)

    @admin.display(description="person")
    def person(self, obj):
        return obj.lead or obj.contact

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def create_record(self, request, data):
        raise PermissionDenied

    def update_record(self, request, obj, data):
        raise PermissionDenied

    def delete_record(self, request, obj):
        services.channel_preference_delete(preference=obj, user=request.user)


# --- on the lead's and the contact's page -------------------------------------------------------------


class _PurposeChoicesOnce:
    """The purposes' choices read once per page, not once per row."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "purpose" and field is not None:
            field.choices = list(field.choices)
        return field


class ConsentRecordInline(_PurposeChoicesOnce, admin.TabularInline):
    model = ConsentRecord
    fields = ("purpose", "lawful_basis", "source", "granted_at", "withdrawn_at", "evidence", "recorded_by")
    readonly_fields = ("recorded_by",)
    extra = 0
    verbose_name_plural = "consents (withdraw one by setting its withdrawn date; never delete evidence)"
    formfield_overrides = {
        ConsentRecord._meta.get_field("evidence").__class__: {
            "widget": forms.Textarea(attrs={"rows": 2, "cols": 30})
        }
    }

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("purpose", "recorded_by")


class ChannelPreferenceInline(admin.TabularInline):
    model = ChannelPreference
    fields = ("channel", "allowed", "source", "recorded_by", "updated_at")
    readonly_fields = ("recorded_by", "updated_at")
    extra = 0
    max_num = len(ChannelPreference._meta.get_field("channel").choices)
    verbose_name_plural = "channel preferences (no row: allowed)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("recorded_by")


def save_consent_inline(request, formset) -> None:
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.consent_grant(user=user, data=data),
        update=lambda user, obj, data: services.consent_update(consent=obj, user=user, data=data),
        delete=lambda user, obj: services.consent_delete(consent=obj, user=user),
    )


def _preference_create(user, data):
    person_record = data.get("lead") or data.get("contact")
    return services.channel_preference_set(
        user=user,
        person_record=person_record,
        channel=data.get("channel", ""),
        allowed=data.get("allowed", True),
        source=data.get("source") or "other",
    )


def save_preference_inline(request, formset) -> None:
    save_inline_forms(
        request,
        formset,
        create=_preference_create,
        update=lambda user, obj, data: services.channel_preference_update(
            preference=obj, user=user, data=data
        ),
        delete=lambda user, obj: services.channel_preference_delete(preference=obj, user=user),
    )


register_inline_saver(ConsentRecord, save_consent_inline)
register_inline_saver(ChannelPreference, save_preference_inline)
for _label in ("crm.lead", "crm.contact"):
    register_inline(_label, ConsentRecordInline)
    register_inline(_label, ChannelPreferenceInline)
