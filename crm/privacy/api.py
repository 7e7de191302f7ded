"""The privacy API (CRM Admins and superusers): ``privacy/`` (the log of requests), ``privacy/{id}/``,
``POST privacy/export/`` (everything held about an address, as one JSON file) and ``POST privacy/erase/``
(the person anonymised everywhere; answers which records, by kind)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from crm.api.viewsets import BAD_REQUEST, NOT_FOUND
from crm.models import PrivacyRequest
from crm.privacy import services


class ManagesPrivacy(BasePermission):
    message = services.PRIVACY_REFUSED

    def has_permission(self, request, view):
        return bool(
            request.user and request.user.is_authenticated and services.privacy_manageable_by(request.user)
        )


class PrivacyRequestSerializer(serializers.ModelSerializer):
    requested_by_id = serializers.IntegerField(read_only=True, allow_null=True)
    requested_by_username = serializers.CharField(
        source="requested_by.username", read_only=True, allow_null=True, default=None
    )
    records = serializers.JSONField(
        read_only=True, help_text='Ids by kind of record: {"leads": [3], "activities": [7, 9]}.'
    )
    counts = serializers.JSONField(
        read_only=True, help_text='Records by kind: {"leads": 1, "activities": 2}.'
    )

    class Meta:
        model = PrivacyRequest
        fields = (
            "id",
            "kind",
            "email",
            "email_hash",
            "requested_by_id",
            "requested_by_username",
            "created_at",
            "counts",
            "records",
        )
        read_only_fields = fields
        extra_kwargs = {
            "email": {"help_text": "Exports only (until an erasure of the address clears it)."},
            "email_hash": {"help_text": "A keyed hash of the address: whether an address was erased."},
        }


class PrivacyEmailSerializer(serializers.Serializer):
    email = serializers.EmailField(help_text="The person's address, as on their lead or contact.")


@extend_schema_view(
    list=extend_schema(
        summary="List privacy requests", description="Exports, erasures and retention runs, newest first."
    ),
    retrieve=extend_schema(
        summary="Retrieve a privacy request", responses={200: PrivacyRequestSerializer, 404: NOT_FOUND}
    ),
)
class PrivacyRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PrivacyRequestSerializer
    permission_classes = [ManagesPrivacy]
    queryset = PrivacyRequest.objects.select_related("requested_by").order_by("-created_at", "-id")

    @extend_schema(
        summary="Export everything held about a person",
        request=PrivacyEmailSerializer,
        responses={
            200: OpenApiResponse(
                response=OpenApiTypes.OBJECT,
                description='One JSON file: {"request_id", "email", "generated_at", '
                '"records": {kind: [rows]}, "history": {kind: [versions]}}.',
            ),
            400: BAD_REQUEST,
        },
    )
    @action(detail=False, methods=["post"])
    def export(self, request):
        data = PrivacyEmailSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        done, document = services.privacy_export(user=request.user, email=data.validated_data["email"])
        response = Response({"request_id": done.pk, **document})
        response["Content-Disposition"] = f'attachment; filename="{services.export_filename(done)}"'
        return response

    @extend_schema(
        summary="Erase a person everywhere",
        description="Anonymises the person's records, their audit trails and every free-text copy; answers "
        "which records were anonymised (ids by kind). An address nothing holds: 400, nothing changed.",
        request=PrivacyEmailSerializer,
        responses={201: PrivacyRequestSerializer, 400: BAD_REQUEST},
    )
    @action(detail=False, methods=["post"])
    def erase(self, request):
        data = PrivacyEmailSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        done = services.privacy_erase(user=request.user, email=data.validated_data["email"])
        return Response(PrivacyRequestSerializer(done).data, status=status.HTTP_201_CREATED)
