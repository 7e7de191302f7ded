"""``GET .../{id}/stage-history/`` for leads and opportunities: their moves between stages and times."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from crm import selectors
from crm.api.viewsets import NOT_FOUND


class StageChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    from_stage_id = serializers.IntegerField(allow_null=True, help_text="Empty for the stage it started in.")
    from_stage_name = serializers.CharField()
    to_stage_id = serializers.IntegerField(allow_null=True, help_text="Empty if the stage was deleted since.")
    to_stage_name = serializers.CharField()
    changed_by_id = serializers.IntegerField(allow_null=True)
    changed_by_username = serializers.CharField(source="changed_by.username", default=None, allow_null=True)
    changed_at = serializers.DateTimeField()
    duration_seconds = serializers.SerializerMethodField(
        help_text="How long the record stayed in to_stage; until now for an open record's current stage, "
        "null for the stage a closed record closed in."
    )

    def get_duration_seconds(self, entry) -> int | None:
        return None if entry.duration is None else int(entry.duration.total_seconds())


class StageHistorySerializer(serializers.Serializer):
    stage_id = serializers.IntegerField(source="record.stage_id")
    entered_stage_at = serializers.DateTimeField()
    time_in_stage_seconds = serializers.SerializerMethodField()
    days_open = serializers.IntegerField(help_text="Whole days from creation until closed, or until now.")
    results = StageChangeSerializer(many=True, source="entries")

    def get_time_in_stage_seconds(self, history) -> int:
        return int(history.time_in_stage.total_seconds())


class StageHistoryViewSetMixin:
    """Adds the stage-history action to a lead or opportunity viewset."""

    @extend_schema(
        summary="Stage history",
        description="Every stage the record entered, oldest first: from and to stage, who moved it and "
        "when, and how long it stayed; with the time in its current stage and its days open.",
        request=None,
        responses={200: StageHistorySerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="stage-history", pagination_class=None, filter_backends=[])
    def stage_history(self, request: Request, pk=None) -> Response:
        record = self.get_object()
        history = selectors.stage_history(user=request.user, record=record)
        return Response(StageHistorySerializer(history, context=self.get_serializer_context()).data)
