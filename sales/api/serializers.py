"""Serializers for opportunities, the forecast and the dashboard. Conventions: crm.api.serializers."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from crm.api.serializers import (
    TIMESTAMPS,
    TaggedWinRows,
    WinProbabilityFieldsMixin,
    kanban_serializer,
    label,
    owner_id,
    related_id,
    tags_field,
)
from crm.models import Account, Campaign, Contact, Pipeline, Stage
from sales.models import Opportunity, days_in_stage, is_rotting
from sales.selectors import GROUP_BY_CHOICES


def money(help_text: str = "") -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=20, decimal_places=2, help_text=help_text or None)


class OpportunitySerializer(WinProbabilityFieldsMixin, serializers.ModelSerializer):
    account_id = related_id(Account.objects.all(), "account")
    account_name = label("account.name")
    contact_id = related_id(Contact.objects.all(), "contact", help_text="Must work for the account, if any.")
    contact_name = label("contact.full_name")
    pipeline_id = related_id(
        Pipeline.objects.all(), "pipeline", allow_null=False, help_text="Omitted: the default pipeline."
    )
    pipeline_name = label("pipeline.name")
    stage_id = related_id(
        Stage.objects.all(),
        "stage",
        allow_null=False,
        help_text="Omitted: the pipeline's first stage. Changing it follows the move-stage rules.",
    )
    stage_name = label("stage.name")
    weighted_amount = serializers.DecimalField(
        max_digits=20, decimal_places=2, read_only=True, help_text="amount × probability / 100."
    )
    lead_id = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The lead it was converted from."
    )
    lost_reason_id = serializers.IntegerField(read_only=True, allow_null=True)
    lost_reason_name = label("lost_reason.name")
    campaign_id = related_id(
        Campaign.objects.all(), "campaign", help_text="The campaign that sourced it (a converted lead's own)."
    )
    owner_id = owner_id()
    owner_username = label("owner.username")
    tags = tags_field()
    days_in_stage = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="Days since an open deal entered its stage (stage history).",
    )
    stage_usual_time = serializers.FloatField(
        read_only=True, allow_null=True, help_text="The stage's usual time in days (mean of ended stays)."
    )
    is_rotting = serializers.BooleanField(
        read_only=True, help_text="Open and in its stage for longer than CRM_ROTTING_FACTOR × its usual time."
    )

    class Meta:
        model = Opportunity
        fields = (
            "id",
            "name",
            "account_id",
            "account_name",
            "contact_id",
            "contact_name",
            "pipeline_id",
            "pipeline_name",
            "stage_id",
            "stage_name",
            "amount",
            "currency",
            "probability",
            "automated_probability",
            "automated_probability_note",
            "weighted_amount",
            "close_date",
            "opportunity_type",
            "priority",
            "status",
            "campaign_id",
            "closed_at",
            "lost_reason_id",
            "lost_reason_name",
            "lost_note",
            "lead_id",
            "description",
            "owner_id",
            "owner_username",
            "tags",
            "days_in_stage",
            "stage_usual_time",
            "is_rotting",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", "status", "closed_at", "lost_note", *TIMESTAMPS)
        validators: list = []
        extra_kwargs = {"probability": {"help_text": "0–100. Omitted: the stage's probability."}}


OpportunityKanbanSerializer = kanban_serializer(OpportunitySerializer, "Opportunity")


class OpportunityListRows(TaggedWinRows):
    """The opportunity list's page and board cards as rows: the same JSON as OpportunitySerializer
    (crm.api.listing)."""

    serializer_class = OpportunitySerializer
    columns = {
        "account_name": "account__name",
        "pipeline_name": "pipeline__name",
        "stage_name": "stage__name",
        "lost_reason_name": "lost_reason__name",
        "owner_username": "owner__username",
    }
    computed = (
        "contact_name",
        "automated_probability",
        "automated_probability_note",
        "weighted_amount",
        "tags",
        "days_in_stage",
        "stage_usual_time",
        "is_rotting",
    )

    def extra_lookups(self) -> tuple[str, ...]:
        return (
            "contact__first_name",
            "contact__last_name",
            "account__industry",
            "stage_entered_at",
            "stage_usual_days",
        )

    def complete(self, records: list[dict], rows: list[dict]) -> None:
        super().complete(records, rows)
        weighted, usual_time = self.fields["weighted_amount"], self.fields["stage_usual_time"]
        for record, row in zip(records, rows, strict=True):
            first, last = record["contact__first_name"], record["contact__last_name"]
            row["contact_name"] = None if first is None else f"{first} {last}".strip()
            row["weighted_amount"] = weighted.to_representation(
                (record["amount"] or 0) * (record["probability"] or 0) / 100
            )
            days = days_in_stage(record["status"], record["stage_entered_at"])
            usual = record["stage_usual_days"]
            row["days_in_stage"] = days
            row["stage_usual_time"] = None if usual is None else usual_time.to_representation(round(usual, 1))
            row["is_rotting"] = is_rotting(days, usual)


# --- forecast -------------------------------------------------------------------------------------


class ForecastQuerySerializer(serializers.Serializer):
    pipeline = serializers.PrimaryKeyRelatedField(
        queryset=Pipeline.objects.all(), required=False, help_text="Pipeline id. Default: every pipeline."
    )
    owner = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(),
        required=False,
        help_text="Owner's user id. Default: everyone.",
    )
    date_from = serializers.DateField(required=False, help_text="Close date on or after (YYYY-MM-DD).")
    date_to = serializers.DateField(required=False, help_text="Close date on or before (YYYY-MM-DD).")
    group_by = serializers.ChoiceField(choices=GROUP_BY_CHOICES, default="month")

    def validate(self, attrs):
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_to": "The end of the range comes before its start."})
        return attrs


@extend_schema_field(
    {
        "oneOf": [{"type": "string"}, {"type": "integer"}],
        "nullable": True,
        "description": "month: YYYY-MM; quarter: YYYY-Qn; stage: stage id; owner: user id. null: open "
        "opportunities without a close date (month, quarter) or without an owner.",
        "example": "2026-12",
    }
)
class GroupKeyField(serializers.Field):
    def to_representation(self, value):
        return value


class ForecastFiguresSerializer(serializers.Serializer):
    target_amount = serializers.DecimalField(
        max_digits=20,
        decimal_places=2,
        allow_null=True,
        help_text="The quota target of the period (group by month or quarter): the owner's quotas, or "
        "without an owner the quotas of the teams you see; null without one.",
    )
    count = serializers.IntegerField(help_text="Open opportunities.")
    amount = money("Their summed amount.")
    weighted_amount = money("Σ amount × probability / 100 over them.")
    won_count = serializers.IntegerField(help_text="Opportunities won with a close date in the range.")
    won_amount = money("Their summed amount.")


class ForecastGroupSerializer(ForecastFiguresSerializer):
    key = GroupKeyField()
    label = serializers.CharField()

    class Meta:
        fields = (
            "key",
            "label",
            "count",
            "amount",
            "weighted_amount",
            "won_count",
            "won_amount",
            "target_amount",
        )

    def get_fields(self):
        fields = super().get_fields()
        return {name: fields[name] for name in self.Meta.fields}


class ForecastSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="The company currency every amount is in (CRM_CURRENCY).")
    conversion = serializers.CharField(help_text="How amounts were converted into it.")
    totals = ForecastFiguresSerializer()
    groups = ForecastGroupSerializer(many=True)


# --- dashboard ------------------------------------------------------------------------------------


class DashboardQuerySerializer(serializers.Serializer):
    pipeline = serializers.PrimaryKeyRelatedField(
        queryset=Pipeline.objects.all(), required=False, help_text="Pipeline id. Default: every pipeline."
    )


class CountValueSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    value = money("Summed amount.")


class StageDistributionSerializer(serializers.Serializer):
    stage_id = serializers.IntegerField()
    stage_name = serializers.CharField()
    pipeline_id = serializers.IntegerField()
    pipeline_name = serializers.CharField()
    count = serializers.IntegerField(help_text="Opportunities in the stage.")
    value = money("Their summed amount.")


class MyAttainmentSerializer(serializers.Serializer):
    quota_id = serializers.IntegerField()
    period = serializers.CharField()
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    target_amount = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True)
    target_count = serializers.IntegerField(allow_null=True)
    won_amount = money("Won in the period, converted into the company currency.")
    won_count = serializers.IntegerField()
    amount_attainment = serializers.FloatField(allow_null=True, help_text="%")
    count_attainment = serializers.FloatField(allow_null=True, help_text="%")


class DashboardSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="The company currency every amount is in (CRM_CURRENCY).")
    conversion = serializers.CharField(help_text="How amounts were converted into it.")
    my_attainment = MyAttainmentSerializer(many=True, help_text="Your quotas in force today.")
    total_leads = serializers.IntegerField()
    open_opportunities = CountValueSerializer()
    won_opportunities = CountValueSerializer()
    conversion_rate = serializers.FloatField(help_text="Converted leads / all leads × 100, two decimals.")
    pipeline_distribution = StageDistributionSerializer(many=True, help_text="Stages in board order.")
