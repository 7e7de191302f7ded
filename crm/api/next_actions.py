"""``GET leads/{id}/next-actions/``, ``GET opportunities/{id}/next-actions/`` (a record's ranked actions)
and ``GET next-actions/`` (the most pressing actions on the records the user owns)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from crm.api.viewsets import BAD_REQUEST, NOT_FOUND, ObjectSchema
from crm.next_actions import MINE_MAX, next_actions_mine, next_actions_of


class NextActionSerializer(serializers.Serializer):
    rule = serializers.CharField(help_text="The rule that found it (activity_overdue, quote_unanswered, …).")
    priority = serializers.IntegerField(help_text="The rule's weight: higher is more pressing.")
    reason = serializers.CharField(help_text="Why, in words: “No activity for 16 days in Proposal”.")
    label = serializers.CharField(help_text="What to do: “Log a call”.")
    kind = serializers.CharField(
        help_text="call, meeting, task, open, edit, assign, send_quote, revise_quote or mark_won."
    )
    url = serializers.CharField(help_text="The back-office page that does it, one click away.")
    target_type = serializers.CharField(
        help_text="What it is about besides the record: activity, quote, or empty."
    )
    target_id = serializers.IntegerField(allow_null=True)


class RecordNextActionsSerializer(serializers.Serializer):
    record_type = serializers.CharField()
    record_id = serializers.IntegerField()
    results = NextActionSerializer(many=True)


class MineItemSerializer(serializers.Serializer):
    record_type = serializers.CharField(help_text="lead or opportunity")
    record_id = serializers.IntegerField(source="record.pk")
    record_name = serializers.CharField(source="record.name")
    record_url = serializers.CharField()
    actions = NextActionSerializer(many=True, help_text="The record's actions, the most pressing first.")


class MineQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=MINE_MAX, default=10)


class MineSerializer(serializers.Serializer):
    results = MineItemSerializer(many=True)


class NextActionsViewSetMixin:
    """Adds ``next-actions`` to a lead or opportunity viewset: the record's actions, ranked."""

    @extend_schema(
        summary="Next best actions",
        description="What to do next on this open record and why, the most pressing first, each with the "
        "back-office page that does it. A closed record has none.",
        request=None,
        responses={200: RecordNextActionsSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="next-actions", pagination_class=None, filter_backends=[])
    def next_actions(self, request: Request, pk=None) -> Response:
        record = self.get_object()
        actions = next_actions_of(user=request.user, record=record)
        data = {"record_type": record._meta.model_name, "record_id": record.pk, "results": actions}
        return Response(RecordNextActionsSerializer(data).data)


class NextActionsMineViewSet(viewsets.ViewSet):
    """My next actions: the open leads and deals I own whose actions are the most pressing."""

    permission_classes = [IsAuthenticated]
    schema = ObjectSchema()

    @extend_schema(
        summary="My next actions",
        description="The open leads and deals you own (of the kinds you may read) with something to do, "
        "the most pressing first (`limit`, default 10, at most 50), each with its ranked actions.",
        parameters=[MineQuerySerializer],
        responses={200: MineSerializer, 400: BAD_REQUEST},
    )
    def list(self, request: Request) -> Response:
        query = MineQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = next_actions_mine(user=request.user, limit=query.validated_data["limit"])
        return Response(MineSerializer({"results": found}).data)
