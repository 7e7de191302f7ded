"""The tickets admin: the list (with its queues), the ticket page with its thread and reply box."""

import threading

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from activities.service import kb, queues, selectors, services, sla
from activities.service.models import (
    Holiday,
    SlaPolicy,
    Ticket,
    TicketMessageKind,
    TicketStatus,
    WorkingCalendar,
    WorkingHours,
)
from crm.admin.base import (
    CRM_CHANGE_LIST_TEMPLATE,
    ServiceHistoryAdmin,
    ServiceModelAdmin,
    VisibleRecordsAdminMixin,
    register_inline_saver,
    save_inline_forms,
    with_changelist_tool,
)
from crm.admin.record import RecordPageMixin, register_record_panel
from crm.selectors import record_is_changeable

THREAD_LIMIT = 200
SLA_COLOURS = {"breached": "#ba2121", "at_risk": "#c47a00", "on_track": "#2f7d32"}
_page = threading.local()


def ticket_thread_panel(*, request, obj) -> str:
    """The thread (replies and notes, with their files) and the reply box: two queries."""
    thread = list(selectors.ticket_messages(user=request.user, ticket=obj)[:THREAD_LIMIT])
    files = selectors.ticket_message_files(thread)
    for message in thread:
        message.files = files.get(message.pk, [])
    can_reply = (
        obj.status != TicketStatus.CLOSED
        and request.user.has_perm("activities.change_ticket")
        and record_is_changeable(user=request.user, record=obj)
    )
    context = {
        "messages": thread,
        "can_reply": can_reply,
        "reply_url": reverse("admin:activities_ticket_reply", args=[obj.pk]),
        "suggestions": _suggestions(request, obj) if can_reply else [],
    }
    return render_to_string("admin/activities/ticket/thread_panel.html", context, request=request)


def _suggestions(request, ticket) -> list:
    """Published articles that may answer the ticket (from its subject), each to link in the reply."""
    if not request.user.has_perm("activities.view_article"):
        return []
    articles = kb.article_suggestions(user=request.user, subject=ticket.subject)
    for article in articles:
        article.url = kb.article_public_url(article)
    return articles


register_record_panel("activities.ticket", ticket_thread_panel)


class QueueFilter(admin.SimpleListFilter):
    """The work queues: my open tickets, the unassigned ones of my teams, those breaching soon."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return list(queues.QUEUES.items())

    def queryset(self, request, queryset):
        if self.value() not in queues.QUEUES:
            return queryset
        return queryset.filter(queues.ticket_queue_condition(user=request.user, queue=self.value()))


@admin.register(Ticket)
class TicketAdmin(RecordPageMixin, VisibleRecordsAdminMixin, ServiceHistoryAdmin):
    list_display = (
        "number",
        "subject",
        "status",
        "priority",
        "sla",
        "assignee",
        "team",
        "account",
        "created_at",
    )
    list_filter = (QueueFilter, "status", "priority", "channel", "ticket_type", "team")
    change_list_template = CRM_CHANGE_LIST_TEMPLATE
    actions = ("merge_selected",)
    list_select_related = ("assignee", "team", "account", "sla_policy")
    search_fields = ("number", "subject")
    autocomplete_fields = ("account", "contact", "opportunity", "assignee", "team", "tags")
    readonly_fields = (
        "number",
        "sla",
        "sla_policy",
        "first_response_due",
        "first_response_at",
        "first_response_met",
        "resolution_due",
        "resolved_at",
        "resolution_met",
        "closed_at",
        "created_at",
        "updated_at",
    )
    show_full_result_count = False
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "number",
                    "subject",
                    "status",
                    "priority",
                    "ticket_type",
                    "channel",
                    "assignee",
                    "team",
                    "tags",
                )
            },
        ),
        ("Customer", {"fields": ("account", "contact", "requester_email", "opportunity")}),
        ("Details", {"fields": ("description",)}),
        (
            "SLA and times",
            {
                "fields": (
                    "sla",
                    "sla_policy",
                    "first_response_due",
                    "first_response_at",
                    "first_response_met",
                    "resolution_due",
                    "resolved_at",
                    "resolution_met",
                    "closed_at",
                    "created_at",
                    "updated_at",
                )
            },
        ),
    )

    def changelist_view(self, request, extra_context=None):
        board = reverse("admin:activities_ticket_board")
        query = f"?queue={request.GET['queue']}" if request.GET.get("queue") in queues.QUEUES else ""
        extra_context = with_changelist_tool(extra_context, "Board by status", board + query)
        # Each calendar of the page's policies is read once, not once per row (per thread: the admin
        # instance is shared by the requests a process serves at once).
        _page.hours = {}
        try:
            return super().changelist_view(request, extra_context)
        finally:
            _page.hours = None

    @admin.display(description="SLA", ordering="sla_due_at")
    def sla(self, obj):
        status = sla.ticket_sla_status(obj, hours=self._hours(obj))
        colour = {"breached": "#ba2121", "at_risk": "#c47a00", "on_track": "#2f7d32"}.get(
            status.state, "#666"
        )
        label = dict(sla.SlaState.choices)[status.state]
        left = f" · {sla.format_seconds(status.seconds_left)} left" if status.seconds_left is not None else ""
        return format_html('<span style="color:{}">{}{}</span>', colour, label, left)

    def _hours(self, obj):
        if obj.sla_policy_id is None:
            return None
        return sla.policy_hours(obj.sla_policy, getattr(_page, "hours", None))

    def visible_records(self, user):
        return selectors.ticket_visible_to(user)

    def create_record(self, request, data):
        return services.ticket_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.ticket_update(ticket=obj, user=request.user, data=data)

    def get_urls(self):
        urls = [
            path("board/", self.admin_site.admin_view(self.board_view), name="activities_ticket_board"),
            path(
                "<path:object_id>/reply/",
                self.admin_site.admin_view(require_POST(self.reply_view)),
                name="activities_ticket_reply",
            ),
        ]
        return urls + super().get_urls()

    def board_view(self, request):
        """The visible tickets (of a queue, with ``?queue=``) in a column per status."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        queue = request.GET.get("queue")
        tickets = self.get_queryset(request)
        if queue in queues.QUEUES:
            tickets = tickets.filter(queues.ticket_queue_condition(user=request.user, queue=queue))
        changelist = reverse("admin:activities_ticket_changelist")
        columns = queues.ticket_board(user=request.user, queryset=tickets)
        for column in columns:
            column.url = f"{changelist}?status__exact={column.status}" + (
                f"&queue={queue}" if queue in queues.QUEUES else ""
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Tickets by status" + (f": {queues.QUEUES[queue]}" if queue in queues.QUEUES else ""),
            "opts": self.model._meta,
            "columns": columns,
            "queues": [
                {"label": "All", "url": reverse("admin:activities_ticket_board")},
                *(
                    {"label": label, "url": f"{reverse('admin:activities_ticket_board')}?queue={key}"}
                    for key, label in queues.QUEUES.items()
                ),
            ],
        }
        return TemplateResponse(request, "admin/activities/ticket/board.html", context)

    @admin.action(description="Merge the selected tickets into one", permissions=["change"])
    def merge_selected(self, request, queryset):
        """Into the ticket named by ``survivor`` when it is among them, else the oldest."""
        tickets = list(queryset.order_by("created_at", "pk"))
        if len(tickets) < 2:
            self.message_user(request, "Choose at least two tickets to merge.", messages.ERROR)
            return None
        chosen = request.POST.get("survivor", "")
        survivor = next((t for t in tickets if str(t.pk) == chosen), tickets[0])
        try:
            with transaction.atomic():
                services.ticket_merge(user=request.user, survivor=survivor, duplicates=tickets)
        except (ValidationError, PermissionDenied) as exc:
            message = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            self.message_user(request, f"{message} Nothing was merged.", messages.ERROR)
            return None
        others = ", ".join(t.number for t in tickets if t.pk != survivor.pk)
        self.message_user(request, f"Merged {others} into {survivor.number}.", messages.SUCCESS)
        return None

    def reply_view(self, request, object_id):
        ticket = self.get_object(request, object_id)
        if ticket is None:
            raise Http404("No such ticket.")
        if not self.has_change_permission(request, ticket):
            raise PermissionDenied
        kind = request.POST.get("kind", TicketMessageKind.REPLY)
        if kind not in TicketMessageKind.values:
            kind = TicketMessageKind.REPLY
        article_ids = [int(pk) for pk in request.POST.getlist("article") if pk.isdigit()]
        try:
            with transaction.atomic():
                services.ticket_message_create(
                    ticket=ticket,
                    user=request.user,
                    body=request.POST.get("body", ""),
                    kind=kind,
                    uploads=request.FILES.getlist("file"),
                    article_ids=article_ids,
                )
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        else:
            done = "Reply sent." if kind == TicketMessageKind.REPLY else "Note added."
            self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:activities_ticket_change", args=[ticket.pk]))


# --- SLA: working calendars (hours and holidays inline) and policies ----------------------------------


class WorkingHoursInline(admin.TabularInline):
    model = WorkingHours
    extra = 0
    fields = ("weekday", "start", "end")


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 0
    fields = ("date", "name")


def _save_hours(request, formset) -> None:
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.working_hours_save(user=user, hours=None, data=data),
        update=lambda user, obj, data: services.working_hours_save(user=user, hours=obj, data=data),
        delete=lambda user, obj: services.working_hours_delete(user=user, hours=obj),
    )


def _save_holidays(request, formset) -> None:
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.holiday_save(user=user, holiday=None, data=data),
        update=lambda user, obj, data: services.holiday_save(user=user, holiday=obj, data=data),
        delete=lambda user, obj: services.holiday_delete(user=user, holiday=obj),
    )


register_inline_saver(WorkingHours, _save_hours)
register_inline_saver(Holiday, _save_holidays)


@admin.register(WorkingCalendar)
class WorkingCalendarAdmin(ServiceModelAdmin):
    list_display = ("name", "time_zone")
    search_fields = ("name",)
    inlines = (WorkingHoursInline, HolidayInline)
    readonly_fields = ("created_at", "updated_at")

    def create_record(self, request, data):
        return services.working_calendar_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.working_calendar_update(user=request.user, calendar=obj, data=data)


@admin.register(SlaPolicy)
class SlaPolicyAdmin(ServiceModelAdmin):
    list_display = (
        "name",
        "priority",
        "account_tier",
        "calendar",
        "first_response_minutes",
        "resolution_minutes",
        "warn_before_minutes",
        "is_active",
    )
    list_filter = ("priority", "account_tier", "is_active")
    list_select_related = ("calendar",)
    search_fields = ("name",)
    autocomplete_fields = ("calendar",)
    readonly_fields = ("created_at", "updated_at")

    def create_record(self, request, data):
        return services.sla_policy_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.sla_policy_update(user=request.user, policy=obj, data=data)
