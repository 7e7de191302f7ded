"""Serializers for the crm resources: the JSON shape of SPEC.md's REST API.

Relations are read and written as ``<name>_id`` integers and tags as a list of ids; read-only
labels (``stage_name``...) sit beside them. Serializers check types and ranges only: the services
check the business rules, and ``Meta.validators = []`` keeps DRF from guessing them from the
model's constraints.
"""

from collections import defaultdict
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.db import router
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from crm.api.listing import ListRows
from crm.models import Account, Campaign, Contact, Lead, LeadStatus, LostReason, Pipeline, Stage, Tag
from crm.scoring import shown_breakdown, shown_lines
from crm.selectors import KANBAN_DEFAULT_LIMIT, KANBAN_MAX_LIMIT
from crm.selectors.annotations import page_tag_rows
from crm.win_probability import (
    WinEstimate,
    closed_estimate,
    open_estimate,
    row_values,
    win_estimate_cached,
    win_models_cached,
    win_models_context,
)
from crm.win_probability import spec_for as win_spec_for

TIMESTAMPS = ("created_at", "updated_at")


def related_id(
    queryset, source: str, *, required: bool = False, allow_null: bool = True, help_text: str = ""
):
    """A relation written and read as an integer id; an unknown id is a 400 on this field."""
    return serializers.PrimaryKeyRelatedField(
        source=source,
        queryset=queryset,
        required=required,
        allow_null=allow_null,
        help_text=help_text or None,
    )


class VisibleRelatedField(serializers.PrimaryKeyRelatedField):
    """A relation to a record the requesting user may see (``visible(user)``, a selector): another
    rep's lead is as unknown here as it is at its own URL."""

    def __init__(self, *, visible, **kwargs):
        self.visible = visible
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        if request is None:
            return super().get_queryset()
        return self.visible(request.user)


def visible_id(model, visible, source: str, help_text: str = ""):
    """Like related_id, limited to the records the requesting user sees."""
    return VisibleRelatedField(
        visible=visible,
        source=source,
        queryset=model.objects.all(),
        required=False,
        allow_null=True,
        help_text=help_text or None,
    )


def owner_id():
    return related_id(
        get_user_model().objects.filter(is_active=True),
        "owner",
        help_text="The user who owns the record. Omitted on create: the requesting user.",
    )


def label(source: str, help_text: str = "") -> serializers.CharField:
    return serializers.CharField(source=source, read_only=True, allow_null=True, help_text=help_text or None)


def tags_field():
    return serializers.PrimaryKeyRelatedField(
        many=True, queryset=Tag.objects.all(), required=False, help_text="Tag ids."
    )


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ("id", "name", "color", *TIMESTAMPS)
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []


class LostReasonSerializer(serializers.ModelSerializer):
    class Meta:
        model = LostReason
        fields = ("id", "name", "is_active", *TIMESTAMPS)
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []


class StageBriefSerializer(serializers.ModelSerializer):
    """A stage as a board column or a pipeline's stage list shows it."""

    class Meta:
        model = Stage
        fields = ("id", "name", "sequence", "probability", "color", "is_won", "is_lost")
        read_only_fields = fields


class StageSerializer(serializers.ModelSerializer):
    pipeline_id = related_id(Pipeline.objects.all(), "pipeline", required=True, allow_null=False)
    pipeline_name = label("pipeline.name")

    class Meta:
        model = Stage
        fields = (
            "id",
            "pipeline_id",
            "pipeline_name",
            "name",
            "sequence",
            "probability",
            "color",
            "is_won",
            "is_lost",
            "rotting_days",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []


class PipelineBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Pipeline
        fields = ("id", "name", "description", "is_default", "is_active", "sequence")
        read_only_fields = fields


class PipelineSerializer(serializers.ModelSerializer):
    stages = StageBriefSerializer(many=True, read_only=True, help_text="In board order.")

    class Meta:
        model = Pipeline
        fields = (
            "id",
            "name",
            "description",
            "is_default",
            "is_active",
            "sequence",
            "lost_reason_required",
            "stages",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []
        extra_kwargs = {
            "is_default": {
                # Not DRF's guess from the one-default constraint: pipeline_save moves the flag.
                "validators": [],
                "help_text": "Making a pipeline the default takes the flag from the previous default; "
                "the default cannot be unset, only moved.",
            }
        }


class AccountSerializer(serializers.ModelSerializer):
    parent_id = related_id(Account.objects.all(), "parent", help_text="The parent company.")
    parent_name = label("parent.name")
    owner_id = owner_id()
    owner_username = label("owner.username")
    tags = tags_field()
    contact_count = serializers.IntegerField(read_only=True)
    opportunity_count = serializers.IntegerField(read_only=True)
    open_value = serializers.DecimalField(
        max_digits=16, decimal_places=2, read_only=True, help_text="Summed amount of its open opportunities."
    )
    won_value = serializers.DecimalField(
        max_digits=16, decimal_places=2, read_only=True, help_text="Summed amount of its won opportunities."
    )
    churn_risk = serializers.IntegerField(
        source="churn_score",
        read_only=True,
        allow_null=True,
        help_text="0–100, for a customer account you may change (its owner's team, CRM Admins); else null.",
    )
    churn_reasons = serializers.JSONField(
        read_only=True, allow_null=True, help_text='Why: [{"code", "text", "points"}], largest first.'
    )

    class Meta:
        model = Account
        fields = (
            "id",
            "name",
            "website",
            "phone",
            "account_type",
            "industry",
            "rating",
            "tier",
            "employees",
            "annual_revenue",
            "billing_street",
            "billing_city",
            "billing_state",
            "billing_zip",
            "billing_country",
            "parent_id",
            "parent_name",
            "is_active",
            "owner_id",
            "owner_username",
            "tags",
            "contact_count",
            "opportunity_count",
            "open_value",
            "won_value",
            "churn_risk",
            "churn_reasons",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []


class ContactSerializer(serializers.ModelSerializer):
    account_id = related_id(Account.objects.all(), "account")
    account_name = label("account.name")
    full_name = serializers.CharField(read_only=True)
    owner_id = owner_id()
    owner_username = label("owner.username")
    tags = tags_field()

    class Meta:
        model = Contact
        fields = (
            "id",
            "first_name",
            "last_name",
            "full_name",
            "email",
            "phone",
            "mobile",
            "job_title",
            "department",
            "account_id",
            "account_name",
            "is_primary",
            "do_not_call",
            "email_opt_out",
            "is_active",
            "owner_id",
            "owner_username",
            "tags",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []


class WinProbabilityFieldsMixin(serializers.Serializer):
    """``automated_probability`` and its note for a lead or an opportunity: naive Bayes from the
    pipeline's won and lost history (crm.win_probability). The models are read once per response."""

    automated_probability = serializers.SerializerMethodField(
        help_text="0–100: the chance to be won estimated from the pipeline's won and lost history "
        "(naive Bayes), beside the manual `probability`. Null for a closed record or when the pipeline "
        "has too little history; `automated_probability_note` then says why."
    )
    automated_probability_note = serializers.SerializerMethodField(
        help_text="Why there is no automated probability (e.g. “Not enough history: 7 closed leads in "
        "this pipeline, 20 needed.”); null when there is one."
    )

    @classmethod
    def representation_context(cls, record) -> dict:
        """The context for one record just saved (its event): its own pipeline's model, read by a
        prepared statement, where a page reads every pipeline's."""
        return win_models_context(record)

    def _win_estimate(self, record) -> WinEstimate:
        estimate = getattr(record, "_win_estimate", None)
        if estimate is None:
            estimate = record._win_estimate = win_estimate_cached(record, self.context)
        return estimate

    @extend_schema_field(serializers.IntegerField(min_value=0, max_value=100, allow_null=True))
    def get_automated_probability(self, record) -> int | None:
        return self._win_estimate(record).probability

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_automated_probability_note(self, record) -> str | None:
        return self._win_estimate(record).note


class ScoreLineSerializer(serializers.Serializer):
    criterion = serializers.CharField()
    value = serializers.CharField()
    points = serializers.IntegerField()
    label = serializers.CharField()


class LeadSerializer(WinProbabilityFieldsMixin, serializers.ModelSerializer):
    score_breakdown = serializers.SerializerMethodField(
        help_text="The rules that gave the lead points, most points first."
    )

    @extend_schema_field(ScoreLineSerializer(many=True))
    def get_score_breakdown(self, lead) -> list:
        return shown_breakdown(lead.score_breakdown)

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
    owner_id = owner_id()
    owner_username = label("owner.username")
    tags = tags_field()
    lost_reason_id = serializers.IntegerField(read_only=True, allow_null=True)
    lost_reason_name = label("lost_reason.name")
    campaign_id = related_id(Campaign.objects.all(), "campaign", help_text="The campaign that brought it in.")
    converted_account_id = serializers.IntegerField(read_only=True, allow_null=True)
    converted_contact_id = serializers.IntegerField(read_only=True, allow_null=True)
    converted_opportunity_id = serializers.IntegerField(
        source="converted_opportunity_pk", read_only=True, allow_null=True
    )

    class Meta:
        model = Lead
        fields = (
            "id",
            "name",
            "contact_name",
            "email",
            "phone",
            "company_name",
            "job_title",
            "pipeline_id",
            "pipeline_name",
            "stage_id",
            "stage_name",
            "priority",
            "rating",
            "source",
            "campaign_id",
            "expected_revenue",
            "probability",
            "automated_probability",
            "automated_probability_note",
            "description",
            "status",
            "lost_reason_id",
            "lost_reason_name",
            "lost_note",
            "converted_at",
            "converted_account_id",
            "converted_contact_id",
            "converted_opportunity_id",
            "owner_id",
            "owner_username",
            "tags",
            "score",
            "score_breakdown",
            *TIMESTAMPS,
        )
        read_only_fields = (
            "id",
            "status",
            "lost_note",
            "converted_at",
            "score",
            "score_breakdown",
            *TIMESTAMPS,
        )
        validators: list = []
        extra_kwargs = {"probability": {"help_text": "0–100. Omitted: the stage's probability."}}


class TaggedWinRows(ListRows):
    """Rows of a tagged record with a win estimate (leads, deals): ``tags`` in tag name order (one query
    for the page) and ``automated_probability`` with its note, as WinProbabilityFieldsMixin gives them.
    Subclasses complete their other computed fields after ``super().complete``."""

    def complete(self, records: list[dict], rows: list[dict]) -> None:
        model = self.serializer_class.Meta.model
        tags = defaultdict(list)
        db = router.db_for_read(model.tags.through)
        for record_id, tag_id in page_tag_rows(model, [record["id"] for record in records], db):
            tags[record_id].append(tag_id)
        spec = win_spec_for(model)
        statuses = dict(model._meta.get_field("status").choices)
        models = None
        for record, row in zip(records, rows, strict=True):
            row["tags"] = tags[record["id"]]
            # "open" is the open status of leads and deals alike.
            if record["status"] != LeadStatus.OPEN:
                estimate = closed_estimate(spec, str(statuses.get(record["status"], record["status"])))
            else:
                if models is None:
                    models = win_models_cached(spec, self.context)
                estimate = open_estimate(
                    spec,
                    models.get(record["pipeline_id"]),
                    values=row_values(spec, record),
                    tag_ids=row["tags"],
                )
            row["automated_probability"] = estimate.probability
            row["automated_probability_note"] = estimate.note


class LeadListRows(TaggedWinRows):
    """The lead list's page as rows: the same JSON as LeadSerializer (crm.api.listing)."""

    serializer_class = LeadSerializer
    columns = {
        "pipeline_name": "pipeline__name",
        "stage_name": "stage__name",
        "lost_reason_name": "lost_reason__name",
        "converted_opportunity_id": "converted_opportunity_pk",
        "owner_username": "owner__username",
    }
    computed = ("tags", "automated_probability", "automated_probability_note", "score_breakdown")

    def extra_lookups(self) -> tuple[str, ...]:
        return ("score_breakdown__lines",)

    def complete(self, records: list[dict], rows: list[dict]) -> None:
        super().complete(records, rows)
        for record, row in zip(records, rows, strict=True):
            row["score_breakdown"] = shown_lines(record["score_breakdown__lines"])


# --- action bodies --------------------------------------------------------------------------------


class NoInputSerializer(serializers.Serializer):
    """The body of an action that takes none (mark-won): what OPTIONS and the browsable API show."""


class MoveStageInputSerializer(serializers.Serializer):
    stage_id = related_id(
        Stage.objects.all(),
        "stage",
        required=True,
        allow_null=False,
        help_text="A stage of the record's pipeline.",
    )


class ReopenInputSerializer(serializers.Serializer):
    stage_id = related_id(
        Stage.objects.all(),
        "stage",
        help_text="An open stage of the record's pipeline. Default: the last open stage it was in, "
        "else the pipeline's first open stage.",
    )


class MarkLostInputSerializer(serializers.Serializer):
    lost_reason_id = related_id(LostReason.objects.all(), "lost_reason", help_text="An active lost reason.")
    lost_note = serializers.CharField(required=False, allow_blank=True, default="")


class LeadConvertInputSerializer(serializers.Serializer):
    account_id = related_id(Account.objects.all(), "account", help_text="Link this existing account.")
    create_account = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Create an account from the company name, or reuse the account of that name (any case). "
        "Default: true when the lead has a company name.",
    )
    contact_id = related_id(Contact.objects.all(), "contact", help_text="Link this existing contact.")
    create_contact = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Create a contact from the lead's person, or reuse the contact with the lead's email "
        "(any case). Default: true when the lead has a contact name or email.",
    )
    create_opportunity = serializers.BooleanField(required=False, default=True)
    opportunity_name = serializers.CharField(
        required=False, max_length=200, help_text="Default: the lead's name."
    )
    amount = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=0,
        required=False,
        help_text="Default: the expected revenue.",
    )
    close_date = serializers.DateField(required=False, allow_null=True)
    pipeline_id = related_id(
        Pipeline.objects.all(), "pipeline", help_text="Default: the stage's pipeline, else the lead's."
    )
    stage_id = related_id(Stage.objects.all(), "stage", help_text="Default: the pipeline's first stage.")


# Fields another app adds to a crm serializer (sales: the opportunity a conversion created), by
# serializer class: name -> a function building the field, called whenever the fields are built.
_nested_fields: dict[type, dict[str, Callable[[], serializers.Field]]] = defaultdict(dict)


def register_nested_field(serializer_class: type, name: str, build: Callable[[], serializers.Field]) -> None:
    _nested_fields[serializer_class][name] = build


class RegisteredFieldsMixin:
    """A serializer whose fields other apps may add to (register_nested_field)."""

    def get_fields(self):
        fields = super().get_fields()
        for name, build in _nested_fields[type(self)].items():
            fields[name] = build()
        return fields


class LeadConvertResultSerializer(RegisteredFieldsMixin, serializers.Serializer):
    lead = LeadSerializer()
    account = AccountSerializer(allow_null=True)
    contact = ContactSerializer(allow_null=True)
    # "opportunity": registered by sales.


# --- boards ---------------------------------------------------------------------------------------


class KanbanQuerySerializer(serializers.Serializer):
    pipeline = serializers.PrimaryKeyRelatedField(
        queryset=Pipeline.objects.all(),
        required=False,
        help_text="Pipeline id. Default: the default pipeline.",
    )
    limit = serializers.IntegerField(
        min_value=0,
        max_value=KANBAN_MAX_LIMIT,
        default=KANBAN_DEFAULT_LIMIT,
        help_text=f"Cards per column (default {KANBAN_DEFAULT_LIMIT}, at most {KANBAN_MAX_LIMIT}).",
    )


def kanban_serializer(
    card_serializer: type[serializers.Serializer], name: str
) -> type[serializers.Serializer]:
    """The board shape for ``card_serializer``'s records: {"pipeline", "columns": [...]}."""
    column = type(
        f"{name}KanbanColumnSerializer",
        (serializers.Serializer,),
        {
            "stage": StageBriefSerializer(),
            "count": serializers.IntegerField(help_text="Records in the stage (after the filters)."),
            "total": serializers.DecimalField(
                max_digits=20, decimal_places=2, help_text="Their summed value."
            ),
            "results": card_serializer(many=True, help_text="The first `limit` records."),
        },
    )
    return type(
        f"{name}KanbanSerializer",
        (serializers.Serializer,),
        {"pipeline": PipelineBriefSerializer(), "columns": column(many=True)},
    )


LeadKanbanSerializer = kanban_serializer(LeadSerializer, "Lead")
