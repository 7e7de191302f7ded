"""Jobs in the admin: the list of my jobs (everyone's for a CRM Admin) and the job page, which shows
the progress while the job runs (refreshing itself) and the report or the file once it ends."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from crm.jobs.api import job_file_response
from crm.jobs.selectors import job_list
from crm.models import Job, JobKind, JobStatus

ERRORS_SHOWN = 1000
REFRESH_SECONDS = 2


def job_admin_url(job: Job) -> str:
    return reverse("admin:crm_job_change", args=[job.pk])


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Read-only: jobs are started by imports and exports, and moved on by the worker."""

    list_display = ("id", "kind", "resource", "status", "progress", "created_by", "created_at", "finished_at")
    list_filter = ("status", "kind", "resource")
    list_select_related = ("created_by",)
    list_display_links = ("id", "kind")
    show_full_result_count = False
    fields = (
        "kind",
        "resource",
        "status",
        "phase",
        "progress_done",
        "progress_total",
        "params",
        "input_file",
        "result",
        "result_file",
        "errors",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "attempts",
        "heartbeat_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return job_list(user=request.user)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="progress")
    def progress(self, obj):
        return format_html('<progress value="{}" max="100">{}%</progress>', obj.percent, obj.percent)

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/download/",
                self.admin_site.admin_view(self.download_view),
                name="crm_job_download",
            ),
        ]
        return urls + super().get_urls()

    def _job(self, request, pk) -> Job:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            return self.get_queryset(request).get(pk=pk)
        except (Job.DoesNotExist, ValueError):
            raise Http404("No such job.") from None

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self._job(request, object_id)
        result = job.result or {}
        row_errors = result.get("row_errors", []) if job.kind == JobKind.IMPORT else []
        context = {
            **self.admin_site.each_context(request),
            "title": str(job),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "job": job,
            "original": job,
            "result": result,
            "row_errors": row_errors[:ERRORS_SHOWN],
            "errors_hidden": max(0, len(row_errors) - ERRORS_SHOWN),
            "refresh_seconds": None if job.finished else REFRESH_SECONDS,
            "download_url": reverse("admin:crm_job_download", args=[job.pk])
            if job.status == JobStatus.SUCCEEDED and job.result_file
            else None,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/crm/job/job_page.html", context)

    def download_view(self, request, pk):
        return job_file_response(self._job(request, pk))
