"""The consent API: ``consent-purposes/``, ``consents/`` (with ``{id}/withdraw/``) and the channel
preferences of one person, ``leads/{id}/preferences/`` and ``contacts/{id}/preferences/`` (GET, PATCH)."""

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from crm.api.serializers import related_id, visible_id
from crm.api.viewsets import (
    BAD_REQUEST,
    NOT_FOUND,
    ServiceModelViewSet,
    TransitionPermissions,
    crud_schema,
    register_viewset_action,
)
from crm.consent import selectors, services
from crm.models import Channel, ChannelPreference, ConsentPurpose, ConsentRecord, ConsentSource, Contact, Lead
from crm.selectors import contact_visible_to, lead_visible_to

# --- purposes ---------------------------------------------------------------------------------------


class ConsentPurposeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConsentPurpose
        fields = ("id", "name", "description", "requires_consent", "is_active", "created_at", "updated_at")
        read_only_fields = ("id", "created_at", "updated_at")
        validators: list = []


class ConsentPurposeFilter(django_filters.FilterSet):
    class Meta:
        model = ConsentPurpose
        fields = ("is_active", "requires_consent")


@extend_schema_view(**crud_schema("consent purpose", ConsentPurposeSerializer))
class ConsentPurposeViewSet(ServiceModelViewSet):
    """What personal data is used for; a purpose that requires consent reaches only those who gave it."""

    serializer_class = ConsentPurposeSerializer
    filterset_class = ConsentPurposeFilter
    selector = staticmethod(selectors.consent_purpose_list)

    def create_record(self, data):
        return services.consent_purpose_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.consent_purpose_update(purpose=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        services.consent_purpose_delete(purpose=instance, user=self.request.user)


# --- consent records --------------------------------------------------------------------------------


class ConsentRecordSerializer(serializers.ModelSerializer):
    purpose_id = related_id(ConsentPurpose.objects.all(), "purpose", required=True, allow_null=False)
    purpose_name = serializers.CharField(source="purpose.name", read_only=True)
    lead_id = visible_id(Lead, lead_visible_to, "lead", help_text="The lead it is about (or contact_id).")
    contact_id = visible_id(
        Contact, contact_visible_to, "contact", help_text="The contact it is about (or lead_id)."
    )
    in_force = serializers.BooleanField(read_only=True, help_text="Given and not withdrawn.")
    recorded_by_id = serializers.IntegerField(read_only=True, allow_null=True)
    recorded_by_username = serializers.CharField(
        source="recorded_by.username", read_only=True, allow_null=True
    )

    class Meta:
        model = ConsentRecord
        fields = (
            "id",
            "purpose_id",
            "purpose_name",
            "lead_id",
            "contact_id",
            "lawful_basis",
            "source",
            "granted_at",
            "withdrawn_at",
            "in_force",
            "recorded_by_id",
            "recorded_by_username",
            "evidence",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "created_at", "updated_at")
        validators: list = []
        extra_kwargs = {"granted_at": {"required": False, "help_text": "Default: now."}}


class ConsentRecordFilter(django_filters.FilterSet):
    lead = django_filters.NumberFilter(field_name="lead_id")
    contact = django_filters.NumberFilter(field_name="contact_id")
    purpose = django_filters.NumberFilter(field_name="purpose_id")
    in_force = django_filters.BooleanFilter(field_name="withdrawn_at", lookup_expr="isnull", label="in force")

    class Meta:
        model = ConsentRecord
        fields = ("lead", "contact", "purpose", "lawful_basis", "source", "in_force")


class WithdrawInputSerializer(serializers.Serializer):
    evidence = serializers.CharField(required=False, allow_blank=True, help_text="How it was withdrawn.")


@extend_schema_view(**crud_schema("consent", ConsentRecordSerializer))
class ConsentRecordViewSet(ServiceModelViewSet):
    """Consent records of the leads and contacts you see: purpose, lawful basis, source, when given and
    withdrawn, by whom, on what evidence. A consent that ends is withdrawn (``withdrawn_at`` or
    ``{id}/withdraw/``), which keeps it as evidence; only CRM Admins delete one entered by mistake."""

    serializer_class = ConsentRecordSerializer
    filterset_class = ConsentRecordFilter
    selector = staticmethod(selectors.consent_list)
    action_serializers = {"withdraw": WithdrawInputSerializer}

    def get_permissions(self):
        if self.action == "withdraw":
            return [TransitionPermissions()]
        return super().get_permissions()

    def create_record(self, data):
        return services.consent_grant(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.consent_update(consent=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        services.consent_delete(consent=instance, user=self.request.user)

    @extend_schema(
        summary="Withdraw a consent",
        request=WithdrawInputSerializer,
        responses={200: ConsentRecordSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        consent = self.get_object()
        data = self.validated_input(WithdrawInputSerializer)
        consent = services.consent_withdraw(
            consent=consent, user=request.user, evidence=data.get("evidence", "")
        )
        return self.record_response(consent)


class ChannelPreferenceSerializer(serializers.ModelSerializer):
    """A preference as its events carry it (``channel_preference.created`` / ``.updated``)."""

    lead_id = serializers.IntegerField(read_only=True, allow_null=True)
    contact_id = serializers.IntegerField(read_only=True, allow_null=True)
    recorded_by_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = ChannelPreference
        fields = (
            "id",
            "lead_id",
            "contact_id",
            "channel",
            "allowed",
            "source",
            "recorded_by_id",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


def _consent_change(before, instance) -> str:
    if before.get("withdrawn_at") is None and instance.withdrawn_at is not None:
        return "withdrawn"
    return "updated"


# --- a person's channel preferences -----------------------------------------------------------------


class ChannelStateSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    stated = serializers.BooleanField(help_text="Whether the person said so (else: allowed by default).")
    updated_at = serializers.DateTimeField(allow_null=True)


class PreferencesSerializer(serializers.Serializer):
    email = ChannelStateSerializer()
    phone = ChannelStateSerializer()
    sms = ChannelStateSerializer()
    post = ChannelStateSerializer()


class PreferencesInputSerializer(serializers.Serializer):
    email = serializers.BooleanField(required=False)
    phone = serializers.BooleanField(required=False)
    sms = serializers.BooleanField(required=False)
    post = serializers.BooleanField(required=False)
    source = serializers.ChoiceField(choices=ConsentSource.choices, default=ConsentSource.OTHER)

    def validate(self, attrs):
        if not any(channel in attrs for channel in Channel.values):
            raise serializers.ValidationError(
                {"non_field_errors": [f"Give at least one channel: {', '.join(Channel.values)}."]}
            )
        return attrs


@extend_schema(
    methods=["GET"],
    summary="The person's channel preferences",
    responses={200: PreferencesSerializer, 404: NOT_FOUND},
    filters=False,
)
@extend_schema(
    methods=["PATCH"],
    summary="Set the person's channel preferences",
    description='`{"email": false, "sms": true, "source": "phone"}`: each channel given is set; '
    "every change is kept in the preference's history with who made it.",
    request=PreferencesInputSerializer,
    responses={200: PreferencesSerializer, 400: BAD_REQUEST, 403: None, 404: NOT_FOUND},
)
@action(detail=True, methods=["get", "patch"], filter_backends=[])
def preferences(self, request, pk=None):
    record = self.get_object()
    if request.method == "PATCH":
        if not request.user.has_perm("crm.change_channelpreference"):
            from rest_framework.exceptions import PermissionDenied

            raise PermissionDenied("You may not change channel preferences.")
        data = self.validated_input(PreferencesInputSerializer)
        source = data.pop("source")
        services.channel_preferences_set(user=request.user, person_record=record, values=data, source=source)
        record.refresh_from_db()
    return Response(PreferencesSerializer(selectors.person_channels(record)).data)


def register() -> None:
    from crm.events import api_representation, register_source

    register_source(
        ConsentRecord,
        name="consent",
        serialize=api_representation(selectors.consent_list, ConsentRecordSerializer),
        types=("created", "updated", "withdrawn", "deleted"),
        classify=_consent_change,
    )
    register_source(
        ChannelPreference,
        name="channel_preference",
        serialize=api_representation(
            lambda *, user, filters=None: selectors.channel_preference_list(user=user),
            ChannelPreferenceSerializer,
        ),
    )
    for label in ("crm.lead", "crm.contact"):
        register_viewset_action(label, preferences, input_serializer=PreferencesInputSerializer)
