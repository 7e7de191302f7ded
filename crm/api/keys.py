"""The ``api-keys/`` endpoints and the keys' OpenAPI security scheme (the authentication class and the
throttle are in crm.api.authentication, which DRF loads with its settings)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from crm import services
from crm.api.serializers import NoInputSerializer
from crm.api.viewsets import BAD_REQUEST, NOT_FOUND, ModelPermissions
from crm.models import ApiKey, ApiKeyScope


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "crm.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <prefix>.<secret>`: a key made under api-keys/ (or the admin), "
            "acting as its user within its scopes.",
        }


# --- the api-keys/ endpoints ------------------------------------------------------------------------


class ApiKeySerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)
    scopes = serializers.DictField(
        child=serializers.ChoiceField(choices=ApiKeyScope.choices),
        allow_empty=False,
        help_text='Per resource of /api/v1/crm/ (or "*"): read or write, as {"leads": "read"}.',
    )
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = (
            "id",
            "name",
            "prefix",
            "user_id",
            "scopes",
            "expires_at",
            "rate",
            "is_active",
            "last_used_at",
            "revoked_at",
            "created_at",
        )
        read_only_fields = (
            "id",
            "prefix",
            "user_id",
            "is_active",
            "last_used_at",
            "revoked_at",
            "created_at",
        )


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The key, shown this once: keep it safe.")

    class Meta(ApiKeySerializer.Meta):
        fields = (*ApiKeySerializer.Meta.fields, "key")


@extend_schema_view(
    list=extend_schema(summary="List my API keys (a CRM Admin: everyone's)"),
    retrieve=extend_schema(summary="Get an API key", responses={200: ApiKeySerializer, 404: NOT_FOUND}),
    create=extend_schema(
        summary="Make an API key",
        description="The key acts as me, within its scopes; `key` is in this answer only.",
        responses={201: ApiKeyCreatedSerializer, 400: BAD_REQUEST},
    ),
    partial_update=extend_schema(
        summary="Change an API key's name, scopes, expiry or rate",
        responses={200: ApiKeySerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    ),
    destroy=extend_schema(summary="Revoke an API key", responses={204: None, 404: NOT_FOUND}),
)
class ApiKeyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Keys for integrations, apart from user tokens: named, scoped, expiring, revocable."""

    serializer_class = ApiKeySerializer
    permission_classes = [ModelPermissions]
    queryset = ApiKey.objects.none()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        from crm.selectors import user_sees_everything

        keys = ApiKey.objects.all()
        return keys if user_sees_everything(self.request.user) else keys.filter(user=self.request.user)

    def create(self, request, *args, **kwargs):
        serializer = ApiKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, raw = services.api_key_create(user=request.user, data=serializer.validated_data)
        key.key = raw
        return Response(ApiKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        key = self.get_object()
        serializer = ApiKeySerializer(key, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        key = services.api_key_update(user=request.user, key=key, data=serializer.validated_data)
        return Response(ApiKeySerializer(key).data)

    def perform_destroy(self, instance):
        services.api_key_revoke(user=self.request.user, key=instance)

    @extend_schema(
        summary="Revoke an API key (kept in the list, marked revoked)",
        request=NoInputSerializer,
        responses={200: ApiKeySerializer, 404: NOT_FOUND, 403: OpenApiResponse(description="Not yours.")},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        key = services.api_key_revoke(user=request.user, key=self.get_object())
        return Response(ApiKeySerializer(key).data)
