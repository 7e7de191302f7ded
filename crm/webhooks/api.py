"""The webhooks API: ``webhooks/`` (subscriptions), ``webhooks/{id}/deliveries/`` (their log) and
``webhooks/deliveries/{id}/`` with ``…/redeliver/``. CRM Admins and superusers only."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from crm.api.serializers import NoInputSerializer, label, related_id
from crm.api.viewsets import BAD_REQUEST, NOT_FOUND, ServiceModelViewSet, crud_schema
from crm.models import Pipeline, WebhookAttempt, WebhookDelivery, WebhookSubscription
from crm.webhooks import services


class ManagesWebhooks(BasePermission):
    message = services.MANAGE_REFUSED

    def has_permission(self, request, view):
        return bool(
            request.user and request.user.is_authenticated and services.webhooks_manageable_by(request.user)
        )


class WebhookSubscriptionSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64),
        allow_empty=False,
        help_text="Event types to send; `*` is a wildcard: `opportunity.*`, `lead.stage_changed`, `*`.",
    )
    pipeline_id = related_id(
        Pipeline.objects.all(),
        "pipeline",
        help_text="Only events of leads and opportunities in this pipeline.",
    )
    owner_id = related_id(
        get_user_model().objects.filter(is_active=True),
        "owner",
        help_text="Who is told when it is disabled. Omitted on create: the requesting user.",
    )
    owner_username = label("owner.username")
    secret = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="`whsec_` + base64 (at least 24 bytes). Omitted or empty on create: generated.",
    )

    class Meta:
        model = WebhookSubscription
        fields = (
            "id",
            "name",
            "target_url",
            "event_types",
            "pipeline_id",
            "secret",
            "is_active",
            "owner_id",
            "owner_username",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        )
        read_only_fields = (
            "id",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        )
        validators: list = []


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ("attempted_at", "status_code", "duration_ms", "response_excerpt", "error")
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    subscription_id = serializers.IntegerField(read_only=True)
    event_id = serializers.UUIDField(source="event.event_id", read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = (
            "id",
            "subscription_id",
            "event_id",
            "event_type",
            "webhook_id",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_duration_ms",
            "last_response",
            "last_error",
            "delivered_at",
            "created_at",
            "attempt_log",
        )
        read_only_fields = fields


class WebhookDeliveryPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = WebhookDeliverySerializer(many=True)


def subscription_list(*, user, filters=None):
    return WebhookSubscription.objects.select_related("owner").order_by("id")


def delivery_list(*, user, filters=None):
    return WebhookDelivery.objects.select_related("event").prefetch_related("attempt_log").order_by("-id")


@extend_schema_view(**crud_schema("webhook subscription", WebhookSubscriptionSerializer))
class WebhookSubscriptionViewSet(ServiceModelViewSet):
    """Webhook subscriptions: events sent to a URL, signed as Standard Webhooks says."""

    permission_classes = [ManagesWebhooks]
    serializer_class = WebhookSubscriptionSerializer
    selector = staticmethod(subscription_list)

    def create_record(self, data):
        return services.webhook_subscription_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.webhook_subscription_update(subscription=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        services.webhook_subscription_delete(subscription=instance, user=self.request.user)

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        summary="Deliveries of a webhook subscription",
        description="Newest first, each with its attempts: status code, duration, first bytes of the answer.",
        responses={200: WebhookDeliveryPageSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="deliveries")
    def deliveries(self, request, pk=None):
        subscription = self.get_object()
        page = self.paginate_queryset(delivery_list(user=request.user).filter(subscription=subscription))
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)


class WebhookDeliveryViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One webhook delivery, and sending it again."""

    permission_classes = [ManagesWebhooks]
    serializer_class = WebhookDeliverySerializer

    def get_queryset(self):
        return delivery_list(user=self.request.user)

    @extend_schema(
        summary="Get a webhook delivery", responses={200: WebhookDeliverySerializer, 404: NOT_FOUND}
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Redeliver a webhook delivery",
        description="Sends it again now with the same `webhook-id` (receivers deduplicate by it); 202.",
        request=NoInputSerializer,
        responses={202: WebhookDeliverySerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="redeliver")
    def redeliver(self, request, pk=None):
        delivery = services.webhook_delivery_redeliver(delivery=self.get_object(), user=request.user)
        return Response(
            WebhookDeliverySerializer(self.get_queryset().get(pk=delivery.pk)).data,
            status=status.HTTP_202_ACCEPTED,
        )
