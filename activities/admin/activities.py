"""Admin for activities, and the activity inlines on leads, opportunities, contacts and accounts."""

from django.contrib import admin
from django.http import HttpResponseRedirect
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from activities import selectors, services
from activities.admin.composer import ComposerAdminMixin, composer_panel
from activities.admin.pages import CalendarAdminMixin, activity_timeline_entries, quick_activity_actions
from activities.admin.records import calendar_feed_section, files_and_notes_panel, notes_and_files_timeline
from activities.models import Activity
from activities.selectors import RELATED
from crm.admin.access import HiddenRelationsAdminMixin
from crm.admin.base import (
    OwnerDefaultMixin,
    ServiceHistoryAdmin,
    StaleEditGuardMixin,
    VisibleRecordsAdminMixin,
    register_inline,
    register_inline_saver,
    save_inline_forms,
)
from crm.admin.import_export import ExportAdminMixin
from crm.admin.record import (
    RecordPageMixin,
    register_record_actions,
    register_record_panel,
    register_timeline,
)
from crm.admin.scale import ScalableChangeListMixin
from crm.notifications.admin import register_profile_section
from crm.selectors import HIDDEN_RECORD, related_seen_annotations, related_shown


class ActivityInlineBase(VisibleRecordsAdminMixin, admin.TabularInline):
    model = Activity
    fields = ("subject", "activity_type", "status", "priority", "due_date", "owner")
    readonly_fields = ("owner",)
    extra = 0
    show_change_link = True
    ordering = ("-due_date", "-id")

    def visible_records(self, user):
        return selectors.activity_visible_to(user)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner")


def _inline_for(fk: str) -> type:
    return type(f"{fk.title()}ActivityInline", (ActivityInlineBase,), {"fk_name": fk})


def save_activity_inline(request, formset) -> None:
    """Activities logged, changed or deleted on a lead's (deal's, contact's, account's) page are
    written by the activity services, which keep the lead's score current."""
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.activity_create(user=user, data=data),
        update=lambda user, obj, data: services.activity_update(activity=obj, user=user, data=data),
        delete=lambda user, obj: services.activity_delete(activity=obj, user=user),
    )


register_inline_saver(Activity, save_activity_inline)

for _label, _fk in (
    ("crm.lead", "lead"),
    ("sales.opportunity", "opportunity"),
    ("crm.contact", "contact"),
    ("crm.account", "account"),
):
    register_inline(_label, _inline_for(_fk))
    register_record_actions(_label, quick_activity_actions)
    register_timeline(_label, activity_timeline_entries)

# The quick composer first, then files and notes, on every record page (an activity's: files and notes).
for _label in ("crm.lead", "sales.opportunity", "crm.contact", "crm.account"):
    register_record_panel(_label, composer_panel)
for _label in ("crm.lead", "sales.opportunity", "crm.contact", "crm.account", "activities.activity"):
    register_record_panel(_label, files_and_notes_panel)
    register_timeline(_label, notes_and_files_timeline)
register_profile_section(calendar_feed_section)


@admin.register(Activity)
class ActivityAdmin(
    ComposerAdminMixin,
    RecordPageMixin,
    StaleEditGuardMixin,
    HiddenRelationsAdminMixin,
    CalendarAdminMixin,
    ExportAdminMixin,
    OwnerDefaultMixin,
    ScalableChangeListMixin,
    VisibleRecordsAdminMixin,
    ServiceHistoryAdmin,
):
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
    autocomplete_fields = ("lead", "opportunity", "contact", "account", "owner", "template")
    date_hierarchy = "due_date"
    readonly_fields = ("reminded_at", "created_at", "updated_at")

    def visible_records(self, user):
        return selectors.activity_visible_to(user)

    def get_queryset(self, request):
        # Whether the user sees the lead and deal of each activity, so the list names only those.
        annotations = related_seen_annotations(Activity, request.user, RELATED)
        return super().get_queryset(request).annotate(**annotations)

    def create_record(self, request, data):
        return services.activity_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.activity_update(activity=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.activity_delete(activity=obj, user=request.user)

    # An activity is logged only on a lead or deal its author sees (a crafted id is "not a choice"),
    # and one linked to a lead or deal its reader cannot see does not name it.
    hidden_relations = ("lead", "opportunity")

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
                    "template",
                )
            },
        ),
        ("Duration and repetition", {"fields": ("duration_minutes", "recurrence")}),
        ("Reminder", {"fields": ("remind_at", "reminded_at")}),
        ("Related to", {"fields": ("lead", "opportunity", "contact", "account")}),
        ("Details", {"fields": ("description",)}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def get_changeform_initial_data(self, request):
        """Prefill from the query string (quick "Log a call" links): due_date (and completed_at) as an
        ISO date-time; one that is not a date-time is left out."""
        initial = super().get_changeform_initial_data(request)
        for name in ("due_date", "completed_at"):
            if name not in initial:
                continue
            try:
                moment = parse_datetime(str(initial[name]))
                if moment is not None and timezone.is_naive(moment):
                    moment = timezone.make_aware(moment)
                initial[name] = timezone.localtime(moment) if moment is not None else None
            except (ValueError, OverflowError):  # 2026-13-45T10:00, or out of the time zone's range
                initial[name] = None
            if initial[name] is None:
                del initial[name]
        return initial

    def response_add(self, request, obj, post_url_continue=None):
        # A quick link from a record's page brings the user back to it after saving.
        next_url = request.GET.get("next", "")
        if (
            next_url
            and "_addanother" not in request.POST
            and "_continue" not in request.POST
            and url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure())
        ):
            super().response_add(request, obj, post_url_continue)
            return HttpResponseRedirect(next_url)
        return super().response_add(request, obj, post_url_continue)

    @admin.display(description="due", ordering="due_date")
    def due(self, obj):
        if obj.due_date is None:
            return "—"
        if obj.is_overdue:
            return format_html('<strong style="color:#ba2121">{} (overdue)</strong>', obj.due_date)
        return obj.due_date

    @admin.display(description="related to")
    def related_to(self, obj):
        shown = [related_shown(obj, name) for name in ("opportunity", "lead", "contact", "account")]
        return next((r for r in shown if r not in (None, HIDDEN_RECORD)), None) or next(
            (r for r in shown if r is not None), None
        )
