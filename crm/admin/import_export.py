"""Import (upload → preview → confirm) and export of the filtered changelist, for ModelAdmins.

Both go through the engine in crm.importing. The upload is kept in CRM_IMPORT_TMP_DIR under a random
token that only the uploading session knows, so the confirmation imports exactly the previewed file.
A confirmed file of more than CRM_IMPORT_SYNC_MAX_ROWS rows, and an export of more than
CRM_EXPORT_SYNC_MAX_ROWS records, run as background jobs: the user lands on the job's page.
"""

import secrets
import time
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import capfirst

from crm.admin.base import CRM_CHANGE_LIST_TEMPLATE
from crm.importing import EXPORT_FORMATS, export_queryset, import_file, import_schema, schema_for_model
from crm.jobs import services as jobs
from crm.jobs.admin import job_admin_url

SESSION_KEY = "crm_imports"
STALE_AFTER = 24 * 3600
ERRORS_SHOWN = 1000


def upload_dir() -> Path:
    import tempfile

    folder = Path(settings.CRM_IMPORT_TMP_DIR or Path(tempfile.gettempdir()) / "crm-imports")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _forget_stale_uploads(folder: Path) -> None:
    cutoff = time.time() - STALE_AFTER
    for stale in folder.glob("*.upload"):
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
        except OSError:
            pass


class ImportForm(forms.Form):
    file = forms.FileField(
        label="File",
        help_text="CSV (UTF-8) or Excel .xlsx; the first row names the columns.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx,text/csv"}),
    )
    clear_empty = forms.BooleanField(
        label="Empty cells clear fields",
        required=False,
        help_text="Unticked, an empty cell leaves an updated record's field unchanged. The preview lists "
        "each field an update would clear.",
    )


class ExportAdminMixin:
    """An ``export/`` view of the changelist, as filtered, searched and ordered, and its buttons."""

    change_list_template = CRM_CHANGE_LIST_TEMPLATE

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        urls = [path("export/", self.admin_site.admin_view(self.export_view), name=f"{prefix}_export")]
        return urls + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "export_formats": list(EXPORT_FORMATS),
            "can_import": self.can_import(request),
        }
        return super().changelist_view(request, extra_context)

    def can_import(self, request) -> bool:
        return False

    def export_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        # ?format= is the file format; the rest are the changelist's own filters.
        request.GET = request.GET.copy()
        fmt = request.GET.pop("format", ["csv"])[-1]
        if fmt not in EXPORT_FORMATS:
            self.message_user(request, f"Unknown export format “{fmt}”.", messages.ERROR)
            return HttpResponseRedirect(self._changelist_url())
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            self.message_user(
                request, "The list's filters are not valid; nothing was exported.", messages.ERROR
            )
            return HttpResponseRedirect(self._changelist_url())
        kind = schema_for_model(self.model).kind
        queryset = changelist.get_queryset(request)
        job = jobs.job_export_if_large(user=request.user, resource=kind, queryset=queryset, fmt=fmt)
        if job is not None:
            self.message_user(
                request,
                f"Exporting {job.progress_total} {self.opts.verbose_name_plural} in the background.",
                messages.INFO,
            )
            return HttpResponseRedirect(job_admin_url(job))
        exported = export_queryset(kind=kind, queryset=queryset, fmt=fmt, user=request.user)
        response = HttpResponse(exported.content, content_type=exported.content_type)
        response["Content-Disposition"] = f'attachment; filename="{exported.filename}"'
        return response

    def _changelist_url(self) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")


class ImportExportAdminMixin(ExportAdminMixin):
    """Adds ``import/`` (upload and preview) and ``import/confirm/`` to the export views."""

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        urls = [
            path("import/", self.admin_site.admin_view(self.import_view), name=f"{prefix}_import"),
            path(
                "import/confirm/",
                self.admin_site.admin_view(self.import_confirm_view),
                name=f"{prefix}_import_confirm",
            ),
        ]
        return urls + super().get_urls()

    def can_import(self, request) -> bool:
        return self.has_add_permission(request) and self.has_change_permission(request)

    @property
    def import_kind(self) -> str:
        return schema_for_model(self.model).kind

    def import_view(self, request):
        if not self.can_import(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        result = token = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            result = import_file(
                kind=self.import_kind,
                file=upload,
                size=upload.size,
                filename=upload.name,
                dry_run=True,
                clear_empty=form.cleaned_data["clear_empty"],
                default_owner=request.user,
                user=request.user,
            )
            if result.ok:
                # Kept for the confirmation, which imports this very file for real.
                upload.seek(0)
                token = self._store_upload(
                    request, upload, clear_empty=form.cleaned_data["clear_empty"], rows=result.rows
                )
        return self._render_import(request, form, result, token)

    def import_confirm_view(self, request):
        if not self.can_import(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_import"))
        token = request.POST.get("token", "")
        pending = request.session.get(SESSION_KEY, {}).get(token)
        if pending is None or pending["kind"] != self.import_kind:
            self.message_user(
                request, "This import has expired or was already done: upload the file again.", messages.ERROR
            )
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_import"))
        try:
            handle = self._open_upload(token)
        except OSError:
            self._discard_upload(request, token)
            self.message_user(request, "The uploaded file is gone: upload it again.", messages.ERROR)
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_import"))
        if jobs.import_runs_as_job(rows=pending.get("rows")):
            with handle:
                data = handle.read()
            job = jobs.job_import_start(
                user=request.user,
                resource=self.import_kind,
                data=data,
                filename=pending["filename"],
                clear_empty=pending.get("clear_empty", False),
                rows=pending["rows"],
            )
            self._discard_upload(request, token)
            self.message_user(request, f"Importing {pending['filename']} in the background.", messages.INFO)
            return HttpResponseRedirect(job_admin_url(job))
        with handle:
            result = import_file(
                kind=self.import_kind,
                file=handle,
                filename=pending["filename"],
                clear_empty=pending.get("clear_empty", False),
                default_owner=request.user,
                user=request.user,
            )
        self._discard_upload(request, token)
        if not result.ok:
            # The data changed since the preview: show what is wrong now.
            return self._render_import(request, ImportForm(), result, None)
        self.message_user(
            request,
            f"Imported {pending['filename']}: {result.new} created, {result.updated} updated, "
            f"{result.unchanged} unchanged.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._changelist_url())

    def _render_import(self, request, form, result, token):
        schema = import_schema(self.import_kind)
        opts = self.opts
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import {opts.verbose_name_plural}",
            "opts": opts,
            "app_label": opts.app_label,
            "form": form,
            "result": result,
            "token": token,
            "row_errors": result.errors[:ERRORS_SHOWN] if result else [],
            "errors_hidden": max(0, len(result.errors) - ERRORS_SHOWN) if result else 0,
            "cleared_fields": result.cleared[:ERRORS_SHOWN] if result else [],
            "columns": schema.import_columns,
            "export_only": schema.export_only,
            "required": schema.required,
            "key": schema.key_label,
            "verbose_name_plural": capfirst(opts.verbose_name_plural),
            "has_view_permission": self.has_view_permission(request),
        }
        return TemplateResponse(request, "admin/crm/import.html", context)

    # -- the stored upload, between preview and confirm ---------------------------------------------
    def _store_upload(self, request, upload, *, clear_empty: bool = False, rows: int = 0) -> str:
        folder = upload_dir()
        _forget_stale_uploads(folder)
        token = secrets.token_urlsafe(24)
        with (folder / f"{token}.upload").open("wb") as target:
            for chunk in upload.chunks():
                target.write(chunk)
        pending = request.session.get(SESSION_KEY, {})
        pending[token] = {
            "kind": self.import_kind,
            "filename": upload.name,
            "clear_empty": clear_empty,
            "rows": rows,
        }
        request.session[SESSION_KEY] = pending
        return token

    def _open_upload(self, token: str):
        # The token is one this session stored (checked by the caller) or was just made: never a path.
        return (upload_dir() / f"{token}.upload").open("rb")

    def _discard_upload(self, request, token: str) -> None:
        pending = request.session.get(SESSION_KEY, {})
        if pending.pop(token, None) is not None:
            request.session[SESSION_KEY] = pending
        (upload_dir() / f"{token}.upload").unlink(missing_ok=True)
