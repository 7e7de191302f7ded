"""The marketing API: ``segments/`` (with ``{id}/preview/`` for the live count and first records and
``{id}/members/`` for a static list's members) and ``campaigns/`` (with ``{id}/members/`` and
``{id}/stats/``, the figures and the ROI)."""

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from crm.api.serializers import owner_id, related_id
from crm.api.viewsets import (
    BAD_REQUEST,
    NOT_FOUND,
    ServiceModelViewSet,
    TransitionPermissions,
    crud_schema,
    requires,
)
from crm.marketing import selectors, sending, services
from crm.models import (
    Campaign,
    CampaignMember,
    CampaignMemberStatus,
    ConsentPurpose,
    EmailTemplate,
    Segment,
    SegmentEntity,
)

# --- segments --------------------------------------------------------------------------------------


class SegmentSerializer(serializers.ModelSerializer):
    owner_id = owner_id()
    definition = serializers.JSONField(
        required=False,
        help_text='A dynamic segment\'s filters, as the list takes them: {"priority": "high", "tag": "3"}. '
        "An unknown filter or a value the list refuses is a 400.",
    )
    static_member_count = serializers.IntegerField(
        read_only=True, help_text="How many records were picked into a static segment (0 for a dynamic one)."
    )

    class Meta:
        model = Segment
        fields = (
            "id",
            "name",
            "description",
            "entity",
            "kind",
            "definition",
            "static_member_count",
            "owner_id",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "static_member_count", "created_at", "updated_at")
        validators: list = []


class SegmentRecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    email = serializers.CharField()


class SegmentPreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="How many records (that you see) are in the segment now.")
    results = SegmentRecordSerializer(many=True, help_text="The newest ten.")


class SegmentMembersInputSerializer(serializers.Serializer):
    add = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=10000)
    remove = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=10000
    )


@extend_schema_view(**crud_schema("segment", SegmentSerializer))
class SegmentViewSet(ServiceModelViewSet):
    """Segments of leads, contacts or accounts: saved filters (dynamic) or hand-picked lists (static)."""

    serializer_class = SegmentSerializer
    selector = staticmethod(selectors.segment_list)
    action_serializers = {"members": SegmentMembersInputSerializer}

    def get_queryset(self):
        entity = self.request.query_params.get("entity")
        if self.action == "list" and entity and entity not in SegmentEntity.values:
            raise serializers.ValidationError({"entity": [f"Use one of: {', '.join(SegmentEntity.values)}."]})
        return selectors.segment_list(user=self.request.user, filters={"entity": entity})

    def create_record(self, data):
        return services.segment_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.segment_update(segment=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        services.segment_delete(segment=instance, user=self.request.user)

    @extend_schema(
        summary="A segment's live count and first records",
        responses={200: SegmentPreviewSerializer, 404: NOT_FOUND},
        filters=False,
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def preview(self, request, pk=None):
        segment = self.get_object()
        return Response(
            SegmentPreviewSerializer(selectors.segment_preview(segment=segment, user=request.user)).data
        )

    @extend_schema(
        summary="Add or remove members of a static segment",
        request=SegmentMembersInputSerializer,
        responses={200: SegmentSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="members")
    def members(self, request, pk=None):
        segment = self.get_object()
        data = self.validated_input(SegmentMembersInputSerializer)
        segment = services.segment_members_change(
            segment=segment, user=request.user, add=data.get("add", ()), remove=data.get("remove", ())
        )
        return self.record_response(segment)


# --- campaigns -------------------------------------------------------------------------------------


class CampaignSerializer(serializers.ModelSerializer):
    owner_id = owner_id()
    member_count = serializers.IntegerField(read_only=True)
    email_template_id = related_id(
        EmailTemplate.objects.all(), "email_template", help_text="The email an email campaign sends."
    )
    segment_id = related_id(
        Segment.objects.all(),
        "segment",
        help_text="Sending adds this segment's leads or contacts to the members.",
    )
    consent_purpose_id = related_id(
        ConsentPurpose.objects.all(),
        "consent_purpose",
        help_text="What the email is for; a purpose that requires consent reaches only members who gave it.",
    )

    class Meta:
        model = Campaign
        fields = (
            "id",
            "name",
            "campaign_type",
            "status",
            "start_date",
            "end_date",
            "budget",
            "actual_cost",
            "expected_revenue",
            "description",
            "owner_id",
            "email_template_id",
            "segment_id",
            "consent_purpose_id",
            "track_opens",
            "track_clicks",
            "send_started_at",
            "member_count",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "member_count", "send_started_at", "created_at", "updated_at")
        validators: list = []


class CampaignMemberSerializer(serializers.ModelSerializer):
    lead_id = serializers.IntegerField(read_only=True, allow_null=True)
    contact_id = serializers.IntegerField(read_only=True, allow_null=True)
    name = serializers.SerializerMethodField()
    email = serializers.SerializerMethodField()

    class Meta:
        model = CampaignMember
        fields = (
            "id",
            "lead_id",
            "contact_id",
            "name",
            "email",
            "status",
            "send_status",
            "excluded_reason",
            "sent_to",
            "sent_at",
            "opened_at",
            "clicked_at",
            "error",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields
        extra_kwargs = {
            "send_status": {
                "help_text": "The send log: pending, sending, sent, failed or excluded (see excluded_reason)"
            }
        }

    sent_to = serializers.CharField(
        source="email", read_only=True, help_text="The address the email went to."
    )

    def get_name(self, member) -> str:
        if member.lead is not None:
            return member.lead.name
        return f"{member.contact.first_name} {member.contact.last_name}".strip()

    def get_email(self, member) -> str:
        return (member.lead or member.contact).email or ""


class CampaignMemberPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = CampaignMemberSerializer(many=True)


class CampaignMembersAddSerializer(serializers.Serializer):
    lead_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=10000
    )
    contact_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=10000
    )
    segment_id = related_id(
        Segment.objects.all(), "segment", help_text="Add every lead or contact this segment holds now."
    )
    status = serializers.ChoiceField(
        choices=CampaignMemberStatus.choices, default=CampaignMemberStatus.PLANNED
    )


class CampaignMembersAddedSerializer(serializers.Serializer):
    added = serializers.IntegerField(help_text="How many joined (members already are left as they are).")


class CampaignMemberStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CampaignMemberStatus.choices)


class CampaignStatsSerializer(serializers.Serializer):
    members = serializers.IntegerField()
    members_by_status = serializers.DictField(child=serializers.IntegerField())
    responses = serializers.IntegerField(help_text="Members who responded.")
    leads = serializers.IntegerField(help_text="Leads the campaign brought in.")
    opportunities = serializers.IntegerField(help_text="Opportunities the campaign sourced.")
    won_opportunities = serializers.IntegerField()
    won_revenue = serializers.DecimalField(
        max_digits=16, decimal_places=2, help_text="In the company currency."
    )
    budget = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    actual_cost = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    expected_revenue = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    cost_per_lead = serializers.DecimalField(
        max_digits=16,
        decimal_places=2,
        allow_null=True,
        help_text="Actual cost / leads; null without either.",
    )
    roi = serializers.DecimalField(
        max_digits=16,
        decimal_places=4,
        allow_null=True,
        help_text="(Won revenue − actual cost) / actual cost, as a ratio (0.5 = 50 %); null without a cost.",
    )


class ExclusionsSerializer(serializers.Serializer):
    no_email = serializers.IntegerField()
    opted_out = serializers.IntegerField(
        help_text="The record (or a contact of its address) opted out of email."
    )
    unsubscribed = serializers.IntegerField(help_text="The address unsubscribed from a campaign.")
    email_off = serializers.IntegerField(help_text="The person turned email off in their preferences.")
    no_consent = serializers.IntegerField(
        help_text="No consent in force for the campaign's purpose (when the purpose requires consent)."
    )
    duplicate = serializers.IntegerField(help_text="Another member has the same address.")


class SendPreviewSerializer(serializers.Serializer):
    template_id = serializers.IntegerField(allow_null=True)
    recipients = serializers.IntegerField(help_text="How many would get the email now.")
    excluded = ExclusionsSerializer(help_text="How many are left out, by reason.")
    already_sent = serializers.IntegerField()


class SendResultSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="Members whose email the workers now send, in batches.")
    excluded = ExclusionsSerializer()


class TestSendInputSerializer(serializers.Serializer):
    to = serializers.EmailField(required=False, allow_blank=True, help_text="Default: your own address.")


class TestSendResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The sent email's id (sent-emails/{id}/).")
    to = serializers.EmailField()
    status = serializers.CharField()


MEMBER_ID = OpenApiParameter("member_id", OpenApiTypes.INT, OpenApiParameter.PATH)


@extend_schema_view(**crud_schema("campaign", CampaignSerializer))
class CampaignViewSet(ServiceModelViewSet):
    """Marketing campaigns: type, dates, budget and cost, members with a status each, figures and ROI."""

    serializer_class = CampaignSerializer
    selector = staticmethod(selectors.campaign_list)

    def get_permissions(self):
        if self.action in ("send", "test_send"):
            return [TransitionPermissions()]
        if self.action in ("members", "member"):
            verb = {"GET": "view", "POST": "add", "PATCH": "change", "DELETE": "delete"}[self.request.method]
            return [requires("crm.view_campaign", f"crm.{verb}_campaignmember")()]
        return super().get_permissions()

    def create_record(self, data):
        return services.campaign_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.campaign_update(campaign=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        services.campaign_delete(campaign=instance, user=self.request.user)

    @extend_schema(
        summary="A campaign's figures and ROI",
        description="Over the records you see: members by status, responses, leads and opportunities the "
        "campaign sourced, the revenue they won, cost per lead and ROI = (won revenue − actual cost) / "
        "actual cost.",
        responses={200: CampaignStatsSerializer, 404: NOT_FOUND},
        filters=False,
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def stats(self, request, pk=None):
        campaign = self.get_object()
        return Response(
            CampaignStatsSerializer(selectors.campaign_stats(campaign=campaign, user=request.user)).data
        )

    @extend_schema(
        methods=["GET"],
        summary="List a campaign's members",
        description="Paginated like the lists (`?page=`, `?page_size=`); leads you cannot see are left out.",
        responses={200: CampaignMemberPageSerializer, 404: NOT_FOUND},
        filters=False,
    )
    @extend_schema(
        methods=["POST"],
        summary="Add leads and contacts (or a segment's) to a campaign",
        request=CampaignMembersAddSerializer,
        responses={201: CampaignMembersAddedSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def members(self, request, pk=None):
        campaign = self.get_object()
        if request.method == "GET":
            members = selectors.campaign_member_list(campaign=campaign, user=request.user)
            page = self.paginate_queryset(members)
            return self.get_paginated_response(CampaignMemberSerializer(page, many=True).data)
        data = self.validated_input(CampaignMembersAddSerializer)
        added = services.campaign_members_add(
            campaign=campaign,
            user=request.user,
            lead_ids=data.get("lead_ids", ()),
            contact_ids=data.get("contact_ids", ()),
            segment=data.get("segment"),
            status=data["status"],
        )
        return Response({"added": added}, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["PATCH"],
        summary="Set a campaign member's status",
        parameters=[MEMBER_ID],
        request=CampaignMemberStatusSerializer,
        responses={200: CampaignMemberSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @extend_schema(
        methods=["DELETE"],
        summary="Remove a member from a campaign",
        parameters=[MEMBER_ID],
        responses={204: None, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<member_id>[0-9]{1,18})")
    def member(self, request, pk=None, member_id=None):
        campaign = self.get_object()
        member = (
            selectors.campaign_member_list(campaign=campaign, user=request.user).filter(pk=member_id).first()
        )
        if member is None:
            raise NotFound("No such member of this campaign.")
        with transaction.atomic():
            if request.method == "DELETE":
                services.campaign_member_delete(member=member, user=request.user)
                return Response(status=status.HTTP_204_NO_CONTENT)
            data = self.validated_input(CampaignMemberStatusSerializer)
            member = services.campaign_member_update(member=member, user=request.user, data=data)
        return Response(CampaignMemberSerializer(member).data)

    @extend_schema(
        summary="What sending the campaign's email would do now",
        description="How many members (and segment records) would get it, how many are left out and why: "
        "no address, opted out, unsubscribed, email turned off in their preferences, no consent for the "
        "campaign's purpose, an address twice. Writes nothing.",
        responses={200: SendPreviewSerializer, 404: NOT_FOUND},
        filters=False,
    )
    @action(detail=True, methods=["get"], url_path="send-preview", filter_backends=[])
    def send_preview(self, request, pk=None):
        campaign = self.get_object()
        return Response(
            SendPreviewSerializer(sending.campaign_send_preview(campaign=campaign, user=request.user)).data
        )

    @extend_schema(
        summary="Send the campaign's email",
        description="To every member not emailed yet (the segment's records join first), in batches on the "
        "workers at the configured rate; those left out are logged with their reason. "
        "400 without a template.",
        request=None,
        responses={202: SendResultSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"])
    def send(self, request, pk=None):
        campaign = self.get_object()
        result = sending.campaign_send(campaign=campaign, user=request.user)
        return Response(SendResultSerializer(result).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Send the campaign's email to yourself",
        description="Rendered on its first member, to `to` (default: your address). "
        "The send log is not touched.",
        request=TestSendInputSerializer,
        responses={202: TestSendResultSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="test-send")
    def test_send(self, request, pk=None):
        campaign = self.get_object()
        data = self.validated_input(TestSendInputSerializer)
        email = sending.campaign_test_send(campaign=campaign, user=request.user, to=data.get("to", ""))
        return Response(
            {"id": email.pk, "to": email.to, "status": email.status}, status=status.HTTP_202_ACCEPTED
        )
