"""Sales operations in the API: exchange rates (and their import), quotas and attainment, the account
hierarchy (``accounts/{id}/hierarchy/``, an action registered on crm's account viewset) and the
performance board. Reads go through sales' selectors, writes through sales.services."""

from django.contrib.auth import get_user_model
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from crm.api.serializers import TIMESTAMPS, related_id
from crm.api.viewsets import (
    BAD_REQUEST,
    NOT_FOUND,
    ImportPermissions,
    ObjectSchema,
    ServiceModelViewSet,
    crud_schema,
    register_viewset_action,
    requires,
)
from crm.models import SalesTeam
from sales import services
from sales.currencies import exchange_rate_list
from sales.filters import ExchangeRateFilter, QuotaFilter
from sales.hierarchy import account_hierarchy, hierarchy_json
from sales.models import ExchangeRate, Quota, QuotaPeriod
from sales.performance import performance_board
from sales.quotas import quota_attainment, quota_list
from sales.rate_files import rate_rows


def money(help_text: str = "", **kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=20, decimal_places=2, help_text=help_text or None, **kwargs)


CONVERSION = serializers.CharField(help_text="How amounts were converted into the company currency.")
CURRENCY = serializers.CharField(help_text="The company currency every amount is in (CRM_CURRENCY).")


# --- exchange rates -------------------------------------------------------------------------------


class ExchangeRateSerializer(serializers.ModelSerializer):
    # Any case is accepted (the service writes capitals); the model's validators judge the code.
    currency = serializers.CharField(max_length=3, help_text="ISO 4217 code (EUR); not the company currency.")

    class Meta:
        model = ExchangeRate
        fields = ("id", "currency", "date", "rate", *TIMESTAMPS)
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []


class RateImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV, UTF-8, header row: currency,date,rate (YYYY-MM-DD).")


class RateImportResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField(help_text="Rates of a currency and date that existed, changed.")


@extend_schema_view(**crud_schema("exchange rate", ExchangeRateSerializer))
class ExchangeRateViewSet(ServiceModelViewSet):
    """Exchange rates by date: 1 unit of ``currency`` is worth ``rate`` units of the company currency
    from ``date`` until the currency's next rate."""

    serializer_class = ExchangeRateSerializer
    filterset_class = ExchangeRateFilter
    selector = staticmethod(exchange_rate_list)
    action_serializers = {"import_rates": RateImportInputSerializer}

    def create_record(self, data):
        return services.exchange_rate_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.exchange_rate_update(exchange_rate=instance, user=self.request.user, data=data)

    @extend_schema(
        summary="Import exchange rates from a CSV file",
        description="Multipart `file`: CSV with the columns currency, date, rate. A rate of a currency on "
        "a date that exists is updated, else created. All or nothing: any bad row answers 400 naming "
        "every bad row (`row 3`: the header is row 1) and writes nothing. Needs add and change.",
        request={"multipart/form-data": RateImportInputSerializer},
        responses={200: RateImportResultSerializer, 400: BAD_REQUEST},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[MultiPartParser, FormParser],
        permission_classes=[ImportPermissions],
        filter_backends=[],
        pagination_class=None,
    )
    def import_rates(self, request: Request) -> Response:
        upload = self.validated_input(RateImportInputSerializer)["file"]
        result = services.exchange_rate_import(user=request.user, rows=rate_rows(upload.read()))
        return Response(RateImportResultSerializer(result).data)


# --- quotas ---------------------------------------------------------------------------------------


class QuotaSerializer(serializers.ModelSerializer):
    user_id = related_id(get_user_model().objects.all(), "user", help_text="A user's quota; or team_id.")
    username = serializers.CharField(source="user.username", read_only=True, allow_null=True)
    team_id = related_id(SalesTeam.objects.all(), "team", help_text="A team's quota; or user_id.")
    team_name = serializers.CharField(source="team.name", read_only=True, allow_null=True)

    class Meta:
        model = Quota
        fields = (
            "id",
            "user_id",
            "username",
            "team_id",
            "team_name",
            "period",
            "period_start",
            "period_end",
            "target_amount",
            "target_count",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", "period_end", *TIMESTAMPS)
        validators: list = []
        extra_kwargs = {
            "period_start": {"help_text": "Any day of the period: kept as its first day."},
            "target_amount": {"help_text": "Won value to reach, in the company currency."},
        }


class AttainmentQuerySerializer(serializers.Serializer):
    date = serializers.DateField(
        required=False, help_text="Quotas whose period holds this day (default today)."
    )


class AttainmentSerializer(serializers.Serializer):
    quota_id = serializers.IntegerField()
    user_id = serializers.IntegerField(allow_null=True)
    username = serializers.CharField(allow_null=True)
    team_id = serializers.IntegerField(allow_null=True)
    team_name = serializers.CharField(allow_null=True)
    period = serializers.ChoiceField(choices=QuotaPeriod.choices)
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    target_amount = money(allow_null=True)
    target_count = serializers.IntegerField(allow_null=True)
    won_amount = money("Won in the period, converted into the company currency at each close date's rate.")
    won_count = serializers.IntegerField()
    amount_attainment = serializers.FloatField(allow_null=True, help_text="won_amount / target_amount, %.")
    count_attainment = serializers.FloatField(allow_null=True, help_text="won_count / target_count, %.")


@extend_schema_view(**crud_schema("quota", QuotaSerializer))
class QuotaViewSet(ServiceModelViewSet):
    """Quotas: a target won amount and/or count for a user or a team over a month, quarter or year.
    Managers set them for the teams they manage and their members; a CRM Admin for anyone."""

    serializer_class = QuotaSerializer
    filterset_class = QuotaFilter
    selector = staticmethod(quota_list)
    action_serializers = {"attainment": AttainmentQuerySerializer}

    def create_record(self, data):
        return services.quota_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.quota_update(quota=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        services.quota_delete(quota=instance, user=self.request.user)

    @extend_schema(
        summary="Quota attainment",
        description="Every quota you see whose period holds `date` (default today), with what was won "
        "in its period: deals won by the user (or by every member of the team) with a close date in the "
        "period, converted into the company currency at the rate in force on each close date. The list "
        "filters apply (`user`, `team`, `period`).",
        parameters=[AttainmentQuerySerializer],
        filters=True,
        responses={200: AttainmentSerializer(many=True), 400: BAD_REQUEST},
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def attainment(self, request: Request) -> Response:
        query = self.validated_input(AttainmentQuerySerializer, data=request.query_params)
        rows = quota_attainment(user=request.user, day=query.get("date"), filters=request.query_params)
        return Response(AttainmentSerializer(rows, many=True).data)


# --- the account hierarchy ------------------------------------------------------------------------


class HierarchyFiguresSerializer(serializers.Serializer):
    open_count = serializers.IntegerField()
    open_value = money()
    won_count = serializers.IntegerField()
    won_value = money()


class HierarchyRollupSerializer(HierarchyFiguresSerializer):
    accounts = serializers.IntegerField(help_text="Accounts in the subtree, itself included.")


class HierarchyNodeSerializer(HierarchyFiguresSerializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    parent_id = serializers.IntegerField(allow_null=True)
    depth = serializers.IntegerField(help_text="0 for the account asked for, 1 for its subsidiaries...")
    child_count = serializers.IntegerField()
    rollup = HierarchyRollupSerializer(help_text="The account and all its descendants.")


class HierarchySerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    account_name = serializers.CharField()
    parent_id = serializers.IntegerField(allow_null=True)
    currency = CURRENCY
    conversion = CONVERSION
    rollup = HierarchyRollupSerializer(help_text="The whole group.")
    nodes = HierarchyNodeSerializer(many=True, help_text="Depth first, subsidiaries by name.")


@extend_schema(
    summary="Account hierarchy",
    description="The account and every descendant (subsidiaries, theirs...), depth first: each with its "
    "open and won deals (count and value) and the roll-up of its subtree; `rollup` is the whole group's. "
    "Only the deals you see are counted. Values in the company currency at each close date's rate.",
    request=None,
    responses={200: HierarchySerializer, 404: NOT_FOUND},
    filters=False,
)
@action(
    detail=True,
    methods=["get"],
    filter_backends=[],
    permission_classes=[requires("crm.view_account", "sales.view_opportunity")],
)
def hierarchy(self, request: Request, pk=None) -> Response:
    """GET /api/v1/crm/accounts/{id}/hierarchy/ (on crm.api.views.AccountViewSet: ``self``)."""
    account = self.get_object()
    # Thousands of nodes: rendered straight from the selector's dicts (see hierarchy_json), not
    # through a serializer per node nor a second copy of the tree.
    tree = account_hierarchy(user=request.user, account=account)
    return HttpResponse(hierarchy_json(tree), content_type="application/json")


# --- the performance board ------------------------------------------------------------------------


class PerformanceQuerySerializer(serializers.Serializer):
    period = serializers.ChoiceField(choices=QuotaPeriod.choices, default=QuotaPeriod.QUARTER)
    date = serializers.DateField(required=False, help_text="A day of the period (default today).")


class PerformanceFiguresSerializer(serializers.Serializer):
    won_amount = money("Won revenue: deals won with a close date in the period, converted.")
    won_count = serializers.IntegerField()
    lost_count = serializers.IntegerField()
    win_rate = serializers.FloatField(allow_null=True, help_text="won / (won + lost), %.")
    average_deal = money("won_amount / won_count.", allow_null=True)
    cycle_days = serializers.FloatField(allow_null=True, help_text="Mean days from creation to win.")
    activities = serializers.IntegerField(help_text="Activities logged (created) in the period.")
    target_amount = money("The quota of this period.", allow_null=True)
    target_count = serializers.IntegerField(allow_null=True)
    amount_attainment = serializers.FloatField(allow_null=True, help_text="%")
    count_attainment = serializers.FloatField(allow_null=True, help_text="%")


class PerformanceUserSerializer(PerformanceFiguresSerializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()


class PerformanceTeamSerializer(PerformanceFiguresSerializer):
    team_id = serializers.IntegerField()
    name = serializers.CharField()
    member_count = serializers.IntegerField()


class PerformanceSerializer(serializers.Serializer):
    period = serializers.ChoiceField(choices=QuotaPeriod.choices)
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    currency = CURRENCY
    conversion = CONVERSION
    users = PerformanceUserSerializer(many=True, help_text="The leaderboard: by won revenue.")
    teams = PerformanceTeamSerializer(many=True, help_text="Team totals, by won revenue.")


class PerformanceViewSet(viewsets.ViewSet):
    """The performance board."""

    permission_classes = [requires("sales.view_opportunity")]
    schema = ObjectSchema()

    @extend_schema(
        summary="Performance board",
        description="Per user and per team for a month, quarter (default) or year: won revenue, deals "
        "won, win rate, average deal size, sales cycle length, activities logged and quota attainment, "
        "sorted by won revenue. A CRM Admin sees every team and member; a manager the teams they "
        "manage and their members; a rep themselves and their teams' totals.",
        parameters=[PerformanceQuerySerializer],
        responses={200: PerformanceSerializer, 400: BAD_REQUEST},
    )
    def list(self, request: Request) -> Response:
        query = PerformanceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        board = performance_board(
            user=request.user, period=query.validated_data["period"], day=query.validated_data.get("date")
        )
        return Response(PerformanceSerializer(board).data)


def register() -> None:
    register_viewset_action("crm.account", hierarchy)
