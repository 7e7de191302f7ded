"""Contacts: the list and the page, written by the contact services."""

from django.contrib import admin
from django.urls import reverse

from crm import selectors, services
from crm.admin.base import (
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    ServiceHistoryAdmin,
    StaleEditGuardMixin,
    VisibleRecordsAdminMixin,
)
from crm.admin.duplicates import DuplicatesAdminMixin, MergeAdminMixin
from crm.admin.import_export import ImportExportAdminMixin
from crm.admin.record import (
    KeyFigure,
    RecordPageMixin,
)
from crm.admin.scale import ScalableChangeListMixin
from crm.admin.tags import TagListMixin
from crm.automation.admin_actions import RunAutomationRuleMixin
from crm.marketing.admin_actions import AddToCampaignMixin, AddToSegmentMixin
from crm.marketing.admin_filters import SegmentListFilter
from crm.models import Contact
from crm.sequences.admin_actions import EnrollInSequenceMixin


@admin.register(Contact)
class ContactAdmin(
    AddToSegmentMixin,
    AddToCampaignMixin,
    RunAutomationRuleMixin,
    EnrollInSequenceMixin,
    StaleEditGuardMixin,
    MergeAdminMixin,
    DuplicatesAdminMixin,
    RecordPageMixin,
    ImportExportAdminMixin,
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    TagListMixin,
    ScalableChangeListMixin,
    VisibleRecordsAdminMixin,
    ServiceHistoryAdmin,
):
    actions = [
        "merge_selected",
        "enroll_in_sequence",
        "run_automation_rule",
        "add_to_segment",
        "add_to_campaign",
    ]
    list_display = (
        "full_name",
        "account",
        "email",
        "phone",
        "job_title",
        "is_primary",
        "is_active",
        "owner",
        "tag_list",
    )
    list_filter = (
        "is_active",
        "is_primary",
        "do_not_call",
        "email_opt_out",
        "owner",
        "tags",
        SegmentListFilter,
    )
    list_select_related = ("account", "owner")
    search_fields = ("first_name", "last_name", "email", "phone", "mobile", "account__name")
    autocomplete_fields = ("account", "owner", "tags")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": (("first_name", "last_name"), "account", "is_primary", "job_title", "department")}),
        ("Reach", {"fields": ("email", "phone", "mobile", "do_not_call", "email_opt_out")}),
        ("Management", {"fields": ("owner", "tags", "is_active")}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def get_key_figures(self, request, obj):
        owner = obj.owner
        figures = [
            KeyFigure("Account", str(obj.account) if obj.account_id else "None"),
            KeyFigure("Email", obj.email or "—"),
            KeyFigure("Phone", obj.phone or "—"),
            KeyFigure("Owner", (owner.get_full_name() or owner.get_username()) if owner else "Nobody"),
        ]
        if obj.account_id:
            figures[0].url = reverse("admin:crm_account_change", args=[obj.account_id])
        return figures

    def visible_records(self, user):
        return selectors.contact_visible_to(user)

    def create_record(self, request, data):
        return services.contact_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.contact_update(contact=obj, user=request.user, data=data)

    def editable_records(self, user):
        return selectors.contact_editable_by(user)

    @admin.display(description="name", ordering="last_name")
    def full_name(self, obj):
        return obj.full_name
