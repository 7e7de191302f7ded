"""The email templates API: ``email-templates/`` (CRUD), ``{id}/preview/`` (render on a record,
writing nothing) and ``{id}/send/`` (email a record), and the sent-email log ``sent-emails/``."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from crm.api.serializers import visible_id
from crm.api.viewsets import (
    BAD_REQUEST,
    NOT_FOUND,
    VIEW,
    ModelPermissions,
    ServiceModelViewSet,
    TransitionPermissions,
    crud_schema,
)
from crm.messaging import selectors, services
from crm.models import Contact, EmailTemplate, Lead, OutgoingEmail


def _lead_visible(user):
    from crm.selectors import lead_visible_to

    return lead_visible_to(user)


def _contact_visible(user):
    from crm.selectors import contact_visible_to

    return contact_visible_to(user)


class EmailTemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = EmailTemplate
        fields = ("id", "name", "subject", "body_html", "body_text", "is_active", "created_at", "updated_at")
        read_only_fields = ("id", "created_at", "updated_at")
        validators: list = []
        extra_kwargs = {
            "body_html": {
                "help_text": "HTML with placeholders ({{ lead.name }}, {{ recipient.first_name }}, "
                "{% if … %}); sanitized when saved, values escaped when rendered."
            }
        }


class RecordChoiceSerializer(serializers.Serializer):
    lead_id = visible_id(Lead, _lead_visible, "lead", help_text="The lead to fill the template from.")
    contact_id = visible_id(Contact, _contact_visible, "contact", help_text="Or the contact.")

    def validate(self, attrs):
        if bool(attrs.get("lead")) == bool(attrs.get("contact")):
            raise serializers.ValidationError({"lead_id": "Give a lead_id or a contact_id (one of them)."})
        return attrs


class SendInputSerializer(RecordChoiceSerializer):
    to = serializers.EmailField(required=False, help_text="Default: the record's email address.")


class RenderedSerializer(serializers.Serializer):
    subject = serializers.CharField()
    html = serializers.CharField(help_text="The HTML part, values escaped.")
    text = serializers.CharField(help_text="The plain-text part.")


class OutgoingEmailSerializer(serializers.ModelSerializer):
    template_id = serializers.IntegerField(read_only=True, allow_null=True)
    lead_id = serializers.IntegerField(read_only=True, allow_null=True)
    contact_id = serializers.IntegerField(read_only=True, allow_null=True)
    enrollment_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = OutgoingEmail
        fields = (
            "id",
            "template_id",
            "lead_id",
            "contact_id",
            "enrollment_id",
            "to",
            "subject",
            "body_text",
            "body_html",
            "status",
            "error",
            "created_at",
            "sent_at",
        )
        read_only_fields = fields


class ViewPermissions(ModelPermissions):
    """A POST that writes nothing (a preview): reading the template is enough."""

    perms_map = {**ModelPermissions.perms_map, "POST": [VIEW]}


def _forbidden_as_404(function):
    try:
        return function()
    except DjangoPermissionDenied:
        from rest_framework.exceptions import NotFound

        raise NotFound("No such record.") from None


@extend_schema_view(**crud_schema("email template", EmailTemplateSerializer))
class EmailTemplateViewSet(ServiceModelViewSet):
    """Email templates: a subject, an HTML and a plain-text body with placeholders for a record's
    fields and related records; an unknown placeholder is refused on save, naming it."""

    serializer_class = EmailTemplateSerializer
    selector = staticmethod(selectors.email_template_list)
    action_serializers = {"preview": RecordChoiceSerializer, "send": SendInputSerializer}

    def get_permissions(self):
        if self.action == "preview":
            return [ViewPermissions()]
        return super().get_permissions()

    def create_record(self, data):
        return services.email_template_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.email_template_update(template=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        services.email_template_delete(template=instance, user=self.request.user)

    @extend_schema(
        summary="Preview an email template on a record",
        description="Renders the template on a lead or a contact you can see. Writes nothing, sends nothing.",
        request=RecordChoiceSerializer,
        responses={200: RenderedSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="preview")
    def preview(self, request, pk=None):
        template = self.get_object()
        data = self.validated_input(RecordChoiceSerializer)
        record = data.get("lead") or data.get("contact")
        rendered = _forbidden_as_404(
            lambda: services.email_template_preview(template=template, record=record, user=request.user)
        )
        return Response(RenderedSerializer(rendered).data)

    @extend_schema(
        summary="Email a record from a template",
        description="Queues the message (sent once the request commits). An address that opted out of "
        "email is never emailed: the answer's status is then `suppressed`.",
        request=SendInputSerializer,
        responses={202: OutgoingEmailSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="send")
    def send(self, request, pk=None):
        from django.db import transaction

        template = self.get_object()
        data = self.validated_input(SendInputSerializer)
        record = data.get("lead") or data.get("contact")
        with transaction.atomic():
            email = _forbidden_as_404(
                lambda: services.email_template_send(
                    template=template, record=record, user=request.user, to=data.get("to")
                )
            )
        email.refresh_from_db()
        return Response(OutgoingEmailSerializer(email).data, status=202)


@extend_schema_view(
    list=extend_schema(
        summary="List sent emails", description="Newest first: queued, sent, failed, suppressed."
    ),
    retrieve=extend_schema(
        summary="Get a sent email", responses={200: OutgoingEmailSerializer, 404: NOT_FOUND}
    ),
)
class OutgoingEmailViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The log of emails sent from templates, failures with their error."""

    serializer_class = OutgoingEmailSerializer
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        return selectors.outgoing_email_list(user=self.request.user)

    @extend_schema(
        summary="Send a failed email again",
        description="Queues a failed email again (one interrupted while sending, or refused by the server); "
        "it is sent once the request commits. 409 when the email is not failed.",
        request=None,
        responses={202: OutgoingEmailSerializer, 404: NOT_FOUND, 409: BAD_REQUEST},
    )
    @action(detail=True, methods=["post"], url_path="retry", permission_classes=[TransitionPermissions])
    def retry(self, request, pk=None):
        email = services.outgoing_email_retry(email=self.get_object(), user=request.user)
        return Response(OutgoingEmailSerializer(email).data, status=202)
