"""Admin for activities, and the activity inlines on leads, opportunities, contacts and accounts."""

from django.contrib import admin
from django.utils.html import format_html

from activities.models import Activity
from crm.admin_import_export import ExportAdminMixin
from crm.admin_utils import OwnerDefaultMixin, register_inline


class ActivityInlineBase(admin.TabularInline):
    model = Activity
    fields = ("subject", "activity_type", "status", "priority", "due_date", "owner")
    readonly_fields = ("owner",)
    extra = 0
    show_change_link = True
    ordering = ("-due_date", "-id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner")


def _inline_for(fk: str) -> type:
    return type(f"{fk.title()}ActivityInline", (ActivityInlineBase,), {"fk_name": fk})


for _label, _fk in (
    ("crm.lead", "lead"),
    ("sales.opportunity", "opportunity"),
    ("crm.contact", "contact"),
    ("crm.account", "account"),
):
    register_inline(_label, _inline_for(_fk))


@admin.register(Activity)
class ActivityAdmin(ExportAdminMixin, OwnerDefaultMixin, admin.ModelAdmin):
    list_display = (
        "subject",
        "activity_type",
        "status",
        "priority",
        "due",
        "related_to",
        "owner",
    )
    list_filter = ("activity_type", "status", "priority", "owner", "due_date")
    list_select_related = ("lead", "opportunity", "contact", "account", "owner")
    search_fields = ("subject", "description")
    autocomplete_fields = ("lead", "opportunity", "contact", "account", "owner")
    date_hierarchy = "due_date"
    show_full_result_count = False
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "subject",
                    "activity_type",
                    "status",
                    "priority",
                    "due_date",
                    "completed_at",
                    "owner",
                )
            },
        ),
        ("Related to", {"fields": ("lead", "opportunity", "contact", "account")}),
        ("Details", {"fields": ("description",)}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    @admin.display(description="due", ordering="due_date")
    def due(self, obj):
        if obj.due_date is None:
            return "—"
        if obj.is_overdue:
            return format_html('<strong style="color:#ba2121">{} (overdue)</strong>', obj.due_date)
        return obj.due_date

    @admin.display(description="related to")
    def related_to(self, obj):
        return obj.opportunity or obj.lead or obj.contact or obj.account
