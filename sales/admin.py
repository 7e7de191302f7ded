"""Admin for opportunities, and the opportunities inline on an account."""

from django.contrib import admin
from django.db.models import Count

from crm.admin import TagListMixin
from crm.admin_utils import (
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    StagePillMixin,
    money,
    register_inline,
)
from sales.models import Opportunity, SalesTeam


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
    ExtensibleInlinesMixin, OwnerDefaultMixin, StagePillMixin, TagListMixin, admin.ModelAdmin
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


@admin.register(SalesTeam)
class SalesTeamAdmin(admin.ModelAdmin):
    list_display = ("name", "manager", "member_count", "is_active")
    list_filter = ("is_active",)
    list_select_related = ("manager",)
    search_fields = ("name", "manager__username", "members__username")
    autocomplete_fields = ("manager", "members")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_total=Count("members", distinct=True))

    @admin.display(description="members", ordering="member_total")
    def member_count(self, obj):
        return obj.member_total
