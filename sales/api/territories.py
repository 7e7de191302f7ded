"""Territories in the API: ``territories/`` (the tree, rules nested, members and team),
``POST territories/reassign/`` (re-run the rules in the background) and ``territory-runs/`` (the runs'
reports, read only)."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from crm.api.serializers import TIMESTAMPS, related_id
from crm.api.viewsets import ModelPermissions, ServiceModelViewSet, crud_schema, requires
from crm.models import SalesTeam
from sales import services_territories as services
from sales.filters import TerritoryFilter
from sales.models import Territory, TerritoryRule, TerritoryRun
from sales.territories import territory_list, territory_run_list


class TerritoryRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = TerritoryRule
        fields = (
            "id",
            "country",
            "state",
            "postal_code_prefix",
            "industry",
            "employees_min",
            "employees_max",
        )
        read_only_fields = ("id",)
        validators: list = []
        extra_kwargs = {
            "country": {"help_text": "Billing country, ignoring case and spaces. Empty: any."},
            "state": {"help_text": "Billing state or region, ignoring case and spaces. Empty: any."},
            "postal_code_prefix": {"help_text": "The billing postal code starts with it. Empty: any."},
            "employees_min": {"help_text": "At least this many employees (null: no lower bound)."},
            "employees_max": {"help_text": "At most this many employees (null: no upper bound)."},
        }


class TerritorySerializer(serializers.ModelSerializer):
    parent_id = related_id(Territory.objects.all(), "parent", help_text="The wider territory, or null.")
    parent_name = serializers.CharField(source="parent.name", read_only=True, allow_null=True)
    team_id = related_id(SalesTeam.objects.all(), "team", help_text="A team whose members belong to it.")
    team_name = serializers.CharField(source="team.name", read_only=True, allow_null=True)
    member_ids = serializers.PrimaryKeyRelatedField(
        source="members",
        queryset=get_user_model().objects.all(),
        many=True,
        required=False,
        help_text="Users who belong to it besides the team's members.",
    )
    rules = TerritoryRuleSerializer(
        many=True,
        required=False,
        help_text="An account matching every criterion of one rule belongs here; when sent, they replace "
        "the territory's rules.",
    )
    account_count = serializers.IntegerField(read_only=True, help_text="Accounts placed in it.")

    class Meta:
        model = Territory
        fields = (
            "id",
            "name",
            "parent_id",
            "parent_name",
            "sequence",
            "team_id",
            "team_name",
            "member_ids",
            "description",
            "is_active",
            "rules",
            "account_count",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []


class TerritoryMoveSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    account = serializers.CharField()
    # "from" is a Python keyword: the fields are declared under their JSON names below.


TerritoryMoveSerializer._declared_fields["from"] = serializers.CharField(
    allow_null=True, help_text="The territory it left (null: none)."
)
TerritoryMoveSerializer._declared_fields["to"] = serializers.CharField(
    allow_null=True, help_text="The territory it joined (null: none)."
)


class TerritoryRunSerializer(serializers.ModelSerializer):
    started_by_id = serializers.IntegerField(read_only=True, allow_null=True)
    moves = serializers.SerializerMethodField(help_text="What moved (the first 1,000).")

    class Meta:
        model = TerritoryRun
        fields = (
            "id",
            "status",
            "started_by_id",
            "created_at",
            "finished_at",
            "accounts",
            "moved",
            "moves",
            "error",
        )
        read_only_fields = fields

    @extend_schema_field(TerritoryMoveSerializer(many=True))
    def get_moves(self, run) -> list[dict]:
        return [{key: move.get(key) for key in ("account_id", "account", "from", "to")} for move in run.moves]


@extend_schema_view(**crud_schema("territory", TerritorySerializer))
class TerritoryViewSet(ServiceModelViewSet):
    """Territories: a tree whose rules on account fields (country, state, postal code prefix, industry,
    employees) place every new or changed account; members are users and a team. Everyone reads them;
    CRM Admins change them."""

    serializer_class = TerritorySerializer
    filterset_class = TerritoryFilter
    selector = staticmethod(territory_list)
    action_serializers = {"reassign": TerritoryRunSerializer}

    def create_record(self, data):
        rules = data.pop("rules", None)
        return services.territory_create(user=self.request.user, data=data, rules=rules)

    def update_record(self, instance, data):
        rules = data.pop("rules", None)
        return services.territory_update(territory=instance, user=self.request.user, data=data, rules=rules)

    def delete_record(self, instance):
        services.territory_delete(territory=instance, user=self.request.user)

    @extend_schema(
        summary="Re-run the territory rules",
        description="Re-applies the rules to every account in the background (a worker). Answers 202 "
        "with the run; read `territory-runs/{id}/` for its status and what moved. Needs the right to "
        "change territories and to read runs (CRM Admins).",
        request=None,
        responses={202: TerritoryRunSerializer},
    )
    @action(
        detail=False,
        methods=["post"],
        filter_backends=[],
        pagination_class=None,
        permission_classes=[requires("sales.change_territory", "sales.view_territoryrun")],
    )
    def reassign(self, request: Request) -> Response:
        run = services.territory_run_start(user=request.user)
        return Response(TerritoryRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class TerritoryRunViewSet(viewsets.ReadOnlyModelViewSet):
    """The runs of the territory rules and what each moved: a CRM Admin's, or one's own."""

    serializer_class = TerritoryRunSerializer
    permission_classes = [ModelPermissions]
    filter_backends: list = []

    def get_queryset(self):
        return territory_run_list(user=self.request.user)
