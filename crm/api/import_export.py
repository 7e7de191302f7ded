"""Bulk import and export actions for a ModelViewSet, over the engine in crm.importing.

    class LeadViewSet(ImportExportViewSetMixin, viewsets.ModelViewSet):
        import_export_kind = "leads"

adds ``POST leads/import/`` (multipart ``file``, ``dry_run``) and ``GET leads/export/?format=csv|xlsx|json``,
which exports ``self.filter_queryset(self.get_queryset())``, so the list's filters, search and ordering
apply to the file. A file of more than CRM_IMPORT_SYNC_MAX_ROWS rows, or an export of more than
CRM_EXPORT_SYNC_MAX_ROWS records, runs as a background job: 202 with the job (crm.jobs).
"""

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from crm.api import schema
from crm.api.viewsets import BAD_REQUEST, ImportPermissions
from crm.importing import EXPORT_FORMATS, export_queryset, import_file
from crm.jobs import services as jobs
from crm.jobs.api import JobSerializer, job_accepted


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A CSV (UTF-8) or XLSX file whose header row names the columns.")
    dry_run = serializers.BooleanField(
        default=False, help_text="Validate and count without writing anything (a preview)."
    )
    clear_empty = serializers.BooleanField(
        default=False,
        help_text="Empty cells clear fields. Without it an empty cell leaves an updated record's field "
        "unchanged (a new record gets the field's default).",
    )


class ImportRowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="Row number as a spreadsheet shows it (the header is row 1).")
    column = serializers.CharField()
    value = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


class ImportClearedFieldSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    column = serializers.CharField()


class ImportResultSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="One sentence for a person.")
    kind = serializers.CharField()
    dry_run = serializers.BooleanField()
    committed = serializers.BooleanField(help_text="True when the rows were written.")
    rows = serializers.IntegerField()
    new = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="How many rows were rejected.")
    file_errors = serializers.ListField(
        child=serializers.CharField(), help_text="Problems with the whole file."
    )
    row_errors = ImportRowErrorSerializer(many=True)
    notices = serializers.ListField(child=serializers.CharField())
    new_tags = serializers.ListField(
        child=serializers.CharField(), help_text="Tags created (or to be created)."
    )
    clear_empty = serializers.BooleanField(help_text="Whether empty cells clear fields.")
    cleared = ImportClearedFieldSerializer(
        many=True, help_text="Each field an update clears (or would clear) because its cell is empty."
    )


class ImportExportViewSetMixin:
    """``import`` and ``export`` list actions; set ``import_export_kind`` (leads, contacts, accounts)."""

    import_export_kind: str = ""

    @extend_schema(
        summary="Import a CSV or XLSX file",
        description=(
            "All or nothing: existing records are matched by natural key (lead and contact: email; "
            "account: name, in any case) and updated, the others created. A file with any bad row "
            "writes nothing and is answered with 400 and every bad row (row, column, value, message). "
            "With dry_run the counts are computed and nothing is written. An empty cell leaves an "
            "updated record's field unchanged unless clear_empty is true; `cleared` lists each field "
            "an update clears. Export-only columns (a lead's status and converted_at) are ignored: a "
            "row's stage has the services' effect (a won stage converts the lead, a lost stage loses it). "
            "A file of more rows than CRM_IMPORT_SYNC_MAX_ROWS is imported by a background job: 202 "
            "with the job, whose URL is in `Location`; its `result` is this same report once it ends."
        ),
        request={"multipart/form-data": ImportRequestSerializer},
        responses={
            200: ImportResultSerializer,
            202: OpenApiResponse(JobSerializer, description="A large file: the job importing it."),
            400: OpenApiResponse(
                {"oneOf": [schema.ref("ImportResult"), schema.ref("ValidationError")]},
                description="Bad rows or a bad file (an ImportResult), or no file or a bad dry_run "
                "(per field): nothing written.",
            ),
        },
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        url_name="import",
        parser_classes=[MultiPartParser, FormParser],
        permission_classes=[ImportPermissions],
    )
    def import_records(self, request, *args, **kwargs):
        params = ImportRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        upload = params.validated_data["file"]
        data = None
        if upload.size <= settings.CRM_IMPORT_MAX_BYTES:
            data = upload.read()
            rows = jobs.import_rows_estimate(data=data, filename=upload.name or "")
            if jobs.import_runs_as_job(rows=rows):
                job = jobs.job_import_start(
                    user=request.user,
                    resource=self.import_export_kind,
                    data=data,
                    filename=upload.name or "",
                    dry_run=params.validated_data["dry_run"],
                    clear_empty=params.validated_data["clear_empty"],
                    rows=rows,
                )
                return job_accepted(request, job)
        result = import_file(
            kind=self.import_export_kind,
            file=upload if data is None else None,
            data=data,
            size=upload.size,
            filename=upload.name or "",
            dry_run=params.validated_data["dry_run"],
            clear_empty=params.validated_data["clear_empty"],
            default_owner=request.user,
            user=request.user,
        )
        body = ImportResultSerializer({"detail": result.summary(), **result.as_dict()}).data
        return Response(body, status=status.HTTP_200_OK if result.ok else status.HTTP_400_BAD_REQUEST)

    @extend_schema(
        summary="Export the filtered list as CSV, XLSX or JSON",
        description=(
            "The list's filters, search and ordering apply. Columns are the import's, relations by "
            "name, so the file imports back; cells a spreadsheet would run as a formula are escaped. "
            "More records than CRM_EXPORT_SYNC_MAX_ROWS are exported by a background job: 202 with "
            "the job (URL in `Location`), whose `download_url` gives the file once it succeeded."
        ),
        filters=True,
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=list(EXPORT_FORMATS),
                default="csv",
                description="File format.",
            )
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, EXPORT_FORMATS["xlsx"]): OpenApiTypes.BINARY,
            # A JSON export is the list of records itself (an empty list when nothing matches).
            (200, "application/json"): {"type": "array", "items": {"type": "object"}},
            (202, "application/json"): OpenApiResponse(
                JobSerializer, description="A large export: the job writing the file."
            ),
            400: BAD_REQUEST,
        },
    )
    @action(detail=False, methods=["get"], url_path="export", url_name="export", pagination_class=None)
    def export_records(self, request, *args, **kwargs):
        fmt = request.query_params.get("format", "csv").lower()
        if fmt not in EXPORT_FORMATS:
            return Response(
                {"format": [f"Choose one of: {', '.join(EXPORT_FORMATS)}."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        queryset = self.filter_queryset(self.get_queryset())
        job = jobs.job_export_if_large(
            user=request.user, resource=self.import_export_kind, queryset=queryset, fmt=fmt
        )
        if job is not None:
            return job_accepted(request, job)
        exported = export_queryset(
            kind=self.import_export_kind, queryset=queryset, fmt=fmt, user=request.user
        )
        response = HttpResponse(exported.content, content_type=exported.content_type)
        response["Content-Disposition"] = f'attachment; filename="{exported.filename}"'
        return response

    def perform_content_negotiation(self, request, force=False):
        # On export, ?format= names the file format, not a DRF renderer; answer errors as JSON.
        if getattr(self, "action", None) == "export_records":
            renderer = self.get_renderers()[0]
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)
