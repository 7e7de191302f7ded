"""The automation API: ``automations/`` (rules), ``automations/{id}/runs/``, ``…/test/`` (preview on
a record), ``…/run/`` (manual run), ``…/inbound/?token=`` (the rule's webhook), and
``automations/runs/`` (the run log, ``?status=failed``). CRM Admins and superusers only, but for the
inbound webhook, whose secret token is its credential."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response

from crm.api.serializers import label, related_id
from crm.api.viewsets import BAD_REQUEST, NOT_FOUND, ServiceModelViewSet, crud_schema
from crm.automation import engine, services
from crm.automation.registry import automatable_models
from crm.models import AutomationRule, AutomationRun, RunStatus, TriggerKind

INBOUND_PATH = "/api/v1/crm/automations/{id}/inbound/?token={token}"


class ManagesAutomations(BasePermission):
    message = services.MANAGE_REFUSED

    def has_permission(self, request, view):
        return bool(
            request.user
            and request.user.is_authenticated
            and services.automations_manageable_by(request.user)
        )


class TriggerSerializer(serializers.Serializer):
    """Keys by trigger kind (see the rule's ``trigger_kind``); absent keys are left out."""

    events = serializers.ListField(
        child=serializers.CharField(max_length=32),
        required=False,
        help_text="event: created, updated, deleted, stage_changed, won, lost, converted, reopened.",
    )
    field = serializers.CharField(
        required=False, max_length=64, help_text="event: fires only when it changed."
    )
    # "from"/"to" are Python keywords: declared below under their JSON names.
    date_field = serializers.CharField(
        required=False, max_length=64, help_text="time: close_date, due_date..."
    )
    days = serializers.IntegerField(required=False, min_value=0, max_value=3650)
    when = serializers.ChoiceField(choices=["before", "after"], required=False)
    no_activity_days = serializers.IntegerField(required=False, min_value=0, max_value=3650)
    cron = serializers.CharField(required=False, max_length=120, help_text="schedule: `0 8 * * 1` (UTC).")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.JSONField(required=False, help_text="event: the value it changed from.")
        fields["to"] = serializers.JSONField(required=False, help_text="event: the value it changed to.")
        return fields

    def to_representation(self, instance):
        return dict(instance or {})


class ActionSerializer(serializers.Serializer):
    kind = serializers.CharField(
        max_length=40,
        help_text="update_fields, assign_owner, add_tags, remove_tags, create_activity, notify, "
        "call_webhook, create_opportunity, move_stage, stop (the admin's rule form lists them by model).",
    )
    params = serializers.DictField(required=False, default=dict, help_text="The action's parameters.")


class AutomationRuleSerializer(serializers.ModelSerializer):
    model = serializers.CharField(
        max_length=64, help_text="crm.Lead, crm.Account, crm.Contact, sales.Opportunity, activities.Activity."
    )
    trigger_kind = serializers.ChoiceField(choices=TriggerKind.choices)
    trigger = TriggerSerializer(required=False)
    conditions = serializers.JSONField(
        required=False,
        help_text='{"all": [{"field": "account__industry", "op": "eq", "value": "technology"}, '
        '{"any": [...]}]}; ops: eq ne lt lte gt gte in not_in contains not_contains is_empty is_not_empty.',
    )
    actions = ActionSerializer(many=True, required=False)
    owner_id = related_id(
        get_user_model().objects.filter(is_active=True),
        "owner",
        help_text="Actions act as this user; null: the system.",
    )
    owner_username = label("owner.username")
    webhook_url = serializers.SerializerMethodField(help_text='webhook rules: POST {"record_id"} here.')

    class Meta:
        model = AutomationRule
        fields = (
            "id",
            "name",
            "description",
            "model",
            "trigger_kind",
            "trigger",
            "conditions",
            "actions",
            "on_error",
            "order",
            "is_active",
            "owner_id",
            "owner_username",
            "webhook_url",
            "last_scanned_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "last_scanned_at", "created_at", "updated_at")

    def get_webhook_url(self, obj) -> str | None:
        if obj.trigger_kind != TriggerKind.WEBHOOK or not obj.webhook_token:
            return None
        return INBOUND_PATH.format(id=obj.pk, token=obj.webhook_token)

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        for name in ("trigger", "conditions", "actions"):
            if name in values and _has_nul(values[name]):
                raise serializers.ValidationError({name: ["Null characters are not allowed."]})
        if "actions" in values:
            values["actions"] = [dict(a) for a in values["actions"]]
        if "trigger" in values:
            values["trigger"] = dict(values["trigger"])
        return values


def _has_nul(value) -> bool:
    """PostgreSQL's JSON cannot hold U+0000: refuse it as bad input instead of failing on save."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class RunSerializer(serializers.ModelSerializer):
    rule_id = serializers.IntegerField(read_only=True)
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    outcomes = serializers.ListField(
        child=serializers.DictField(),
        read_only=True,
        help_text="Per action: index, kind, status (ok, failed, stopped, not_run, pending), detail, error, "
        "attempts, duration_ms.",
    )

    class Meta:
        model = AutomationRun
        fields = (
            "id",
            "rule_id",
            "rule_name",
            "model",
            "record_id",
            "trigger",
            "event_id",
            "chain",
            "status",
            "outcomes",
            "attempts",
            "next_attempt_at",
            "error",
            "reason",
            "created_at",
            "started_at",
            "finished_at",
            "duration_ms",
        )
        read_only_fields = fields


class RunPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = RunSerializer(many=True)


class TestInputSerializer(serializers.Serializer):
    record_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class ConditionResultSerializer(serializers.Serializer):
    condition = serializers.CharField()
    field = serializers.CharField()
    op = serializers.CharField()
    matches = serializers.BooleanField()


class ActionPreviewSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    kind = serializers.CharField()
    would = serializers.CharField()


class PreviewSerializer(serializers.Serializer):
    rule_id = serializers.IntegerField()
    record_id = serializers.IntegerField()
    matches = serializers.BooleanField()
    conditions = ConditionResultSerializer(many=True)
    actions = ActionPreviewSerializer(many=True)


class RunInputSerializer(serializers.Serializer):
    record_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), allow_empty=False, max_length=1000
    )


class RunResultSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    run_ids = serializers.ListField(child=serializers.IntegerField())


class InboundResultSerializer(serializers.Serializer):
    matched = serializers.BooleanField(help_text="False when the record does not meet the conditions.")
    run_id = serializers.IntegerField(allow_null=True)


def rule_list(*, user, filters=None):
    return AutomationRule.objects.select_related("owner").order_by("order", "id")


def run_list(*, user, filters=None):
    return AutomationRun.objects.select_related("rule").order_by("-id")


STATUS_PARAM = OpenApiParameter("status", str, enum=RunStatus.values, description="Only runs in this status.")


def _record_of(rule: AutomationRule, record_id: int):
    entry = automatable_models().get(rule.model)
    if entry is None or not entry.model._default_manager.filter(pk=record_id).exists():
        raise ValidationError({"record_id": f"No {entry.noun if entry else 'record'} with id {record_id}."})
    return record_id


@extend_schema_view(**crud_schema("automation rule", AutomationRuleSerializer))
class AutomationRuleViewSet(ServiceModelViewSet):
    """Automation rules: a trigger, conditions and actions on a kind of record."""

    permission_classes = [ManagesAutomations]
    serializer_class = AutomationRuleSerializer
    selector = staticmethod(rule_list)

    def create_record(self, data):
        return services.automation_rule_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.automation_rule_update(rule=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        services.automation_rule_delete(rule=instance, user=self.request.user)

    @extend_schema(
        operation_id="automations_rule_runs_list",
        summary="Runs of an automation rule",
        description="Newest first: trigger, record, each action's outcome, timing, error.",
        parameters=[STATUS_PARAM],
        responses={200: RunPageSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="runs")
    def runs(self, request, pk=None):
        rule = self.get_object()
        runs = run_list(user=request.user).filter(rule=rule)
        if request.query_params.get("status") in RunStatus.values:
            runs = runs.filter(status=request.query_params["status"])
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(RunSerializer(page, many=True).data)

    @extend_schema(
        summary="Test an automation rule on a record",
        description="Which conditions hold for the record and what each action would do. Changes nothing.",
        request=TestInputSerializer,
        responses={200: PreviewSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="test")
    def test(self, request, pk=None):
        rule = self.get_object()
        body = TestInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        record_id = _record_of(rule, body.validated_data["record_id"])
        return Response(PreviewSerializer(engine.rule_preview(rule=rule, record_id=record_id)).data)

    @extend_schema(
        summary="Run an automation rule on records now",
        description="The manual trigger: a run for each record that meets the conditions (202).",
        request=RunInputSerializer,
        responses={202: RunResultSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="run")
    def run(self, request, pk=None):
        rule = self.get_object()
        body = RunInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        runs = services.automation_rule_run(
            rule=rule, record_ids=body.validated_data["record_ids"], user=request.user
        )
        return Response(
            {"queued": len(runs), "run_ids": [r.pk for r in runs]}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        summary="Inbound webhook of an automation rule",
        description="For rules triggered by a webhook: the secret `token` of the rule's `webhook_url` is the "
        'credential (no login). Body `{"record_id"}`; an optional `webhook-id` header makes a resend run '
        "once. 202; 404 for an unknown rule or token.",
        parameters=[OpenApiParameter("token", OpenApiTypes.STR, required=True)],
        request=TestInputSerializer,
        responses={202: InboundResultSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="inbound",
        permission_classes=[AllowAny],
        authentication_classes=[],
    )
    def inbound(self, request, pk=None):
        token = str(request.query_params.get("token", ""))
        # A token is URL-safe text of at most 64 characters, an id fits a bigint: anything else (a NUL
        # byte, an id out of range) is a wrong URL, answered before the database sees it.
        if not token or len(token) > 64 or not token.isascii() or not token.isprintable():
            raise NotFound("No such rule, or a wrong token.")
        if not str(pk).isdigit() or int(pk) > 2**63 - 1:
            raise NotFound("No such rule, or a wrong token.")
        rule = AutomationRule.objects.filter(pk=pk, webhook_token=token).first()
        if rule is None:
            raise NotFound("No such rule, or a wrong token.")
        body = TestInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        record_id = _record_of(rule, body.validated_data["record_id"])
        try:
            run = services.automation_inbound(
                token=token,
                record_id=record_id,
                delivery_id="".join(c for c in str(request.headers.get("webhook-id", "")) if c.isprintable())[
                    :100
                ],
            )
        except AutomationRule.DoesNotExist:
            raise NotFound("No such rule, or a wrong token.") from None
        return Response(
            {"matched": run is not None, "run_id": run.pk if run else None}, status=status.HTTP_202_ACCEPTED
        )


class AutomationRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The run log of every rule, newest first (``?status=failed`` for the failures, ``?rule=``)."""

    permission_classes = [ManagesAutomations]
    serializer_class = RunSerializer

    def get_queryset(self):
        runs = run_list(user=self.request.user)
        params = self.request.query_params
        if params.get("status") in RunStatus.values:
            runs = runs.filter(status=params["status"])
        if str(params.get("rule", "")).isdigit() and len(params["rule"]) < 19:
            runs = runs.filter(rule_id=int(params["rule"]))
        return runs

    @extend_schema(
        summary="List automation runs",
        parameters=[STATUS_PARAM, OpenApiParameter("rule", int, description="Only this rule's runs.")],
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="Get an automation run", responses={200: RunSerializer, 404: NOT_FOUND})
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)
