"""Viewsets for the crm resources: leads (with their board and transitions), accounts, contacts,
pipelines, stages, tags and lost reasons. Reads go through crm.selectors, writes through crm.services."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from crm import selectors, services
from crm.api.duplicates import DuplicatesViewSetMixin
from crm.api.import_export import ImportExportViewSetMixin
from crm.api.listing import ROLLUP_FILTERS, kanban_data, read_as_rows
from crm.api.merge import MergeInputSerializer, MergeViewSetMixin
from crm.api.next_actions import NextActionsViewSetMixin
from crm.api.serializers import (
    AccountSerializer,
    ContactSerializer,
    KanbanQuerySerializer,
    LeadKanbanSerializer,
    LeadListRows,
    LeadSerializer,
    LostReasonSerializer,
    MarkLostInputSerializer,
    MoveStageInputSerializer,
    PipelineSerializer,
    ReopenInputSerializer,
    StageSerializer,
    TagSerializer,
)
from crm.api.stage_history import StageHistoryViewSetMixin
from crm.api.viewsets import (
    BAD_REQUEST,
    CONFLICT,
    NOT_FOUND,
    HistoryViewSetMixin,
    ServiceModelViewSet,
    TransitionPermissions,
    crud_schema,
)
from crm.filters import (
    AccountFilter,
    ContactFilter,
    LeadFilter,
    LostReasonFilter,
    PipelineFilter,
    StageFilter,
    TagFilter,
)
from crm.models import LeadRollup


@extend_schema_view(**crud_schema("lead", LeadSerializer))
class LeadViewSet(
    HistoryViewSetMixin,
    ImportExportViewSetMixin,
    MergeViewSetMixin,
    DuplicatesViewSetMixin,
    StageHistoryViewSetMixin,
    NextActionsViewSetMixin,
    ServiceModelViewSet,
):
    """Leads: prospective business qualified through a pipeline, then converted or lost."""

    # Converting creates an opportunity, so its action (`convert`) belongs to sales, which registers
    # it here (crm.api.viewsets.register_viewset_action from SalesConfig.ready; sales.api.convert).
    record_label = "crm.lead"
    import_export_kind = "leads"
    duplicates_scope = staticmethod(selectors.lead_visible_to)
    serializer_class = LeadSerializer
    list_rows = LeadListRows
    list_rollup = LeadRollup
    list_rollup_filters = ROLLUP_FILTERS
    filterset_class = LeadFilter
    selector = staticmethod(selectors.lead_list)
    # Input serializers per action (their field names also name the fields in error responses).
    action_serializers = {
        "kanban": KanbanQuerySerializer,
        "move_stage": MoveStageInputSerializer,
        "mark_lost": MarkLostInputSerializer,
        "reopen": ReopenInputSerializer,
        "merge": MergeInputSerializer,
    }

    def create_record(self, data):
        return services.lead_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.lead_update(lead=instance, user=self.request.user, data=data)

    @extend_schema(
        summary="Leads board of a pipeline",
        description="The columns of one pipeline (`?pipeline=`, else the default pipeline) in stage order, "
        "each with its stage, the count and expected-revenue total of its leads and its first `limit` "
        "leads. The list filters, `search` and `ordering` apply.",
        parameters=[KanbanQuerySerializer],
        filters=True,
        responses={200: LeadKanbanSerializer, 400: BAD_REQUEST},
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def kanban(self, request: Request) -> Response:
        query = self.validated_input(KanbanQuerySerializer, data=request.query_params)
        # The cards are read as rows (LeadListRows): the JSON LeadKanbanSerializer gives, built faster.
        builder = LeadListRows(self.get_serializer_context())
        board = selectors.lead_kanban(
            user=request.user,
            pipeline=query.get("pipeline"),
            filters=request.query_params,
            limit=query["limit"],
            cards=read_as_rows(builder),
        )
        return Response(kanban_data(board, builder))

    @extend_schema(
        summary="Move a lead to another stage",
        description="Moves an open lead to a stage of its own pipeline and takes the stage's probability. "
        "Moving into the pipeline's won stage converts the lead with the default options of `convert`; "
        "into its lost stage marks it lost (without a reason). A converted or lost lead answers 409.",
        request=MoveStageInputSerializer,
        responses={200: LeadSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="move-stage", permission_classes=[TransitionPermissions])
    def move_stage(self, request: Request, pk=None) -> Response:
        lead = self.get_object()
        data = self.validated_input(MoveStageInputSerializer)
        return self.record_response(services.lead_move_stage(lead=lead, user=request.user, **data))

    @extend_schema(
        summary="Mark a lead lost",
        description="Closes an open lead as lost, in its pipeline's lost stage if it has one, with an "
        "optional active lost reason and a note. A converted or lost lead answers 409.",
        request=MarkLostInputSerializer,
        responses={200: LeadSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="mark-lost", permission_classes=[TransitionPermissions])
    def mark_lost(self, request: Request, pk=None) -> Response:
        lead = self.get_object()
        data = self.validated_input(MarkLostInputSerializer)
        return self.record_response(services.lead_mark_lost(lead=lead, user=request.user, **data))

    @extend_schema(
        summary="Reopen a lost lead",
        description="Returns a lost lead to an open stage of its pipeline: `stage_id` if given, else the "
        "last open stage it was in, else the first. It becomes `open` with the stage's probability and "
        "no lost reason. An open or converted lead answers 409.",
        request=ReopenInputSerializer,
        responses={200: LeadSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], permission_classes=[TransitionPermissions])
    def reopen(self, request: Request, pk=None) -> Response:
        lead = self.get_object()
        data = self.validated_input(ReopenInputSerializer)
        return self.record_response(services.lead_reopen(lead=lead, user=request.user, **data))


@extend_schema_view(**crud_schema("account", AccountSerializer))
class AccountViewSet(
    HistoryViewSetMixin,
    ImportExportViewSetMixin,
    MergeViewSetMixin,
    DuplicatesViewSetMixin,
    ServiceModelViewSet,
):
    """Accounts (companies), with their contact and opportunity counts and open and won value."""

    record_label = "crm.account"

    import_export_kind = "accounts"
    duplicates_scope = staticmethod(selectors.account_visible_to)
    action_serializers = {"merge": MergeInputSerializer}
    serializer_class = AccountSerializer
    filterset_class = AccountFilter
    selector = staticmethod(selectors.account_list)
    editable_selector = staticmethod(selectors.account_editable_by)

    def create_record(self, data):
        return services.account_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.account_update(account=instance, user=self.request.user, data=data)


@extend_schema_view(**crud_schema("contact", ContactSerializer))
class ContactViewSet(
    HistoryViewSetMixin,
    ImportExportViewSetMixin,
    MergeViewSetMixin,
    DuplicatesViewSetMixin,
    ServiceModelViewSet,
):
    """Contacts: the people who work for accounts. `search` matches name, email and phone."""

    record_label = "crm.contact"  # for the actions other modules register (consent: preferences)
    import_export_kind = "contacts"
    duplicates_scope = staticmethod(selectors.contact_visible_to)
    action_serializers = {"merge": MergeInputSerializer}
    serializer_class = ContactSerializer
    filterset_class = ContactFilter
    selector = staticmethod(selectors.contact_list)
    editable_selector = staticmethod(selectors.contact_editable_by)

    def create_record(self, data):
        return services.contact_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.contact_update(contact=instance, user=self.request.user, data=data)


@extend_schema_view(**crud_schema("pipeline", PipelineSerializer))
class PipelineViewSet(ServiceModelViewSet):
    """Pipelines, read with their stages. Exactly one pipeline is the default at any time."""

    serializer_class = PipelineSerializer
    filterset_class = PipelineFilter
    selector = staticmethod(selectors.pipeline_list)

    def create_record(self, data):
        return services.pipeline_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.pipeline_update(pipeline=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        services.pipeline_delete(pipeline=instance, user=self.request.user)


@extend_schema_view(**crud_schema("stage", StageSerializer))
class StageViewSet(ServiceModelViewSet):
    """Stages of a pipeline: order, probability, colour, and whether they mean won or lost."""

    serializer_class = StageSerializer
    filterset_class = StageFilter
    selector = staticmethod(selectors.stage_list)

    def create_record(self, data):
        return services.stage_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.stage_update(stage=instance, user=self.request.user, data=data)


@extend_schema_view(**crud_schema("tag", TagSerializer))
class TagViewSet(ServiceModelViewSet):
    """Tags that leads, opportunities, accounts and contacts carry (names unique, ignoring case)."""

    serializer_class = TagSerializer
    filterset_class = TagFilter
    selector = staticmethod(selectors.tag_list)

    def create_record(self, data):
        return services.tag_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.tag_update(tag=instance, user=self.request.user, data=data)


@extend_schema_view(**crud_schema("lost reason", LostReasonSerializer))
class LostReasonViewSet(ServiceModelViewSet):
    """Why deals and leads are lost; inactive reasons stay on old records but cannot be chosen."""

    serializer_class = LostReasonSerializer
    filterset_class = LostReasonFilter
    selector = staticmethod(selectors.lost_reason_list)

    def create_record(self, data):
        return services.lost_reason_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.lost_reason_update(lost_reason=instance, user=self.request.user, data=data)
