"""Commissions in the API: ``commission-plans/`` (tiers and category rates nested),
``commission-assignments/`` (a plan per rep per period) and ``commission-statements/`` (computed from
won deals; ``compute/``, ``{id}/approve/``, ``{id}/lock/``, ``export/`` for payroll)."""

from django.contrib.auth import get_user_model
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from crm.api.serializers import TIMESTAMPS, related_id
from crm.api.viewsets import (
    BAD_REQUEST,
    NOT_FOUND,
    ModelPermissions,
    ServiceModelViewSet,
    crud_schema,
    requires,
)
from sales import services_commissions as services
from sales.commissions import commission_plan_list, commission_statement_list, commission_statements_export
from sales.filters import CommissionAssignmentFilter, CommissionStatementFilter
from sales.models import (
    CommissionAssignment,
    CommissionCategoryRate,
    CommissionLine,
    CommissionPlan,
    CommissionStatement,
    CommissionTier,
    QuotaPeriod,
)

MANAGE = requires("sales.change_commissionstatement")
EXPORT_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class CommissionTierSerializer(serializers.ModelSerializer):
    class Meta:
        model = CommissionTier
        fields = ("attainment_from", "attainment_to", "rate")
        extra_kwargs = {
            "attainment_from": {"min_value": 0, "help_text": "% of quota where the band starts."},
            "attainment_to": {"min_value": 0, "help_text": "% of quota where it ends; null: no limit."},
            "rate": {"min_value": 0, "max_value": 100, "help_text": "% of the won amount in the band."},
        }


class CommissionCategoryRateSerializer(serializers.ModelSerializer):
    class Meta:
        model = CommissionCategoryRate
        fields = ("category", "rate")
        extra_kwargs = {"rate": {"min_value": 0, "max_value": 100}}


class CommissionPlanSerializer(serializers.ModelSerializer):
    tiers = CommissionTierSerializer(
        many=True, required=False, help_text="Bands of quota attainment; when sent, they replace the plan's."
    )
    category_rates = CommissionCategoryRateSerializer(
        many=True, required=False, help_text="Rates per product category; when sent, they replace the plan's."
    )

    class Meta:
        model = CommissionPlan
        fields = (
            "id",
            "name",
            "base_rate",
            "description",
            "is_active",
            "tiers",
            "category_rates",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []
        extra_kwargs = {"base_rate": {"min_value": 0, "max_value": 100}}


class CommissionAssignmentSerializer(serializers.ModelSerializer):
    plan_id = related_id(CommissionPlan.objects.all(), "plan", required=True, allow_null=False)
    user_id = related_id(get_user_model().objects.all(), "user", required=True, allow_null=False)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = CommissionAssignment
        fields = ("id", "plan_id", "user_id", "username", "period", "period_start", "period_end", *TIMESTAMPS)
        read_only_fields = ("id", "period_end", *TIMESTAMPS)
        validators: list = []
        extra_kwargs = {"period_start": {"help_text": "Any day of the period: kept as its first day."}}


class CommissionLineSerializer(serializers.ModelSerializer):
    opportunity_id = serializers.IntegerField(read_only=True, allow_null=True)
    clawback_of_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = CommissionLine
        fields = (
            "id",
            "kind",
            "opportunity_id",
            "description",
            "close_date",
            "amount",
            "commission",
            "clawback_of_id",
        )
        read_only_fields = fields


class CommissionStatementSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    plan_id = serializers.IntegerField(read_only=True)
    plan_name = serializers.CharField(source="plan.name", read_only=True)
    approved_by_id = serializers.IntegerField(read_only=True, allow_null=True)
    lines = CommissionLineSerializer(many=True, read_only=True)

    class Meta:
        model = CommissionStatement
        fields = (
            "id",
            "user_id",
            "username",
            "plan_id",
            "plan_name",
            "period",
            "period_start",
            "period_end",
            "status",
            "won_amount",
            "quota_target",
            "attainment",
            "total",
            "computed_at",
            "approved_at",
            "approved_by_id",
            "locked_at",
            "lines",
            *TIMESTAMPS,
        )
        read_only_fields = fields


class StatementComputeInputSerializer(serializers.Serializer):
    user_id = related_id(get_user_model().objects.all(), "user", required=True, allow_null=False)
    period = serializers.ChoiceField(choices=QuotaPeriod.choices, default=QuotaPeriod.QUARTER)
    date = serializers.DateField(help_text="Any day of the period.")


@extend_schema_view(**crud_schema("commission plan", CommissionPlanSerializer))
class CommissionPlanViewSet(ServiceModelViewSet):
    """Commission plans: a base rate on won amounts, tiers by quota attainment (marginal bands that may
    not overlap) and rates per product category. Everyone reads them; CRM Admins change them."""

    serializer_class = CommissionPlanSerializer
    selector = staticmethod(commission_plan_list)
    filter_backends: list = []

    def create_record(self, data):
        tiers, rates = data.pop("tiers", None), data.pop("category_rates", None)
        return services.commission_plan_create(
            user=self.request.user, data=data, tiers=tiers, category_rates=rates
        )

    def update_record(self, instance, data):
        tiers, rates = data.pop("tiers", None), data.pop("category_rates", None)
        return services.commission_plan_update(
            plan=instance, user=self.request.user, data=data, tiers=tiers, category_rates=rates
        )


def _assignment_list(*, user, filters=None):
    from crm.filters import filter_queryset

    if not user.is_authenticated or not user.is_active:
        return CommissionAssignment.objects.none()
    queryset = CommissionAssignment.objects.select_related("plan", "user")
    return filter_queryset(CommissionAssignmentFilter, queryset, filters)


@extend_schema_view(**crud_schema("commission assignment", CommissionAssignmentSerializer))
class CommissionAssignmentViewSet(ServiceModelViewSet):
    """Which plan pays a rep for a month, quarter or year (one per rep and period)."""

    serializer_class = CommissionAssignmentSerializer
    filterset_class = CommissionAssignmentFilter
    selector = staticmethod(_assignment_list)

    def create_record(self, data):
        return services.commission_assignment_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.commission_assignment_update(assignment=instance, user=self.request.user, data=data)


@extend_schema_view(
    list=extend_schema(summary="List commission statements", description="A rep's own; a manager's teams'."),
    retrieve=extend_schema(
        summary="A commission statement with its lines",
        responses={200: CommissionStatementSerializer, 404: NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete a draft statement", responses={204: None, 400: BAD_REQUEST, 404: NOT_FOUND}
    ),
)
class CommissionStatementViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Commission statements per rep and period, computed from won deals."""

    serializer_class = CommissionStatementSerializer
    filterset_class = CommissionStatementFilter
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        queryset = commission_statement_list(user=self.request.user)
        if self.action in ("list", "retrieve", "approve", "lock", "compute"):
            queryset = queryset.prefetch_related("lines")
        return queryset

    def perform_destroy(self, instance):
        services.commission_statement_delete(statement=instance, user=self.request.user)

    def _answer(self, statement, code=status.HTTP_200_OK) -> Response:
        statement = self.get_queryset().prefetch_related("lines").get(pk=statement.pk)
        return Response(CommissionStatementSerializer(statement).data, status=code)

    @extend_schema(
        summary="Compute a rep's statement",
        description="Computes (or recomputes, while it is a draft) the statement of `user_id` for the "
        "period holding `date`: a line per deal they won with a close date in it, converted into the "
        "company currency at the rate of its close date, the commission of the rep's plan for the period "
        "(tiers by quota attainment, category rates), and a clawback line per deal of an earlier approved "
        "statement reopened since. 400 when the rep has no plan for the period or the statement is "
        "approved. CRM Admins.",
        request=StatementComputeInputSerializer,
        responses={200: CommissionStatementSerializer, 400: BAD_REQUEST},
    )
    @action(
        detail=False, methods=["post"], permission_classes=[MANAGE], filter_backends=[], pagination_class=None
    )
    def compute(self, request: Request) -> Response:
        query = StatementComputeInputSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        statement = services.commission_statement_compute(
            user=request.user, rep=data["user"], period=data["period"], day=data["date"]
        )
        return self._answer(statement)

    @extend_schema(
        summary="Approve a draft statement",
        description="Draft → approved: its figures are frozen; a deal of it reopened later is clawed back "
        "in the rep's next statement.",
        request=None,
        responses={200: CommissionStatementSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], permission_classes=[MANAGE], filter_backends=[])
    def approve(self, request: Request, pk=None) -> Response:
        statement = services.commission_statement_approve(statement=self.get_object(), user=request.user)
        return self._answer(statement)

    @extend_schema(
        summary="Lock an approved statement",
        description="Approved → locked: paid by payroll.",
        request=None,
        responses={200: CommissionStatementSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], permission_classes=[MANAGE], filter_backends=[])
    def lock(self, request: Request, pk=None) -> Response:
        statement = services.commission_statement_lock(statement=self.get_object(), user=request.user)
        return self._answer(statement)

    @extend_schema(
        summary="Export statements for payroll (CSV or XLSX)",
        description="One row per statement you see, the list's filters applied: rep, plan, period, "
        "status, won amount, quota, attainment, deals, clawbacks and the commission total.",
        filters=True,
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=list(EXPORT_TYPES), default="csv")],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, EXPORT_TYPES["xlsx"]): OpenApiTypes.BINARY,
            400: BAD_REQUEST,
        },
    )
    @action(detail=False, methods=["get"], url_path="export", pagination_class=None)
    def export(self, request: Request) -> HttpResponse:
        fmt = request.query_params.get("format", "csv").lower()
        if fmt not in EXPORT_TYPES:
            return Response({"format": [f"Choose one of: {', '.join(EXPORT_TYPES)}."]}, status=400)
        statements = self.filter_queryset(commission_statement_list(user=request.user))
        content, content_type = commission_statements_export(statements=statements, fmt=fmt)
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="commission-statements.{fmt}"'
        return response

    def perform_content_negotiation(self, request, force=False):
        # On export, ?format= names the file format, not a DRF renderer; answer errors as JSON.
        if getattr(self, "action", None) == "export":
            renderer = self.get_renderers()[0]
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)
