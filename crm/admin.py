"""Admin for pipelines, tags, lost reasons, accounts, contacts and leads."""

from django.contrib import admin
from django.db import models
from django.db.models import Prefetch

from crm import selectors, services
from crm.admin_import_export import ImportExportAdminMixin
from crm.admin_utils import (
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    StagePillMixin,
    color_swatch,
    money,
)
from crm.models import Account, Contact, Lead, LostReason, Pipeline, Stage, Tag

admin.site.site_header = "CRM back office"
admin.site.site_title = "CRM"
admin.site.index_title = "Sales pipeline"


class TagListMixin:
    """Shows a record's tags in a changelist with one prefetch query for the whole page."""

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("tags", queryset=Tag.objects.only("id", "name", "color")))
        )

    @admin.display(description="tags")
    def tag_list(self, obj):
        return ", ".join(tag.name for tag in obj.tags.all()) or "—"


class StageInline(admin.TabularInline):
    model = Stage
    fields = ("name", "sequence", "probability", "color", "is_won", "is_lost")
    extra = 0
    ordering = ("sequence", "id")


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ("name", "is_default", "is_active", "sequence", "stage_count", "open_lead_count")
    list_filter = ("is_active", "is_default")
    search_fields = ("name", "description")
    inlines = [StageInline]
    actions = ["make_default"]

    def get_queryset(self, request):
        return selectors.pipeline_annotate_counts(super().get_queryset(request))

    @admin.display(description="stages", ordering="stage_count")
    def stage_count(self, obj):
        return obj.stage_count

    @admin.display(description="open leads", ordering="open_lead_count")
    def open_lead_count(self, obj):
        return obj.open_lead_count

    def save_model(self, request, obj, form, change):
        services.pipeline_save(pipeline=obj)

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        for pipeline in objs:
            protected.extend(services.pipeline_delete_problems(pipeline=pipeline))
        return deleted, model_count, perms_needed, protected

    @admin.action(description="Make the selected pipeline the default", permissions=["change"])
    def make_default(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one pipeline to make default.", "error")
            return
        pipeline = services.pipeline_set_default(pipeline=queryset.get())
        self.message_user(request, f"“{pipeline}” is now the default pipeline.")


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    list_display = ("name", "pipeline", "sequence", "probability", "swatch", "is_won", "is_lost")
    list_filter = ("pipeline", "is_won", "is_lost")
    list_select_related = ("pipeline",)
    search_fields = ("name", "pipeline__name")
    autocomplete_fields = ("pipeline",)
    ordering = ("pipeline__sequence", "pipeline__name", "sequence", "id")

    @admin.display(description="colour")
    def swatch(self, obj):
        return color_swatch(obj.color, obj.color)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "swatch", "created_at")
    search_fields = ("name",)

    @admin.display(description="colour")
    def swatch(self, obj):
        return color_swatch(obj.color, obj.color)


@admin.register(LostReason)
class LostReasonAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name",)


class ContactInline(admin.TabularInline):
    model = Contact
    fields = ("first_name", "last_name", "email", "phone", "job_title", "is_primary", "is_active")
    extra = 0
    show_change_link = True


@admin.register(Account)
class AccountAdmin(
    ImportExportAdminMixin, ExtensibleInlinesMixin, OwnerDefaultMixin, TagListMixin, admin.ModelAdmin
):
    list_display = (
        "name",
        "account_type",
        "industry",
        "rating",
        "billing_city",
        "billing_country",
        "owner",
        "contacts",
        "opportunities",
        "open_value",
        "won_value",
        "tag_list",
    )
    list_filter = ("account_type", "industry", "rating", "is_active", "owner", "tags", "created_at")
    list_select_related = ("owner", "parent")
    search_fields = ("name", "website", "phone", "billing_city", "billing_country")
    autocomplete_fields = ("parent", "owner", "tags")
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [ContactInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "account_type", "industry", "rating", "parent", "owner", "tags")}),
        ("Company", {"fields": ("website", "phone", "employees", "annual_revenue", "is_active")}),
        (
            "Billing address",
            {
                "fields": (
                    "billing_street",
                    "billing_city",
                    "billing_state",
                    "billing_zip",
                    "billing_country",
                )
            },
        ),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def get_queryset(self, request):
        return selectors.account_annotate_aggregates(super().get_queryset(request))

    @admin.display(description="contacts", ordering="contact_count")
    def contacts(self, obj):
        return obj.contact_count

    @admin.display(description="opportunities", ordering="opportunity_count")
    def opportunities(self, obj):
        return obj.opportunity_count

    @admin.display(description="open value", ordering="open_value")
    def open_value(self, obj):
        return money(obj.open_value)

    @admin.display(description="won value", ordering="won_value")
    def won_value(self, obj):
        return money(obj.won_value)


@admin.register(Contact)
class ContactAdmin(
    ImportExportAdminMixin, ExtensibleInlinesMixin, OwnerDefaultMixin, TagListMixin, admin.ModelAdmin
):
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
    list_filter = ("is_active", "is_primary", "do_not_call", "email_opt_out", "owner", "tags")
    list_select_related = ("account", "owner")
    search_fields = ("first_name", "last_name", "email", "phone", "mobile", "account__name")
    autocomplete_fields = ("account", "owner", "tags")
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": (("first_name", "last_name"), "account", "is_primary", "job_title", "department")}),
        ("Reach", {"fields": ("email", "phone", "mobile", "do_not_call", "email_opt_out")}),
        ("Management", {"fields": ("owner", "tags", "is_active")}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    @admin.display(description="name", ordering="last_name")
    def full_name(self, obj):
        return obj.full_name


@admin.register(Lead)
class LeadAdmin(
    ImportExportAdminMixin,
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    StagePillMixin,
    TagListMixin,
    admin.ModelAdmin,
):
    list_display = (
        "name",
        "company_name",
        "contact_name",
        "stage_pill",
        "status",
        "priority",
        "rating",
        "source",
        "revenue",
        "probability",
        "owner",
        "tag_list",
        "created_at",
    )
    list_filter = (
        "status",
        "pipeline",
        "stage",
        "priority",
        "rating",
        "source",
        "owner",
        "tags",
        "created_at",
    )
    list_select_related = ("stage", "owner")
    search_fields = ("name", "contact_name", "email", "company_name", "phone")
    autocomplete_fields = ("pipeline", "stage", "owner", "tags")
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = (
        "status",
        "lost_reason",
        "lost_note",
        "converted_at",
        "converted_account",
        "converted_contact",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "pipeline", "stage", "status", "owner", "tags")}),
        ("Person and company", {"fields": ("contact_name", "email", "phone", "company_name", "job_title")}),
        (
            "Qualification",
            {"fields": ("priority", "rating", "source", "expected_revenue", "probability", "description")},
        ),
        (
            "Outcome",
            {
                "fields": (
                    "lost_reason",
                    "lost_note",
                    "converted_at",
                    "converted_account",
                    "converted_contact",
                ),
                "classes": ("collapse",),
            },
        ),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    @admin.display(description="expected revenue", ordering="expected_revenue")
    def revenue(self, obj):
        return money(obj.expected_revenue)
