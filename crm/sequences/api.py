"""The sequences API: ``sequences/`` (with their steps, in order) and ``sequence-enrollments/``
(enroll a lead or a contact, see its state and history, ``{id}/stop/``)."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from crm.api.serializers import related_id, visible_id
from crm.api.viewsets import (
    BAD_REQUEST,
    CONFLICT,
    NOT_FOUND,
    ModelPermissions,
    ServiceModelViewSet,
    TransitionPermissions,
    crud_schema,
)
from crm.messaging.api import _contact_visible, _lead_visible
from crm.models import (
    ConsentPurpose,
    Contact,
    EmailTemplate,
    EnrollmentEvent,
    Lead,
    Sequence,
    SequenceEnrollment,
    SequenceStep,
)
from crm.sequences import selectors, services


class SequenceStepSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(required=False, help_text="Omitted: a new step. Given: that step, changed.")
    email_template_id = related_id(
        EmailTemplate.objects.all(), "email_template", help_text="For an email step."
    )

    class Meta:
        model = SequenceStep
        fields = (
            "id",
            "position",
            "kind",
            "email_template_id",
            "task_subject",
            "task_type",
            "task_due_days",
            "wait_days",
            "business_days",
            "condition_field",
            "condition_operator",
            "condition_value",
            "branch_to",
        )
        validators: list = []


class SequenceSerializer(serializers.ModelSerializer):
    steps = SequenceStepSerializer(
        many=True,
        required=False,
        help_text="The steps in order. On a write, the whole list: steps with an id are changed, those "
        "without are added, the others are removed. Omitted: the steps stay as they are.",
    )
    active_enrollments = serializers.IntegerField(read_only=True)
    consent_purpose_id = related_id(
        ConsentPurpose.objects.all(),
        "consent_purpose",
        help_text="What its emails are for: a purpose that requires consent emails only those who gave it.",
    )

    class Meta:
        model = Sequence
        fields = (
            "id",
            "name",
            "description",
            "is_active",
            "consent_purpose_id",
            "steps",
            "active_enrollments",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "active_enrollments", "created_at", "updated_at")
        validators: list = []


class EnrollmentEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = EnrollmentEvent
        fields = ("at", "position", "kind", "detail")
        read_only_fields = fields


class EnrollmentSerializer(serializers.ModelSerializer):
    sequence_id = related_id(Sequence.objects.all(), "sequence", required=True, allow_null=False)
    sequence_name = serializers.CharField(source="sequence.name", read_only=True)
    lead_id = visible_id(Lead, _lead_visible, "lead", help_text="Enroll this lead (or a contact).")
    contact_id = visible_id(
        Contact, _contact_visible, "contact", help_text="Enroll this contact (or a lead)."
    )
    history = EnrollmentEventSerializer(source="events", many=True, read_only=True)

    class Meta:
        model = SequenceEnrollment
        fields = (
            "id",
            "sequence_id",
            "sequence_name",
            "lead_id",
            "contact_id",
            "status",
            "position",
            "next_run_at",
            "attempts",
            "last_error",
            "stop_reason",
            "created_at",
            "finished_at",
            "history",
        )
        read_only_fields = (
            "id",
            "status",
            "position",
            "next_run_at",
            "attempts",
            "last_error",
            "stop_reason",
            "created_at",
            "finished_at",
        )
        validators: list = []

    def validate(self, attrs):
        if bool(attrs.get("lead")) == bool(attrs.get("contact")):
            raise serializers.ValidationError({"lead_id": "Give a lead_id or a contact_id (one of them)."})
        return attrs


class StopInputSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)


@extend_schema_view(**crud_schema("sequence", SequenceSerializer))
class SequenceViewSet(ServiceModelViewSet):
    """Nurturing sequences: ordered steps (email, task, wait, branch)."""

    serializer_class = SequenceSerializer
    selector = staticmethod(selectors.sequence_list)

    def create_record(self, data):
        steps = data.pop("steps", None)
        return services.sequence_create(user=self.request.user, data=data, steps=steps)

    def update_record(self, instance, data):
        steps = data.pop("steps", None)
        return services.sequence_update(sequence=instance, user=self.request.user, data=data, steps=steps)

    def delete_record(self, instance):
        services.sequence_delete(sequence=instance, user=self.request.user)


@extend_schema_view(
    list=extend_schema(
        summary="List sequence enrollments", description="Newest first, each with its history."
    ),
    retrieve=extend_schema(
        summary="Get a sequence enrollment", responses={200: EnrollmentSerializer, 404: NOT_FOUND}
    ),
    create=extend_schema(
        summary="Enroll a lead or a contact in a sequence",
        responses={201: EnrollmentSerializer, 400: BAD_REQUEST},
    ),
)
class SequenceEnrollmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = EnrollmentSerializer
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        return selectors.enrollment_list(user=self.request.user).prefetch_related("events")

    def get_permissions(self):
        if self.action == "stop":
            return [TransitionPermissions()]
        return super().get_permissions()

    def perform_create(self, serializer):
        data = serializer.validated_data
        record = data.get("lead") or data.get("contact")
        with transaction.atomic():
            try:
                enrollment = services.sequence_enroll(
                    sequence=data["sequence"], record=record, user=self.request.user
                )
            except DjangoPermissionDenied as exc:
                from django.core.exceptions import ValidationError

                field = "lead_id" if data.get("lead") else "contact_id"
                raise ValidationError({field: str(exc)}) from exc
        serializer.instance = self.get_queryset().get(pk=enrollment.pk)

    @extend_schema(
        summary="Stop a sequence enrollment",
        request=StopInputSerializer,
        responses={200: EnrollmentSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="stop")
    def stop(self, request, pk=None):
        enrollment = self.get_object()
        serializer = StopInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            services.enrollment_stop(
                enrollment=enrollment, user=request.user, reason=serializer.validated_data.get("reason", "")
            )
        except DjangoPermissionDenied:
            raise NotFound("No such enrollment.") from None
        return Response(
            EnrollmentSerializer(self.get_queryset().get(pk=enrollment.pk)).data, status=status.HTTP_200_OK
        )
