"""Files and notes on any record: ``files/`` (multipart upload, download through a view that checks the
record's visibility) and ``notes/`` (Markdown, @mentions). Conventions: crm.api.viewsets."""

from django.db import transaction
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from activities import selectors, services
from activities.filters import AttachmentFilter, NoteFilter
from activities.models import Attachment, Note
from crm.api.viewsets import BAD_REQUEST, NOT_FOUND, ModelPermissions


class AttachmentSerializer(serializers.ModelSerializer):
    uploaded_by_id = serializers.IntegerField(read_only=True, allow_null=True)
    uploaded_by_username = serializers.CharField(source="uploaded_by.username", read_only=True, default=None)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = (
            "id",
            "record_type",
            "record_id",
            "name",
            "size",
            "mime_type",
            "uploaded_by_id",
            "uploaded_by_username",
            "download_url",
            "created_at",
        )
        read_only_fields = fields

    def get_download_url(self, obj) -> str:
        return f"/api/v1/crm/files/{obj.pk}/download/"


class AttachmentUploadSerializer(serializers.Serializer):
    record_type = serializers.CharField(help_text="lead, opportunity, account, contact or activity.")
    record_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    file = serializers.ListField(
        child=serializers.FileField(allow_empty_file=False),
        allow_empty=False,
        max_length=20,
        help_text="One or more files (repeat the part). Size and type limits: CRM_FILE_MAX_BYTES, "
        "CRM_FILE_ALLOWED_TYPES.",
    )


class NoteSerializer(serializers.ModelSerializer):
    author_id = serializers.IntegerField(read_only=True, allow_null=True)
    author_username = serializers.CharField(source="author.username", read_only=True, default=None)
    record_type = serializers.CharField(help_text="lead, opportunity, account, contact or activity.")
    record_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    body = serializers.CharField(max_length=100_000, help_text="Markdown; @username tells that user.")

    class Meta:
        model = Note
        fields = (
            "id",
            "record_type",
            "record_id",
            "body",
            "body_html",
            "author_id",
            "author_username",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "body_html", "author_id", "author_username", "created_at", "updated_at")


class NoteUpdateSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=100_000, help_text="Markdown; @username tells that user.")


RECORD_PARAMETERS = [
    OpenApiParameter("record_type", OpenApiTypes.STR, description="lead, opportunity, account, contact…"),
    OpenApiParameter("record_id", OpenApiTypes.INT, description="The record's id."),
]


def _multipart_list(request, name: str) -> list:
    files = request.FILES.getlist(name) if hasattr(request, "FILES") else []
    return files


@extend_schema_view(
    list=extend_schema(summary="List files on records I can see"),
    retrieve=extend_schema(
        summary="Get a file's details", responses={200: AttachmentSerializer, 404: NOT_FOUND}
    ),
    destroy=extend_schema(
        summary="Delete a file",
        description="Its uploader, or someone who may change its record.",
        responses={204: None, 403: OpenApiResponse(description="Not yours to delete."), 404: NOT_FOUND},
    ),
)
class AttachmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Files on leads, opportunities, accounts, contacts and activities: whoever sees the record."""

    serializer_class = AttachmentSerializer
    filterset_class = AttachmentFilter
    permission_classes = [ModelPermissions]
    parser_classes = [MultiPartParser, FormParser]  # the one body is an upload
    queryset = Attachment.objects.none()  # the schema's model; reads go through the selector

    def get_queryset(self):
        return selectors.attachment_visible_to(self.request.user).select_related("uploaded_by")

    @extend_schema(
        summary="Upload files to a record",
        description="Multipart: `record_type`, `record_id` and one or more `file` parts. All or nothing: "
        "a file over CRM_FILE_MAX_BYTES or of a type not in CRM_FILE_ALLOWED_TYPES is a 400 and nothing "
        "is kept. A record you cannot see is answered like an unknown id.",
        request={"multipart/form-data": AttachmentUploadSerializer},
        responses={201: AttachmentSerializer(many=True), 400: BAD_REQUEST},
    )
    def create(self, request, *args, **kwargs):
        data = {
            "record_type": request.data.get("record_type"),
            "record_id": request.data.get("record_id"),
            "file": _multipart_list(request, "file"),
        }
        params = AttachmentUploadSerializer(data=data)
        params.is_valid(raise_exception=True)
        with transaction.atomic():
            record = selectors.record_of(
                user=request.user,
                record_type=params.validated_data["record_type"],
                record_id=params.validated_data["record_id"],
            )
            created = services.attachments_create(
                user=request.user, record=record, uploads=params.validated_data["file"]
            )
        return Response(AttachmentSerializer(created, many=True).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.attachment_delete(user=self.request.user, attachment=instance)

    @extend_schema(
        summary="Download a file",
        description="Streams the file (Content-Disposition: attachment) to whoever sees its record; "
        "there is no public URL.",
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The file."),
            404: NOT_FOUND,
        },
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def download(self, request, pk=None):
        return attachment_response(self.get_object())


def attachment_response(attachment: Attachment) -> FileResponse:
    response = FileResponse(
        attachment.file.open("rb"),
        as_attachment=True,
        filename=attachment.name,
        content_type=attachment.mime_type,
    )
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@extend_schema_view(
    list=extend_schema(summary="List notes on records I can see"),
    retrieve=extend_schema(summary="Get a note", responses={200: NoteSerializer, 404: NOT_FOUND}),
    create=extend_schema(
        summary="Write a note on a record",
        description="Markdown, shown as sanitised HTML (`body_html`). Each `@username` who can see the "
        "record is notified (kind `mention`).",
        responses={201: NoteSerializer, 400: BAD_REQUEST},
    ),
    partial_update=extend_schema(
        summary="Edit a note",
        request=NoteUpdateSerializer,
        responses={200: NoteSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    ),
    destroy=extend_schema(summary="Delete a note", responses={204: None, 404: NOT_FOUND}),
)
class NoteViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Notes on leads, opportunities, accounts, contacts and activities: whoever sees the record."""

    serializer_class = NoteSerializer
    filterset_class = NoteFilter
    permission_classes = [ModelPermissions]
    queryset = Note.objects.none()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.note_visible_to(self.request.user).select_related("author")

    def get_serializer_class(self):
        if getattr(self, "action", None) == "partial_update":
            return NoteUpdateSerializer
        return NoteSerializer

    def perform_create(self, serializer):
        data = serializer.validated_data
        with transaction.atomic():
            record = selectors.record_of(
                user=self.request.user, record_type=data["record_type"], record_id=data["record_id"]
            )
            serializer.instance = services.note_create(
                user=self.request.user, record=record, body=data["body"]
            )

    def update(self, request, *args, **kwargs):
        note = self.get_object()
        params = NoteUpdateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        note = services.note_update(user=request.user, note=note, body=params.validated_data["body"])
        return Response(NoteSerializer(self.get_queryset().get(pk=note.pk)).data)

    def perform_destroy(self, instance):
        services.note_delete(user=self.request.user, note=instance)
