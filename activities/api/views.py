"""Viewset for activities. Reads go through activities.selectors, writes through activities.services."""

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from activities import selectors, services
from activities.api.mail import EmailMessageSerializer, InvitationSerializer, recipient_of
from activities.api.serializers import ActivitySerializer, ActivityTemplateSerializer
from activities.filters import ActivityFilter, ActivityTemplateFilter
from activities.mail import outbound
from crm.api.viewsets import BAD_REQUEST, NOT_FOUND, HistoryViewSetMixin, ServiceModelViewSet, crud_schema


@extend_schema_view(**crud_schema("activity", ActivitySerializer))
class ActivityViewSet(HistoryViewSetMixin, ServiceModelViewSet):
    """Calls, meetings, tasks, emails and notes, each linked to a lead, opportunity, contact or account."""

    serializer_class = ActivitySerializer
    filterset_class = ActivityFilter
    selector = staticmethod(selectors.activity_list)

    def create_record(self, data):
        return services.activity_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.activity_update(activity=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        services.activity_delete(activity=instance, user=self.request.user)

    @extend_schema(
        summary="Send a meeting as an invitation",
        description="Emails the meeting's contact or lead (or `to_contact_id` / `to_lead_id`) an invitation "
        "with an `invite.ics` attachment (iCalendar METHOD:REQUEST) that calendars accept; sent by a "
        "background job, then logged as an email activity on the meeting's records. 400 for an activity "
        "that is not a meeting, has no date, or whose recipient opted out.",
        request=InvitationSerializer,
        responses={202: EmailMessageSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="send-invitation")
    def send_invitation(self, request, pk=None):
        if not request.user.has_perm("activities.add_emailmessage"):
            raise PermissionDenied("You may not send email from records.")
        activity = self.get_object()
        data = self.validated_input(InvitationSerializer)
        with transaction.atomic():
            message = outbound.activity_invitation_send(
                user=request.user,
                activity=activity,
                to=recipient_of(user=request.user, data=data),
                body=data.get("body", ""),
            )
        return Response(EmailMessageSerializer(message).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(**crud_schema("activity template", ActivityTemplateSerializer))
class ActivityTemplateViewSet(ServiceModelViewSet):
    """Ready-made activities: type, subject, call script or agenda, duration, and the follow-up that
    completing one schedules. Everyone reads them; managers and CRM Admins write them."""

    serializer_class = ActivityTemplateSerializer
    filterset_class = ActivityTemplateFilter
    selector = staticmethod(selectors.activity_template_list)

    def create_record(self, data):
        return services.activity_template_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.activity_template_update(user=self.request.user, template=instance, data=data)

    def delete_record(self, instance):
        services.activity_template_delete(user=self.request.user, template=instance)
