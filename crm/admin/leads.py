"""Leads: the list, the board, the page, bulk actions, and the mark-lost and reopen transitions.

Conversion is a transition too, registered on the lead by sales (sales/admin/convert.py).
"""

from django.contrib import admin
from django.utils.html import format_html_join

from crm import selectors, services
from crm.admin.base import (
    ClosedRecordMixin,
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    ServiceHistoryAdmin,
    StagePillMixin,
    StaleEditGuardMixin,
    VisibleRecordsAdminMixin,
    WinProbabilityAdminMixin,
    money,
)
from crm.admin.bulk import BulkActionsMixin
from crm.admin.duplicates import DuplicatesAdminMixin, MergeAdminMixin
from crm.admin.import_export import ImportExportAdminMixin
from crm.admin.kanban import KanbanAdminMixin
from crm.admin.record import register_timeline, stage_history_timeline_entries
from crm.admin.scale import ScalableChangeListMixin, StageListFilter
from crm.admin.tags import TagListMixin
from crm.admin.transitions import (
    TransitionsMixin,
    mark_lost_transition,
    register_transition,
    reopen_transition,
)
from crm.automation.admin_actions import RunAutomationRuleMixin
from crm.filters import LeadFilter
from crm.marketing.admin_actions import AddToCampaignMixin, AddToSegmentMixin
from crm.marketing.admin_filters import SegmentListFilter
from crm.models import LEAD_SEARCH_FIELDS, Lead, LeadStatus
from crm.scoring import shown_breakdown
from crm.sequences.admin_actions import EnrollInSequenceMixin


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


register_timeline("crm.lead", stage_history_timeline_entries)


def lead_mark_lost(*, record, user, **choices):
    return services.lead_mark_lost(lead=record, user=user, **choices)


def lead_reopen(*, record, user, **choices):
    return services.lead_reopen(lead=record, user=user, **choices)


register_transition("crm.lead", mark_lost_transition(lead_mark_lost))
register_transition("crm.lead", reopen_transition(lead_reopen, statuses=(LeadStatus.LOST,)))


@admin.register(Lead)
class LeadAdmin(
    AddToSegmentMixin,
    AddToCampaignMixin,
    RunAutomationRuleMixin,
    EnrollInSequenceMixin,
    StaleEditGuardMixin,
    MergeAdminMixin,
    DuplicatesAdminMixin,
    BulkActionsMixin,
    KanbanAdminMixin,
    TransitionsMixin,
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
        SegmentListFilter,
    )
    list_select_related = ("stage", "owner")
    search_fields = LEAD_SEARCH_FIELDS
    autocomplete_fields = ("pipeline", "stage", "owner", "tags", "campaign")
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
                    "campaign",
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

    actions = [
        *BulkActionsMixin.bulk_actions,
        "merge_selected",
        "enroll_in_sequence",
        "run_automation_rule",
        "add_to_segment",
        "add_to_campaign",
    ]

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

    kanban_won_transition = "convert"

    def kanban_create(self, *, user, data):
        return services.lead_create(user=user, data=data)

    def kanban_card_subtitle(self, record):
        return " · ".join(part for part in (record.company_name, record.contact_name) if part)
