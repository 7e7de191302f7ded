"""Admin for pipelines, tags, lost reasons, accounts, contacts and leads."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Prefetch
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html_join

from crm import (
    admin_users,  # noqa: F401  (deleting a user goes through the services)
    selectors,
    services,
)
from crm.admin_bulk import BulkActionsMixin
from crm.admin_convert import LeadConvertAdminMixin
from crm.admin_duplicates import DuplicatesAdminMixin, MergeAdminMixin
from crm.admin_import_export import ImportExportAdminMixin
from crm.admin_kanban import KanbanAdminMixin
from crm.admin_record import (
    MarkLostAdminMixin,
    RecordAction,
    RecordPageMixin,
    ReopenAdminMixin,
    apply_service_errors,
    register_timeline,
    stage_history_timeline_entries,
)
from crm.admin_scale import ScalableChangeListMixin, StageListFilter
from crm.admin_utils import (
    ClosedRecordMixin,
    ColorPickerMixin,
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    ServiceHistoryAdmin,
    ServiceModelAdmin,
    StagePillMixin,
    StaleEditGuardMixin,
    VisibleRecordsAdminMixin,
    WinProbabilityAdminMixin,
    color_swatch,
    money,
    register_inline_saver,
    save_inline_forms,
)
from crm.filters import LeadFilter
from crm.models import Account, Contact, Lead, LeadStatus, LostReason, Pipeline, ScoringRule, Stage, Tag
from crm.scoring import lead_scores_refresh, shown_breakdown


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


class StageInlineFormSet(BaseInlineFormSet):
    def clean(self):
        """Validate each changed stage as the stage services will, so a rule broken by a row (a second
        won stage) is an error on that row rather than a failure while saving."""
        super().clean()
        for form in self.forms:
            if form in self.deleted_forms or not form.has_changed() or form.errors:
                continue
            try:
                # A new pipeline has no stages in the database yet to conflict with.
                form.instance.full_clean(exclude=["pipeline"] if self.instance.pk is None else None)
            except ValidationError as exc:
                apply_service_errors(form, exc)


class StageInline(ColorPickerMixin, admin.TabularInline):
    """A pipeline's stages, ordered by dragging their rows (static/crm/stage_sort.js) or by sequence."""

    model = Stage
    formset = StageInlineFormSet
    fields = ("name", "sequence", "probability", "color", "is_won", "is_lost", "rotting_days")
    extra = 0
    ordering = ("sequence", "id")

    class Media:
        js = ("crm/stage_sort.js",)


def save_stage_inline(request, formset) -> None:
    """A pipeline's stages are written by the stage services, in the order shown."""
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.stage_create(user=user, data=data),
        update=lambda user, obj, data: services.stage_update(stage=obj, user=user, data=data),
        delete=lambda user, obj: services.record_delete(instance=obj, user=user),
    )


register_inline_saver(Stage, save_stage_inline)


@admin.register(Pipeline)
class PipelineAdmin(ServiceModelAdmin):
    list_display = ("name", "is_default", "is_active", "sequence", "stage_count", "open_lead_count")
    list_filter = ("is_active", "is_default")
    search_fields = ("name", "description")
    inlines = [StageInline]
    actions = ["make_default"]

    def get_queryset(self, request):
        return selectors.pipeline_annotate_counts(super().get_queryset(request), user=request.user)

    @admin.display(description="stages", ordering="stage_count")
    def stage_count(self, obj):
        return obj.stage_count

    @admin.display(description="open leads", ordering="open_lead_count")
    def open_lead_count(self, obj):
        return obj.open_lead_count

    def create_record(self, request, data):
        return services.pipeline_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.pipeline_update(pipeline=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.pipeline_delete(pipeline=obj, user=request.user)

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
        pipeline = services.pipeline_set_default(pipeline=queryset.get(), user=request.user)
        self.message_user(request, f"“{pipeline}” is now the default pipeline.")


@admin.register(Stage)
class StageAdmin(ColorPickerMixin, ServiceModelAdmin):
    list_display = ("name", "pipeline", "sequence", "probability", "swatch", "is_won", "is_lost")
    list_filter = ("pipeline", "is_won", "is_lost")
    list_select_related = ("pipeline",)
    search_fields = ("name", "pipeline__name")
    autocomplete_fields = ("pipeline",)
    ordering = ("pipeline__sequence", "pipeline__name", "sequence", "id")

    def get_readonly_fields(self, request, obj=None):
        # A stage stays in its pipeline (stage_update refuses the move): its records would leave it.
        readonly = tuple(super().get_readonly_fields(request, obj))
        return (*readonly, "pipeline") if obj is not None else readonly

    def create_record(self, request, data):
        return services.stage_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.stage_update(stage=obj, user=request.user, data=data)

    @admin.display(description="colour")
    def swatch(self, obj):
        return color_swatch(obj.color, obj.color)


@admin.register(Tag)
class TagAdmin(ColorPickerMixin, ServiceModelAdmin):
    list_display = ("name", "swatch", "created_at")
    search_fields = ("name",)

    def create_record(self, request, data):
        return services.tag_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.tag_update(tag=obj, user=request.user, data=data)

    @admin.display(description="colour")
    def swatch(self, obj):
        return color_swatch(obj.color, obj.color)


class ScoreBandFilter(admin.SimpleListFilter):
    title = "score"
    parameter_name = "score_band"
    bands = {"hot": (70, 100), "warm": (40, 69), "cold": (0, 39)}

    def lookups(self, request, model_admin):
        return [("hot", "70–100"), ("warm", "40–69"), ("cold", "0–39"), ("none", "Not scored")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(score__isnull=True)
        if self.value() in self.bands:
            low, high = self.bands[self.value()]
            return queryset.filter(score__gte=low, score__lte=high)
        return queryset


@admin.register(ScoringRule)
class ScoringRuleAdmin(ServiceModelAdmin):
    list_display = ("criterion", "value", "points", "is_active")
    list_editable = ("points", "is_active")
    list_filter = ("criterion", "is_active")
    actions = ["recompute_scores"]

    def create_record(self, request, data):
        return services.scoring_rule_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.scoring_rule_update(scoring_rule=obj, user=request.user, data=data)

    @admin.action(description="Recompute every lead's score now", permissions=["change"])
    def recompute_scores(self, request, queryset):
        written = lead_scores_refresh()
        self.message_user(request, f"Recomputed the scores of {written} leads.", messages.SUCCESS)


@admin.register(LostReason)
class LostReasonAdmin(ServiceModelAdmin):
    list_display = ("name", "is_active", "lead_count", "opportunity_count")
    list_filter = ("is_active",)
    search_fields = ("name",)

    def create_record(self, request, data):
        return services.lost_reason_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.lost_reason_update(lost_reason=obj, user=request.user, data=data)

    def get_queryset(self, request):
        return selectors.lost_reason_annotate_counts(super().get_queryset(request), user=request.user)

    @admin.display(description="leads lost", ordering="lead_count")
    def lead_count(self, obj):
        return obj.lead_count

    @admin.display(description="opportunities lost", ordering="opportunity_count")
    def opportunity_count(self, obj):
        return obj.opportunity_count


class ContactInlineFormSet(BaseInlineFormSet):
    def clean(self):
        """Validate each changed contact as contact_create/contact_update will (one primary contact per
        account, counting the other rows too), so a refusal is an error on its row."""
        super().clean()
        for form in self.forms:
            if form in self.deleted_forms or form.errors or not form.has_changed():
                continue
            try:
                # A new account has no contacts in the database yet to conflict with.
                form.instance.full_clean(exclude=["account"] if self.instance.pk is None else None)
            except ValidationError as exc:
                apply_service_errors(form, exc)
        primary = [
            form
            for form in self.forms
            if form not in self.deleted_forms and not form.errors and form.cleaned_data.get("is_primary")
        ]
        for form in primary[1:]:
            form.add_error("is_primary", "This account already has a primary contact.")


def save_contact_inline(request, formset) -> None:
    """Contacts added, changed or deleted on an account's page are written by the contact services."""
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.contact_create(user=user, data=data),
        update=lambda user, obj, data: services.contact_update(contact=obj, user=user, data=data),
        delete=lambda user, obj: services.record_delete(instance=obj, user=user),
    )


register_inline_saver(Contact, save_contact_inline)


class ContactInline(admin.TabularInline):
    model = Contact
    formset = ContactInlineFormSet
    fields = ("first_name", "last_name", "email", "phone", "job_title", "is_primary", "is_active")
    extra = 0
    show_change_link = True


@admin.register(Account)
class AccountAdmin(
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
    actions = ["merge_selected"]
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

    def visible_records(self, user):
        return selectors.account_visible_to(user)

    def create_record(self, request, data):
        return services.account_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.account_update(account=obj, user=request.user, data=data)

    def editable_records(self, user):
        return selectors.account_editable_by(user)

    def get_queryset(self, request):
        return selectors.account_annotate_aggregates(super().get_queryset(request), user=request.user)

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
    actions = ["merge_selected"]
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
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": (("first_name", "last_name"), "account", "is_primary", "job_title", "department")}),
        ("Reach", {"fields": ("email", "phone", "mobile", "do_not_call", "email_opt_out")}),
        ("Management", {"fields": ("owner", "tags", "is_active")}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

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


register_timeline("crm.lead", stage_history_timeline_entries)


@admin.register(Lead)
class LeadAdmin(
    StaleEditGuardMixin,
    MergeAdminMixin,
    DuplicatesAdminMixin,
    BulkActionsMixin,
    KanbanAdminMixin,
    LeadConvertAdminMixin,
    MarkLostAdminMixin,
    ReopenAdminMixin,
    ClosedRecordMixin,
    ImportExportAdminMixin,
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    StagePillMixin,
    WinProbabilityAdminMixin,
    TagListMixin,
    ScalableChangeListMixin,
    VisibleRecordsAdminMixin,
    ServiceHistoryAdmin,
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
        "automated_probability",
        "score",
        "owner",
        "tag_list",
        "created_at",
    )
    list_filter = (
        "status",
        ScoreBandFilter,
        "pipeline",
        ("stage", StageListFilter),
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
    readonly_fields = (
        "status",
        "lost_reason",
        "lost_note",
        "converted_at",
        "converted_account",
        "converted_contact",
        "created_at",
        "updated_at",
        "score",
        "score_points",
        "automated_probability_explained",
    )
    fieldsets = (
        (None, {"fields": ("name", "pipeline", "stage", "status", "owner", "tags")}),
        ("Score", {"fields": ("score", "score_points")}),
        ("Person and company", {"fields": ("contact_name", "email", "phone", "company_name", "job_title")}),
        (
            "Qualification",
            {
                "fields": (
                    "priority",
                    "rating",
                    "source",
                    "expected_revenue",
                    "probability",
                    "automated_probability_explained",
                    "description",
                )
            },
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

    actions = [*BulkActionsMixin.bulk_actions, "merge_selected"]

    def create_record(self, request, data):
        return services.lead_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.lead_update(lead=obj, user=request.user, data=data)

    @admin.display(description="expected revenue", ordering="expected_revenue")
    def revenue(self, obj):
        return money(obj.expected_revenue)

    @admin.display(description="why this score")
    def score_points(self, obj):
        if obj.score is None:
            return "No score: only open leads are scored."
        return (
            format_html_join(
                "",
                "<div>{} {}: <strong>+{}</strong></div>",
                (
                    (line["label"], line["value"], line["points"])
                    for line in shown_breakdown(obj.score_breakdown)
                ),
            )
            or "No rule gives this lead points."
        )

    # --- bulk actions (BulkActionsMixin) -------------------------------------------------------------

    def bulk_update(self, request, record, data):
        return services.lead_update(lead=record, user=request.user, data=data)

    def bulk_move(self, request, record, stage):
        return services.lead_move_stage(lead=record, stage=stage, user=request.user)

    def bulk_mark_lost(self, request, record, lost_reason, lost_note):
        return services.lead_mark_lost(
            lead=record, user=request.user, lost_reason=lost_reason, lost_note=lost_note
        )

    # --- the lead's page: convert, mark lost ---------------------------------------------------------

    def get_record_actions(self, request, obj):
        actions = super().get_record_actions(request, obj)
        if not obj.is_closed and self.has_change_permission(request, obj):
            if self.has_convert_permission(request, obj):
                url = reverse("admin:crm_lead_convert", args=[obj.pk])
                actions.append(RecordAction("Convert", url, css_class="crm-tool-won"))
            url = reverse("admin:crm_lead_mark_lost", args=[obj.pk])
            actions.append(RecordAction("Mark lost", url, css_class="crm-tool-lost"))
        elif obj.status == LeadStatus.CONVERTED:
            actions.append(RecordAction("Conversion", reverse("admin:crm_lead_converted", args=[obj.pk])))
        return actions + self.reopen_action(request, obj)

    def mark_lost_record(self, *, record, user, lost_reason, lost_note):
        return services.lead_mark_lost(lead=record, user=user, lost_reason=lost_reason, lost_note=lost_note)

    reopenable_statuses = (LeadStatus.LOST,)

    def reopen_record(self, *, record, user, stage):
        return services.lead_reopen(lead=record, user=user, stage=stage)

    # --- the leads board -----------------------------------------------------------------------------

    def visible_records(self, user):
        return selectors.lead_visible_to(user)

    kanban_filterset = LeadFilter
    kanban_filter_fields = ("search", "owner", "priority", "rating", "source", "status", "tag")
    kanban_value_field = "expected_revenue"
    kanban_value_label = "expected revenue"

    def kanban_records(self, *, user):
        return selectors.lead_visible_to(user)

    def kanban_board(self, *, user, pipeline, filters, limit):
        return selectors.lead_kanban(user=user, pipeline=pipeline, filters=filters, limit=limit)

    def kanban_cards(self, *, user, stage, filters, offset, limit):
        return selectors.lead_kanban_cards(
            user=user, stage=stage, filters=filters, offset=offset, limit=limit
        )

    def kanban_move(self, *, record, stage, user):
        return services.lead_move_stage(lead=record, stage=stage, user=user)

    def kanban_card_subtitle(self, record):
        return " · ".join(part for part in (record.company_name, record.contact_name) if part)
