"""The tickets API: ``tickets/`` and their thread ``tickets/{id}/messages/``. Conventions:
crm.api.viewsets (reads through the selectors, writes through the services)."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from activities.service import kb, selectors, services, sla
from activities.service.api_kb import ArticleSerializer
from activities.service.filters import TicketFilter
from activities.service.models import (
    Holiday,
    SlaPolicy,
    Ticket,
    TicketMessage,
    TicketMessageKind,
    WorkingCalendar,
    WorkingHours,
)
from crm.api.merge import MergeInputSerializer
from crm.api.serializers import TIMESTAMPS, label, related_id, tags_field, visible_id
from crm.api.viewsets import (
    BAD_REQUEST,
    CONFLICT,
    NOT_FOUND,
    HistoryViewSetMixin,
    ServiceModelViewSet,
    TransitionPermissions,
    crud_schema,
)
from crm.merging import MAX_MERGE
from crm.models import Account, Contact, SalesTeam
from sales.models import Opportunity
from sales.selectors import opportunity_visible_to

FILES_URL = "/api/v1/crm/files/"


class TicketSerializer(serializers.ModelSerializer):
    account_id = related_id(Account.objects.all(), "account")
    contact_id = related_id(Contact.objects.all(), "contact")
    opportunity_id = visible_id(Opportunity, opportunity_visible_to, "opportunity")
    assignee_id = related_id(
        get_user_model().objects.filter(is_active=True), "assignee", help_text="The agent working it."
    )
    team_id = related_id(SalesTeam.objects.filter(is_active=True), "team", help_text="The queue (a team).")
    tags = tags_field()
    assignee_username = label("assignee.username")
    team_name = label("team.name")
    account_name = label("account.name")
    sla_policy_id = serializers.IntegerField(read_only=True, allow_null=True)
    merged_into_id = serializers.IntegerField(read_only=True, allow_null=True)
    sla_state = serializers.SerializerMethodField(
        help_text="on_track, at_risk, breached, paused, met or none."
    )
    sla_seconds_left = serializers.SerializerMethodField(
        help_text="Business seconds to the next deadline (negative once breached); null when no clock runs."
    )

    class Meta:
        model = Ticket
        fields = (
            "id",
            "number",
            "subject",
            "description",
            "account_id",
            "account_name",
            "contact_id",
            "requester_email",
            "channel",
            "ticket_type",
            "priority",
            "status",
            "assignee_id",
            "assignee_username",
            "team_id",
            "team_name",
            "tags",
            "opportunity_id",
            "sla_policy_id",
            "sla_state",
            "sla_seconds_left",
            "sla_due_at",
            "first_response_due",
            "first_response_at",
            "first_response_met",
            "resolution_due",
            "resolved_at",
            "resolution_met",
            "closed_at",
            "merged_into_id",
            *TIMESTAMPS,
        )
        read_only_fields = (
            "id",
            "number",
            "sla_due_at",
            "first_response_due",
            "first_response_at",
            "first_response_met",
            "resolution_due",
            "resolved_at",
            "resolution_met",
            "closed_at",
            *TIMESTAMPS,
        )
        validators: list = []

    def _status(self, obj) -> sla.SlaStatus:
        # One calendar read per serializer (a page), not per ticket; one status per ticket.
        cache = self.context.setdefault("sla_hours", {})
        statuses = self.context.setdefault("sla_status", {})
        if obj.pk not in statuses:
            hours = sla.policy_hours(obj.sla_policy, cache) if obj.sla_policy_id else None
            statuses[obj.pk] = sla.ticket_sla_status(obj, hours=hours)
        return statuses[obj.pk]

    def get_sla_state(self, obj) -> str:
        return self._status(obj).state

    def get_sla_seconds_left(self, obj) -> int | None:
        return self._status(obj).seconds_left


class TicketMessageSerializer(serializers.ModelSerializer):
    author_id = serializers.IntegerField(read_only=True, allow_null=True)
    author_username = label("author.username")
    files = serializers.SerializerMethodField()

    class Meta:
        model = TicketMessage
        fields = (
            "id",
            "kind",
            "body",
            "author_id",
            "author_username",
            "from_customer",
            "sender_email",
            "files",
            "created_at",
        )
        read_only_fields = fields

    def get_files(self, obj) -> list[dict]:
        return [
            {
                "id": f.pk,
                "name": f.name,
                "size": f.size,
                "download_url": f"/api/v1/crm/files/{f.pk}/download/",
            }
            for f in self.context.get("files", {}).get(obj.pk, [])
        ]


class TicketMessageInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=TicketMessageKind.choices, default=TicketMessageKind.REPLY)
    body = serializers.CharField(max_length=100_000)
    file = serializers.ListField(
        child=serializers.FileField(allow_empty_file=False),
        required=False,
        max_length=20,
        help_text="Files to attach (multipart; repeat the part).",
    )
    article_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=10,
        help_text="Published knowledge-base articles whose title and public link end the message.",
    )


@extend_schema_view(**crud_schema("ticket", TicketSerializer))
class TicketViewSet(HistoryViewSetMixin, ServiceModelViewSet):
    """Support tickets: numbered T-000123, worked by an assignee in a queue (team), with SLA targets."""

    serializer_class = TicketSerializer
    filterset_class = TicketFilter
    selector = staticmethod(selectors.ticket_list)
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def create_record(self, data):
        return services.ticket_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.ticket_update(ticket=instance, user=self.request.user, data=data)

    @extend_schema(
        summary="Merge duplicate tickets",
        description="Merges 2–5 tickets into the survivor (`survivor_id`, else the oldest): the others' "
        "threads, files and tags move to it, each is closed and points at it (`merged_into`). Needs "
        "the right to change every ticket; a closed survivor answers 409. All or nothing.",
        request=MergeInputSerializer,
        responses={200: TicketSerializer, 400: BAD_REQUEST, 403: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=False, methods=["post"], permission_classes=[TransitionPermissions], filter_backends=[])
    def merge(self, request):
        data = self.validated_input(MergeInputSerializer)
        ids = list(dict.fromkeys(data["ids"]))
        tickets = list(self.get_queryset().filter(pk__in=ids).order_by("created_at", "pk"))
        unknown = sorted(set(ids) - {t.pk for t in tickets})
        if unknown:
            raise ValidationError({"ids": f"No ticket with the id(s) {', '.join(map(str, unknown))}."})
        if not 2 <= len(tickets) <= MAX_MERGE:
            raise ValidationError({"ids": f"Merge from 2 to {MAX_MERGE} tickets."})
        survivor = tickets[0]
        if data.get("survivor_id") is not None:
            survivor = next((t for t in tickets if t.pk == data["survivor_id"]), None)
            if survivor is None:
                raise ValidationError({"survivor_id": "The survivor must be one of the tickets merged."})
        survivor = services.ticket_merge(user=request.user, survivor=survivor, duplicates=tickets)
        return self.record_response(survivor)

    @extend_schema(
        methods=["GET"],
        summary="A ticket's thread",
        description="Public replies and internal notes, oldest first, with their files.",
        responses={200: TicketMessageSerializer(many=True), 404: NOT_FOUND},
        filters=False,
    )
    @extend_schema(
        methods=["POST"],
        summary="Reply to a ticket or add an internal note",
        description="JSON or multipart (with files). A closed ticket answers 409. The first public reply "
        "is the ticket's first response; a new ticket becomes open.",
        request={
            "application/json": TicketMessageInputSerializer,
            "multipart/form-data": TicketMessageInputSerializer,
        },
        responses={201: TicketMessageSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(
        detail=True,
        methods=["get", "post"],
        filter_backends=[],
        pagination_class=None,
        permission_classes=[TransitionPermissions],
    )
    def messages(self, request, pk=None):
        ticket = self.get_object()
        if request.method == "GET":
            messages = list(selectors.ticket_messages(user=request.user, ticket=ticket))
            context = {**self.get_serializer_context(), "files": selectors.ticket_message_files(messages)}
            return Response(TicketMessageSerializer(messages, many=True, context=context).data)
        data = self.validated_input(TicketMessageInputSerializer)
        message = services.ticket_message_create(
            ticket=ticket,
            user=request.user,
            body=data["body"],
            kind=data["kind"],
            uploads=data.get("file"),
            article_ids=data.get("article_ids"),
        )
        context = {**self.get_serializer_context(), "files": selectors.ticket_message_files([message])}
        return Response(
            TicketMessageSerializer(message, context=context).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        summary="Articles that may answer a ticket",
        description="Published knowledge-base articles matching any word of the ticket's subject, most "
        "relevant first (at most 5); link them in a reply with `article_ids`.",
        responses={200: ArticleSerializer(many=True), 404: NOT_FOUND},
        filters=False,
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="article-suggestions",
        filter_backends=[],
        pagination_class=None,
    )
    def article_suggestions(self, request, pk=None):
        ticket = self.get_object()
        articles = kb.article_suggestions(user=request.user, subject=ticket.subject)
        return Response(ArticleSerializer(articles, many=True, context=self.get_serializer_context()).data)


# --- SLA configuration -------------------------------------------------------------------------------


class WorkingHoursSerializer(serializers.ModelSerializer):
    class Meta:
        model = WorkingHours
        fields = ("weekday", "start", "end")


class HolidaySerializer(serializers.ModelSerializer):
    class Meta:
        model = Holiday
        fields = ("date", "name")


class WorkingCalendarSerializer(serializers.ModelSerializer):
    hours = WorkingHoursSerializer(many=True, required=False, help_text="Replaces every span when given.")
    holidays = HolidaySerializer(many=True, required=False, help_text="Replaces every holiday when given.")

    class Meta:
        model = WorkingCalendar
        fields = ("id", "name", "time_zone", "hours", "holidays", *TIMESTAMPS)
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []


@extend_schema_view(**crud_schema("working calendar", WorkingCalendarSerializer))
class WorkingCalendarViewSet(ServiceModelViewSet):
    """When support works: time zone, hours per weekday (never overlapping), holidays."""

    serializer_class = WorkingCalendarSerializer
    filterset_class = None
    selector = staticmethod(selectors.working_calendar_list)

    def create_record(self, data):
        return services.working_calendar_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.working_calendar_update(user=self.request.user, calendar=instance, data=data)


class SlaPolicySerializer(serializers.ModelSerializer):
    calendar_id = related_id(WorkingCalendar.objects.all(), "calendar", help_text="Empty: around the clock.")

    class Meta:
        model = SlaPolicy
        fields = (
            "id",
            "name",
            "priority",
            "account_tier",
            "calendar_id",
            "first_response_minutes",
            "resolution_minutes",
            "warn_before_minutes",
            "is_active",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []


@extend_schema_view(**crud_schema("SLA policy", SlaPolicySerializer))
class SlaPolicyViewSet(ServiceModelViewSet):
    """Targets by priority and account tier, in business minutes of a working calendar."""

    serializer_class = SlaPolicySerializer
    filterset_class = None
    selector = staticmethod(selectors.sla_policy_list)

    def create_record(self, data):
        return services.sla_policy_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.sla_policy_update(user=self.request.user, policy=instance, data=data)
