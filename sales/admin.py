"""Admin for opportunities, and the opportunities inline on an account."""

from django.contrib import admin

from crm.admin import TagListMixin
from crm.admin_utils import (
    ClosedRecordMixin,
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    ServiceSaveMixin,
    StagePillMixin,
    money,
    register_inline,
    run_transition,
)
from sales import services
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
    ServiceSaveMixin,
    ClosedRecordMixin,
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

    actions = ["mark_won", "mark_lost"]

    def create_record(self, request, data):
        return services.opportunity_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.opportunity_update(opportunity=obj, user=request.user, data=data)

    @admin.display(description="amount", ordering="amount")
    def value(self, obj):
        return money(obj.amount)

    @admin.action(description="Mark the selected opportunities won", permissions=["change"])
    def mark_won(self, request, queryset):
        run_transition(
            self,
            request,
            queryset,
            lambda opportunity: services.opportunity_mark_won(opportunity=opportunity, user=request.user),
            "marked won",
        )

    @admin.action(description="Mark the selected opportunities lost", permissions=["change"])
    def mark_lost(self, request, queryset):
        run_transition(
            self,
            request,
            queryset,
            lambda opportunity: services.opportunity_mark_lost(opportunity=opportunity, user=request.user),
            "marked lost",
        )
