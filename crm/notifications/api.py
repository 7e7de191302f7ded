"""The notifications API: ``notifications/`` (my own, newest first; mark read, mark all read) and
``notification-preferences/`` (how I hear of each kind, and my time zone). Any signed-in user."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from crm.api.serializers import NoInputSerializer
from crm.api.viewsets import BAD_REQUEST, NOT_FOUND
from crm.models import Notification, NotificationChannel, NotificationKind, UserProfile
from crm.notifications import selectors, services
from crm.notifications.selectors import notification_channels


class NotificationSerializer(serializers.ModelSerializer):
    is_read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = (
            "id",
            "kind",
            "title",
            "body",
            "url",
            "record_type",
            "record_id",
            "event_id",
            "is_read",
            "read_at",
            "emailed_at",
            "created_at",
        )
        read_only_fields = fields

    def get_is_read(self, obj) -> bool:
        return obj.read_at is not None


class MarkedSerializer(serializers.Serializer):
    marked = serializers.IntegerField(help_text="How many notifications were unread and are now read.")


class NotificationPreferenceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=NotificationKind.choices, read_only=True)
    label = serializers.CharField(read_only=True)
    channel = serializers.ChoiceField(choices=NotificationChannel.choices)


class TimeZoneSerializer(serializers.ModelSerializer):
    class Meta:
        model = UserProfile
        fields = ("time_zone",)
        extra_kwargs = {"time_zone": {"required": True, "allow_blank": True}}


UNREAD = OpenApiParameter(
    "unread", OpenApiTypes.BOOL, description="Only the unread ones (`true`). Pages by `?cursor=` too."
)


@extend_schema_view(
    list=extend_schema(summary="List my notifications", parameters=[UNREAD]),
    retrieve=extend_schema(
        summary="Get one of my notifications", responses={200: NotificationSerializer, 404: NOT_FOUND}
    ),
)
class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The requesting user's own in-app notifications."""

    permission_classes = [IsAuthenticated]
    serializer_class = NotificationSerializer
    queryset = Notification.objects.none()  # for the schema: get_queryset() reads the user's own

    def get_queryset(self):
        unread = self.request.query_params.get("unread", "").lower() in ("1", "true", "yes")
        return selectors.notification_list(user=self.request.user, filters={"unread": unread})

    @extend_schema(
        summary="Mark a notification read",
        request=NoInputSerializer,
        responses={200: NotificationSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="read")
    def read(self, request, pk=None):
        notification = self.get_object()
        services.notification_mark_read(user=request.user, notifications=[notification])
        notification.refresh_from_db()
        return Response(NotificationSerializer(notification).data)

    @extend_schema(
        summary="Mark all my notifications read", request=NoInputSerializer, responses={200: MarkedSerializer}
    )
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request):
        return Response({"marked": services.notification_mark_all_read(user=request.user)})


def _preferences(user) -> list[dict]:
    labels = dict(NotificationKind.choices)
    return [
        {"kind": kind, "label": labels[kind], "channel": channel}
        for kind, channel in notification_channels(user=user).items()
    ]


class NotificationPreferenceViewSet(viewsets.GenericViewSet):
    """How the requesting user hears of each kind of notification: in_app, email, both or none."""

    permission_classes = [IsAuthenticated]
    serializer_class = NotificationPreferenceSerializer
    pagination_class = None
    lookup_field = "kind"
    lookup_value_regex = "[a-z_]+"

    def get_queryset(self):
        return Notification.objects.none()  # the rows are per kind, defaults included: see _preferences

    @extend_schema(
        summary="List my notification preferences",
        responses={200: NotificationPreferenceSerializer(many=True)},
    )
    def list(self, request):
        return Response(_preferences(request.user))

    @extend_schema(
        summary="Choose how I hear of one kind",
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=NotificationKind.values)
        ],
        responses={200: NotificationPreferenceSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def update(self, request, kind=None):
        if kind not in NotificationKind.values:
            return Response({"detail": "No such kind of notification."}, status=404)
        serializer = NotificationPreferenceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.notification_preference_set(
            user=request.user, kind=kind, channel=serializer.validated_data["channel"]
        )
        return Response(next(p for p in _preferences(request.user) if p["kind"] == kind))

    @extend_schema(
        methods=["GET"],
        summary="My time zone (the daily digest comes at 08:00 in it)",
        responses={200: TimeZoneSerializer},
    )
    @extend_schema(
        methods=["PUT"],
        summary="Set my time zone",
        request=TimeZoneSerializer,
        responses={200: TimeZoneSerializer, 400: BAD_REQUEST},
    )
    @action(detail=False, methods=["get", "put"], url_path="time-zone", serializer_class=TimeZoneSerializer)
    def time_zone(self, request):
        if request.method == "PUT":
            serializer = TimeZoneSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            services.user_time_zone_set(user=request.user, time_zone=serializer.validated_data["time_zone"])
        profile = UserProfile.objects.filter(user=request.user).first() or UserProfile(user=request.user)
        return Response(TimeZoneSerializer(profile).data)
