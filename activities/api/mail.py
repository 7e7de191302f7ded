"""Email in the API: ``mailboxes/`` (IMAP accounts the CRM reads; ``{id}/poll/`` reads one now;
``inbound/`` takes a raw message sent to the BCC address), ``emails/`` (what was received and sent, on
the records the user sees; ``send/`` composes one from a record) and ``activities/{id}/send-invitation/``.
Conventions: crm.api.viewsets."""

import hmac

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from activities import selectors
from activities.mail import inbound, outbound
from activities.models import EmailMessage, Mailbox
from crm.api.serializers import TIMESTAMPS, related_id
from crm.api.viewsets import BAD_REQUEST, NOT_FOUND, ModelPermissions, ServiceModelViewSet, crud_schema
from crm.models import Contact, EmailTemplate, Lead
from crm.selectors import contact_visible_to, lead_visible_to


class MailboxSerializer(serializers.ModelSerializer):
    owner_id = related_id(
        get_user_model().objects.filter(is_active=True),
        "owner",
        help_text="Whose mailbox; null: shared. Set by CRM Admins only: anyone else's mailbox is their own.",
    )
    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=1000,
        style={"input_type": "password"},
        help_text="Stored encrypted, never shown. Required on create; empty on update keeps the stored one.",
    )

    class Meta:
        model = Mailbox
        fields = (
            "id",
            "name",
            "owner_id",
            "host",
            "port",
            "use_ssl",
            "username",
            "password",
            "folder",
            "create_leads",
            "is_active",
            "last_uid",
            "last_polled_at",
            "last_error",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", "last_uid", "last_polled_at", "last_error", *TIMESTAMPS)


class PollResultSerializer(serializers.Serializer):
    mailbox = serializers.CharField()
    fetched = serializers.IntegerField()
    logged = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    unmatched = serializers.IntegerField()
    skipped = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)


class InboundEmailResultSerializer(serializers.Serializer):
    message_id = serializers.CharField()
    logged = serializers.BooleanField(help_text="False: a duplicate, or no contact or lead matched.")
    duplicate = serializers.BooleanField()


class RawEmailParser(BaseParser):
    """A raw RFC 822 message as the body (what a mail server's pipe or webhook delivers)."""

    media_type = "message/rfc822"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read() if stream is not None else b""


class OctetStreamParser(RawEmailParser):
    media_type = "application/octet-stream"


@extend_schema_view(
    **crud_schema("mailbox", MailboxSerializer),
)
class MailboxViewSet(ServiceModelViewSet):
    """IMAP mailboxes the CRM reads every few minutes: a user's own, or shared ones (CRM Admins)."""

    serializer_class = MailboxSerializer
    filterset_class = None
    selector = staticmethod(lambda *, user, filters=None: selectors.mailbox_visible_to(user))
    queryset = Mailbox.objects.none()

    def create_record(self, data):
        return inbound.mailbox_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return inbound.mailbox_update(user=self.request.user, mailbox=instance, data=data)

    def delete_record(self, instance):
        inbound.mailbox_delete(user=self.request.user, mailbox=instance)

    @extend_schema(
        summary="Read a mailbox now",
        description="Reads the messages that arrived since the last poll (as the scheduled job does) and "
        "logs them. A refused login or a dropped connection is reported in `error`, not as a failure.",
        request=None,
        responses={200: PollResultSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"])
    def poll(self, request, pk=None):
        mailbox = self.get_object()
        inbound._ensure_may_manage(request.user, mailbox, "change")
        result = inbound.mailbox_poll(mailbox=mailbox)
        return Response(PollResultSerializer(result).data)

    @extend_schema(
        summary="Receive a message sent to the CRM's BCC address",
        description="The body is the raw RFC 822 message (`message/rfc822` or `application/octet-stream`), "
        "as a mail server's pipe delivers it. The secret of CRM_INBOUND_EMAIL_SECRET in the "
        "`X-CRM-Inbound-Secret` header is the credential (no login); without it, 404. The message is "
        "logged once (by Message-ID) on the contacts and leads of its addresses and on its thread.",
        parameters=[
            OpenApiParameter(
                "X-CRM-Inbound-Secret", OpenApiTypes.STR, location=OpenApiParameter.HEADER, required=True
            )
        ],
        request={"message/rfc822": OpenApiTypes.BINARY, "application/octet-stream": OpenApiTypes.BINARY},
        responses={
            201: InboundEmailResultSerializer,
            200: InboundEmailResultSerializer,
            400: BAD_REQUEST,
            404: NOT_FOUND,
        },
        auth=[],
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="inbound",
        permission_classes=[AllowAny],
        authentication_classes=[],
        parser_classes=[RawEmailParser, OctetStreamParser],
    )
    def inbound(self, request):
        secret = settings.CRM_INBOUND_EMAIL_SECRET
        given = str(request.headers.get("X-CRM-Inbound-Secret", ""))
        if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
            raise NotFound("Not found.")
        length = int(request.headers.get("Content-Length") or 0)
        if length > settings.CRM_INBOUND_EMAIL_MAX_BYTES:
            raise ValidationError({"message": "The message is larger than CRM_INBOUND_EMAIL_MAX_BYTES."})
        raw = request.body
        if not raw.strip():
            raise ValidationError({"message": "Send the raw message as the body."})
        logged, incoming = inbound.email_receive(raw=raw)
        data = {
            "message_id": incoming.message_id,
            "logged": bool(logged.logged),
            "duplicate": bool(logged.duplicates),
        }
        return Response(data, status=status.HTTP_201_CREATED if logged.logged else status.HTTP_200_OK)


class EmailMessageSerializer(serializers.ModelSerializer):
    mailbox_id = serializers.IntegerField(read_only=True, allow_null=True)
    activity_ids = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField(help_text="A sent message's delivery: queued, sent, failed…")

    class Meta:
        model = EmailMessage
        fields = (
            "id",
            "direction",
            "message_id",
            "mailbox_id",
            "record_type",
            "record_id",
            "from_address",
            "to_addresses",
            "cc_addresses",
            "subject",
            "in_reply_to",
            "references",
            "sent_at",
            "skipped",
            "status",
            "activity_ids",
            "created_at",
        )
        read_only_fields = fields

    def get_activity_ids(self, obj) -> list[int]:
        return sorted(activity.pk for activity in obj.activities.all())

    def get_status(self, obj) -> str:
        return obj.outgoing.status if obj.outgoing_id and obj.outgoing else ""


class EmailComposeSerializer(serializers.Serializer):
    record_type = serializers.ChoiceField(choices=["lead", "opportunity", "contact", "account"])
    record_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    to_contact_id = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**63 - 1, help_text="Default: the record's."
    )
    to_lead_id = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1)
    template_id = related_id(EmailTemplate.objects.filter(is_active=True), "template")
    subject = serializers.CharField(required=False, allow_blank=True, max_length=255)
    body = serializers.CharField(
        required=False, allow_blank=True, max_length=200_000, help_text="Plain text."
    )


class InvitationSerializer(serializers.Serializer):
    to_contact_id = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**63 - 1
    )
    to_lead_id = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1)
    body = serializers.CharField(required=False, allow_blank=True, max_length=200_000)


def recipient_of(*, user, data) -> Contact | Lead | None:
    """The contact or lead named by ``to_contact_id``/``to_lead_id``, if the user sees it."""
    if data.get("to_contact_id"):
        found = contact_visible_to(user).filter(pk=data["to_contact_id"]).first()
        if found is None:
            raise ValidationError({"to_contact_id": f"No contact with the id {data['to_contact_id']}."})
        return found
    if data.get("to_lead_id"):
        found = lead_visible_to(user).filter(pk=data["to_lead_id"]).first()
        if found is None:
            raise ValidationError({"to_lead_id": f"No lead with the id {data['to_lead_id']}."})
        return found
    return None


@extend_schema_view(
    list=extend_schema(summary="List the emails received and sent on records I can see"),
    retrieve=extend_schema(summary="Get an email", responses={200: EmailMessageSerializer, 404: NOT_FOUND}),
)
class EmailMessageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = EmailMessageSerializer
    permission_classes = [ModelPermissions]
    queryset = EmailMessage.objects.none()

    def get_queryset(self):
        return (
            selectors.email_message_visible_to(self.request.user)
            .select_related("outgoing")
            .prefetch_related("activities")
            .order_by("-created_at", "-id")
        )

    @extend_schema(
        summary="Email a record's contact or lead",
        description="From a lead, deal, contact or account: to its contact or lead (or `to_contact_id` / "
        "`to_lead_id`, one of the record's), from `template_id` (filled from the recipient) or with "
        "`subject` and `body`. Sent by a background job through the configured email backend, then "
        "logged as an email activity on the record with its Message-ID. An address that opted out is "
        "a 400 on `to`.",
        request=EmailComposeSerializer,
        responses={202: EmailMessageSerializer, 400: BAD_REQUEST},
    )
    @action(detail=False, methods=["post"], permission_classes=[IsAuthenticated])
    def send(self, request):
        if not request.user.has_perm("activities.add_emailmessage"):
            raise PermissionDenied("You may not send email from records.")
        params = EmailComposeSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        with transaction.atomic():
            record = selectors.record_of(
                user=request.user, record_type=data["record_type"], record_id=data["record_id"]
            )
            message = outbound.email_compose(
                user=request.user,
                record=record,
                to=recipient_of(user=request.user, data=data),
                template=data.get("template"),
                subject=data.get("subject", ""),
                body=data.get("body", ""),
            )
        return Response(EmailMessageSerializer(message).data, status=status.HTTP_202_ACCEPTED)
