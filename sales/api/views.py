"""Viewsets for opportunities (with their board, transitions and forecast) and the dashboard.
Reads go through sales.selectors, writes through sales.services."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from crm.api.listing import ROLLUP_FILTERS, kanban_data, read_as_rows
from crm.api.next_actions import NextActionsViewSetMixin
from crm.api.serializers import (
    KanbanQuerySerializer,
    MarkLostInputSerializer,
    MoveStageInputSerializer,
    NoInputSerializer,
    ReopenInputSerializer,
)
from crm.api.stage_history import StageHistoryViewSetMixin
from crm.api.viewsets import (
    BAD_REQUEST,
    CONFLICT,
    NOT_FOUND,
    HistoryViewSetMixin,
    ObjectSchema,
    ServiceModelViewSet,
    TransitionPermissions,
    crud_schema,
    requires,
)
from sales import selectors, services
from sales.api.quotes import OpportunityLinesViewSetMixin
from sales.api.serializers import (
    DashboardQuerySerializer,
    DashboardSerializer,
    ForecastQuerySerializer,
    ForecastSerializer,
    OpportunityKanbanSerializer,
    OpportunityListRows,
    OpportunitySerializer,
)
from sales.filters import OpportunityFilter
from sales.models_rollups import OpportunityRollup


@extend_schema_view(**crud_schema("opportunity", OpportunitySerializer))
class OpportunityViewSet(
    OpportunityLinesViewSetMixin,
    HistoryViewSetMixin,
    StageHistoryViewSetMixin,
    NextActionsViewSetMixin,
    ServiceModelViewSet,
):
    """Opportunities: deals with an amount and a close date, moving through a pipeline to won or lost."""

    serializer_class = OpportunitySerializer
    filterset_class = OpportunityFilter
    selector = staticmethod(selectors.opportunity_list)
    list_rows = OpportunityListRows
    list_rollup = OpportunityRollup
    list_rollup_filters = ROLLUP_FILTERS
    # Input serializers per action (their field names also name the fields in error responses).
    action_serializers = {
        "kanban": KanbanQuerySerializer,
        "forecast": ForecastQuerySerializer,
        "move_stage": MoveStageInputSerializer,
        "mark_won": NoInputSerializer,
        "mark_lost": MarkLostInputSerializer,
        "reopen": ReopenInputSerializer,
    }

    def create_record(self, data):
        return services.opportunity_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.opportunity_update(opportunity=instance, user=self.request.user, data=data)

    @extend_schema(
        summary="Opportunities board of a pipeline",
        description="The columns of one pipeline (`?pipeline=`, else the default pipeline) in stage order, "
        "each with its stage, the count and amount total of its opportunities and its first `limit` "
        "opportunities. The list filters, `search` and `ordering` apply.",
        parameters=[KanbanQuerySerializer],
        filters=True,
        responses={200: OpportunityKanbanSerializer, 400: BAD_REQUEST},
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def kanban(self, request: Request) -> Response:
        query = self.validated_input(KanbanQuerySerializer, data=request.query_params)
        # The cards are read as rows (OpportunityListRows): the JSON of OpportunityKanbanSerializer,
        # built faster.
        builder = OpportunityListRows(self.get_serializer_context())
        board = selectors.opportunity_kanban(
            user=request.user,
            pipeline=query.get("pipeline"),
            filters=request.query_params,
            limit=query["limit"],
            cards=read_as_rows(builder),
        )
        return Response(kanban_data(board, builder))

    @extend_schema(
        summary="Sales forecast",
        description="Open pipeline value, probability-weighted value (amount × probability / 100 over open "
        "opportunities) and won value, with counts, grouped by close month (or quarter, stage, owner). "
        "The date range filters close dates: open opportunities without a close date are counted only "
        "when no range is given, in the group with key null; won figures count opportunities won with a "
        "close date in the range.",
        parameters=[ForecastQuerySerializer],
        filters=False,
        responses={200: ForecastSerializer, 400: BAD_REQUEST},
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def forecast(self, request: Request) -> Response:
        query = self.validated_input(ForecastQuerySerializer, data=request.query_params)
        return Response(ForecastSerializer(selectors.forecast(user=request.user, **query)).data)

    @extend_schema(
        summary="Move an opportunity to another stage",
        description="Moves an open opportunity to a stage of its own pipeline and takes the stage's "
        "probability. The pipeline's won stage wins it (as mark-won), its lost stage loses it (as "
        "mark-lost, without a reason). A won or lost opportunity answers 409.",
        request=MoveStageInputSerializer,
        responses={200: OpportunitySerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="move-stage", permission_classes=[TransitionPermissions])
    def move_stage(self, request: Request, pk=None) -> Response:
        opportunity = self.get_object()
        data = self.validated_input(MoveStageInputSerializer)
        return self.record_response(
            services.opportunity_move_stage(opportunity=opportunity, user=request.user, **data)
        )

    @extend_schema(
        summary="Mark an opportunity won",
        description="No body. Moves an open opportunity to its pipeline's won stage with probability 100 "
        "and `closed_at` now (and today as close date if it had none). 409 if it is already won or lost, "
        "or if the pipeline has no won stage.",
        request=None,
        responses={200: OpportunitySerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="mark-won", permission_classes=[TransitionPermissions])
    def mark_won(self, request: Request, pk=None) -> Response:
        opportunity = self.get_object()
        return self.record_response(services.opportunity_mark_won(opportunity=opportunity, user=request.user))

    @extend_schema(
        summary="Mark an opportunity lost",
        description="Closes an open opportunity as lost, in its pipeline's lost stage if it has one, with "
        "probability 0, `closed_at` now, an optional active lost reason and a note. A won or lost "
        "opportunity answers 409.",
        request=MarkLostInputSerializer,
        responses={200: OpportunitySerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="mark-lost", permission_classes=[TransitionPermissions])
    def mark_lost(self, request: Request, pk=None) -> Response:
        opportunity = self.get_object()
        data = self.validated_input(MarkLostInputSerializer)
        return self.record_response(
            services.opportunity_mark_lost(opportunity=opportunity, user=request.user, **data)
        )

    @extend_schema(
        summary="Reopen a won or lost opportunity",
        description="Returns a won or lost opportunity to an open stage of its pipeline: `stage_id` if "
        "given, else the last open stage it was in, else the first. It becomes `open` with the stage's "
        "probability, no `closed_at` and no lost reason. An open opportunity answers 409.",
        request=ReopenInputSerializer,
        responses={200: OpportunitySerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], permission_classes=[TransitionPermissions])
    def reopen(self, request: Request, pk=None) -> Response:
        opportunity = self.get_object()
        data = self.validated_input(ReopenInputSerializer)
        return self.record_response(
            services.opportunity_reopen(opportunity=opportunity, user=request.user, **data)
        )


class DashboardViewSet(viewsets.ViewSet):
    """The back-office dashboard's KPIs."""

    permission_classes = [requires("crm.view_lead", "sales.view_opportunity")]
    schema = ObjectSchema()

    @extend_schema(
        summary="Dashboard KPIs",
        description="Total leads, open and won opportunities (count and value), the lead conversion rate "
        "(converted leads / all leads, in percent) and the distribution of opportunities over the stages. "
        "`?pipeline=` narrows every figure to one pipeline. Needs view_lead and view_opportunity.",
        parameters=[DashboardQuerySerializer],
        responses={200: DashboardSerializer, 400: BAD_REQUEST},
    )
    def list(self, request: Request) -> Response:
        query = DashboardQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(
            DashboardSerializer(selectors.dashboard(user=request.user, **query.validated_data)).data
        )
