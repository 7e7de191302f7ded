"""Admin for opportunities, and the opportunities inline on an account."""

from django.contrib import admin
from django.utils.html import format_html

from crm.admin.access import HiddenRelationsAdminMixin
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
    register_inline,
    register_inline_saver,
    run_transition,
    save_inline_forms,
)
from crm.admin.bulk import BulkActionsMixin
from crm.admin.import_export import ExportAdminMixin
from crm.admin.kanban import KanbanAdminMixin
from crm.admin.record import register_timeline, stage_history_timeline_entries
from crm.admin.scale import ScalableChangeListMixin, StageListFilter
from crm.admin.tags import TagListMixin
from crm.admin.transitions import (
    Transition,
    TransitionsMixin,
    mark_lost_transition,
    register_transition,
    reopen_transition,
)
from crm.automation.admin_actions import RunAutomationRuleMixin
from crm.money import money_format
from crm.services import record_delete
from sales import selectors, services
from sales.admin.forecast import ForecastAdminMixin
from sales.admin.operations import SalesOperationsPagesMixin
from sales.admin.quotes import LineAmountAdminMixin
from sales.filters import OpportunityFilter
from sales.models import Opportunity, OpportunityStatus, company_currency


class OpportunityInline(VisibleRecordsAdminMixin, admin.TabularInline):
    model = Opportunity
    fk_name = "account"
    fields = ("name", "stage", "status", "amount", "probability", "close_date", "owner")
    readonly_fields = ("stage", "status", "owner")
    extra = 0
    show_change_link = True

    def visible_records(self, user):
        return selectors.opportunity_visible_to(user)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("stage__pipeline", "owner")


def save_opportunity_inline(request, formset) -> None:
    """Deals added, changed or deleted on an account's page are written by the opportunity services."""
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.opportunity_create(user=user, data=data),
        update=lambda user, obj, data: services.opportunity_update(opportunity=obj, user=user, data=data),
        delete=lambda user, obj: record_delete(instance=obj, user=user),
    )


register_inline("crm.account", OpportunityInline)
register_inline_saver(Opportunity, save_opportunity_inline)
register_timeline("sales.opportunity", stage_history_timeline_entries)

OPPORTUNITY_MARK_WON = Transition(
    name="mark_won",
    label="Mark won",
    title=lambda opportunity: "Mark opportunity won",
    run=lambda *, record, user: services.opportunity_mark_won(opportunity=record, user=user),
    applies=lambda opportunity: not opportunity.is_closed,
    intro=lambda opportunity: format_html(
        "Win <strong>{}</strong>{}: {} closes now, at 100%, in its pipeline's won stage.",
        opportunity,
        f" with {opportunity.account}" if opportunity.account_id else "",
        money(opportunity.amount),
    ),
    refusal=lambda opportunity: f"This opportunity is already {opportunity.get_status_display().lower()}.",
    log_message=lambda opportunity: "Marked won.",
    success_message=lambda opportunity: f"“{opportunity}” is won: {money(opportunity.amount)} closed.",
    css_class="crm-tool-won",
    position=10,
)
register_transition("sales.opportunity", OPPORTUNITY_MARK_WON)
register_transition(
    "sales.opportunity",
    mark_lost_transition(
        lambda *, record, user, lost_reason, lost_note: services.opportunity_mark_lost(
            opportunity=record, user=user, lost_reason=lost_reason, lost_note=lost_note
        )
    ),
)
register_transition(
    "sales.opportunity",
    reopen_transition(
        lambda *, record, user, stage: services.opportunity_reopen(
            opportunity=record, user=user, stage=stage
        ),
        statuses=(OpportunityStatus.WON, OpportunityStatus.LOST),
    ),
)


@admin.register(Opportunity)
class OpportunityAdmin(
    RunAutomationRuleMixin,
    LineAmountAdminMixin,
    StaleEditGuardMixin,
    HiddenRelationsAdminMixin,
    BulkActionsMixin,
    KanbanAdminMixin,
    ForecastAdminMixin,
    SalesOperationsPagesMixin,
    TransitionsMixin,
    ClosedRecordMixin,
    ExportAdminMixin,
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
        "account",
        "stage_pill",
        "in_stage",
        "status",
        "value",
        "probability",
        "automated_probability",
        "close_date",
        "opportunity_type",
        "priority",
        "owner",
        "tag_list",
    )
    list_filter = (
        "status",
        "pipeline",
        ("stage", StageListFilter),
        "priority",
        "opportunity_type",
        "owner",
        "tags",
        "close_date",
    )
    list_select_related = ("account", "stage", "owner")
    search_fields = ("name", "account__name", "description")
    autocomplete_fields = ("account", "contact", "pipeline", "stage", "owner", "tags", "lead", "campaign")
    date_hierarchy = "close_date"
    readonly_fields = (
        "status",
        "closed_at",
        "lost_reason",
        "lost_note",
        "created_at",
        "updated_at",
        "automated_probability_explained",
    )
    fieldsets = (
        (None, {"fields": ("name", "account", "contact", "pipeline", "stage", "status", "owner", "tags")}),
        (
            "Deal",
            {
                "fields": (
                    "amount",
                    "currency",
                    "probability",
                    "automated_probability_explained",
                    "close_date",
                    "opportunity_type",
                    "priority",
                    "campaign",
                    "description",
                )
            },
        ),
        ("Outcome", {"fields": ("closed_at", "lost_reason", "lost_note", "lead"), "classes": ("collapse",)}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    actions = ["mark_won", *BulkActionsMixin.bulk_actions, "run_automation_rule"]

    # The lead it came from may be one the user cannot see: offered, accepted and named only if seen.
    hidden_relations = ("lead",)

    def create_record(self, request, data):
        return services.opportunity_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.opportunity_update(opportunity=obj, user=request.user, data=data)

    @admin.display(description="amount", ordering="amount")
    def value(self, obj):
        if obj.currency != company_currency():
            return money_format(obj.amount, currency=obj.currency)
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

    # --- bulk actions (BulkActionsMixin) -------------------------------------------------------------

    def bulk_update(self, request, record, data):
        return services.opportunity_update(opportunity=record, user=request.user, data=data)

    def bulk_move(self, request, record, stage):
        return services.opportunity_move_stage(opportunity=record, stage=stage, user=request.user)

    def bulk_mark_lost(self, request, record, lost_reason, lost_note):
        return services.opportunity_mark_lost(
            opportunity=record, user=request.user, lost_reason=lost_reason, lost_note=lost_note
        )

    # --- the opportunities board ---------------------------------------------------------------------

    def visible_records(self, user):
        return selectors.opportunity_visible_to(user)

    def get_queryset(self, request):
        return selectors.opportunity_annotate_stage_time(super().get_queryset(request))

    @admin.display(description="in stage", ordering="stage_entered_at")
    def in_stage(self, obj):
        days = obj.days_in_stage
        if days is None:
            return "—"
        if obj.is_rotting:
            return format_html(
                '<span class="crm-pill crm-rotting" title="Usual time in {}: {} days">Rotting · {} d</span>',
                obj.stage.name,
                obj.stage_usual_time,
                int(days),
            )
        return f"{int(days)} d"

    kanban_filterset = OpportunityFilter
    kanban_filter_fields = ("search", "owner", "priority", "opportunity_type", "status", "tag")
    kanban_value_field = "amount"
    kanban_value_label = "amount"

    def kanban_records(self, *, user):
        return selectors.opportunity_visible_to(user)

    def kanban_board(self, *, user, pipeline, filters, limit):
        return selectors.opportunity_kanban(user=user, pipeline=pipeline, filters=filters, limit=limit)

    def kanban_cards(self, *, user, stage, filters, offset, limit):
        return selectors.opportunity_kanban_cards(
            user=user, stage=stage, filters=filters, offset=offset, limit=limit
        )

    def kanban_move(self, *, record, stage, user):
        return services.opportunity_move_stage(opportunity=record, stage=stage, user=user)

    def kanban_create(self, *, user, data):
        return services.opportunity_create(user=user, data=data)

    def kanban_card_subtitle(self, record):
        return str(record.account) if record.account_id else ""
