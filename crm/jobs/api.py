"""The jobs API: ``jobs/`` (mine; all of them for a CRM Admin), ``jobs/{id}/`` and ``jobs/{id}/download/``.

A large import or export answers 202 with ``Location: /api/v1/crm/jobs/{id}/`` and the job as its
body (``job_accepted``); a client polls the job until its status is succeeded or failed.
"""

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from crm.api.viewsets import NOT_FOUND
from crm.jobs.selectors import job_list
from crm.models import Job, JobStatus


class JobProgressSerializer(serializers.Serializer):
    phase = serializers.CharField(help_text="What the job is doing: validating, writing, exporting.")
    done = serializers.IntegerField()
    total = serializers.IntegerField(help_text="Rows or records in all (an estimate until the end).")
    percent = serializers.IntegerField()


class JobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="This job: poll it until it is finished.")
    progress = serializers.SerializerMethodField()
    result = serializers.JSONField(
        read_only=True,
        help_text="An import: its report (counts, row_errors with row, column, value, message: the "
        "same body the import answers at once for a small file). An export: rows, filename, "
        "content_type, size.",
    )
    errors = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Why the job failed, for a person."
    )
    download_url = serializers.SerializerMethodField(help_text="The export's file, once it succeeded.")
    created_by_id = serializers.IntegerField(read_only=True, allow_null=True)
    created_by_username = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Job
        fields = (
            "id",
            "url",
            "kind",
            "resource",
            "status",
            "progress",
            "result",
            "errors",
            "download_url",
            "params",
            "created_by_id",
            "created_by_username",
            "created_at",
            "started_at",
            "finished_at",
            "attempts",
        )
        read_only_fields = fields
        extra_kwargs = {
            "attempts": {
                "help_text": "How many times a worker started it (more than 1: a worker stopped mid-job)."
            }
        }

    def get_url(self, job) -> str:
        return job_url(self.context.get("request"), job)

    @extend_schema_field(JobProgressSerializer)
    def get_progress(self, job) -> dict:
        return {
            "phase": job.phase,
            "done": job.progress_done,
            "total": job.progress_total,
            "percent": job.percent,
        }

    @extend_schema_field(OpenApiTypes.URI)
    def get_download_url(self, job) -> str | None:
        if not job.result_file or job.status != JobStatus.SUCCEEDED:
            return None
        path = _slashed(reverse("job-download", args=[job.pk]))
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


def _slashed(path: str) -> str:
    # The router takes both spellings; the documented URL ends with a slash.
    return path if path.endswith("/") else path + "/"


def job_url(request, job: Job) -> str:
    path = _slashed(reverse("job-detail", args=[job.pk]))
    return request.build_absolute_uri(path) if request is not None else path


def job_accepted(request, job: Job) -> Response:
    """202 Accepted for a job just started: its URL in Location, the job (as it is now) as the body."""
    job = job_list(user=request.user).get(pk=job.pk)  # in the embedded mode it has already run
    url = job_url(request, job)
    body = JobSerializer(job, context={"request": request}).data
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})


@extend_schema_view(
    list=extend_schema(summary="List my jobs", description="Newest first; a CRM Admin sees everyone's."),
    retrieve=extend_schema(summary="Get a job", responses={200: JobSerializer, 404: NOT_FOUND}),
)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Background imports and exports: status, progress, the report, and the export's file."""

    serializer_class = JobSerializer

    def get_queryset(self):
        return job_list(user=self.request.user)

    @extend_schema(
        summary="Download a job's export file",
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            404: NOT_FOUND,
        },
    )
    @action(detail=True, methods=["get"], url_path="download", url_name="download")
    def download(self, request, pk=None):
        job = self.get_object()
        return job_file_response(job)

    def perform_content_negotiation(self, request, force=False):
        # The download is a file whatever the client accepts; its errors are JSON.
        if getattr(self, "action", None) == "download":
            renderer = self.get_renderers()[0]
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)


def job_file_response(job: Job) -> FileResponse:
    if job.status != JobStatus.SUCCEEDED or not job.result_file:
        raise Http404("This job has no file to download.")
    try:
        handle = default_storage.open(job.result_file, "rb")
    except FileNotFoundError:
        raise Http404("The job's file is gone.") from None
    return FileResponse(
        handle,
        as_attachment=True,
        filename=job.result.get("filename") or job.result_file.rsplit("/", 1)[-1],
        content_type=job.result.get("content_type") or "application/octet-stream",
    )
