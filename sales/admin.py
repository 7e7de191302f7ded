"""Admin for opportunities, and the opportunities inline on an account."""

from django.contrib import admin

from crm.admin import TagListMixin
from crm.admin_import_export import ExportAdminMixin
from crm.admin_utils import (
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    StagePillMixin,
    money,
    register_inline,
)
from sales.models import Opportunity


class OpportunityInline(admin.TabularInline):
    model = Opportunity
    fk_name = "account"
    fields = ("name", "stage", "status", "amount", "probability", "close_date", "owner")
    readonly_fields = ("stage", "status", "owner")
    extra = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("stage__pipeline", "owner")


register_inline("crm.account", OpportunityInline)


@admin.register(Opportunity)
class OpportunityAdmin(
    ExportAdminMixin,
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    StagePillMixin,
    TagListMixin,
    admin.ModelAdmin,
):
    list_display = (
        "name",
        "account",
        "stage_pill",
        "status",
        "value",
        "probability",
        "close_date",
        "opportunity_type",
        "priority",
        "owner",
        "tag_list",
    )
    list_filter = (
        "status",
        "pipeline",
        "stage",
        "priority",
        "opportunity_type",
        "owner",
        "tags",
        "close_date",
    )
    list_select_related = ("account", "stage", "owner")
    search_fields = ("name", "account__name", "description")
    autocomplete_fields = ("account", "contact", "pipeline", "stage", "owner", "tags", "lead")
    date_hierarchy = "close_date"
    show_full_result_count = False
    readonly_fields = ("status", "closed_at", "lost_reason", "lost_note", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "account", "contact", "pipeline", "stage", "status", "owner", "tags")}),
        (
            "Deal",
            {
                "fields": (
                    "amount",
                    "probability",
                    "close_date",
                    "opportunity_type",
                    "priority",
                    "description",
                )
            },
        ),
        ("Outcome", {"fields": ("closed_at", "lost_reason", "lost_note", "lead"), "classes": ("collapse",)}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    @admin.display(description="amount", ordering="amount")
    def value(self, obj):
        return money(obj.amount)
