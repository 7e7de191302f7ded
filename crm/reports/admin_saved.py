"""Saved reports in the admin: the builder's definition as a form (record type, group-by, measures,
filters, sharing, schedule) and a page that runs one as its reader: table, pivot and chart, exported as
CSV or XLSX."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from crm.admin.base import ServiceModelAdmin
from crm.models import SavedReport

from .builder import NUMERIC, report_sources
from .output import REPORT_FORMATS, json_value, report_file
from .services import (
    saved_report_create,
    saved_report_delete,
    saved_report_editable_by,
    saved_report_run,
    saved_report_update,
    saved_report_visible_to,
)


@admin.register(SavedReport)
class SavedReportAdmin(ServiceModelAdmin):
    list_display = ("name", "record_type", "owner", "sharing", "team", "schedule", "run_link")
    list_filter = ("record_type", "sharing", "schedule")
    list_select_related = ("owner", "team")
    search_fields = ("name",)
    fields = (
        "name",
        "record_type",
        "group_by",
        "measures",
        "filters",
        "display",
        "sharing",
        "team",
        "schedule",
    )
    autocomplete_fields = ("team",)

    def get_queryset(self, request):
        return saved_report_visible_to(request.user).select_related("owner", "team")

    def _editable(self, request, obj) -> bool:
        return obj is None or saved_report_editable_by(request.user).filter(pk=obj.pk).exists()

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._editable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._editable(request, obj)

    def create_record(self, request, data):
        return saved_report_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return saved_report_update(saved_report=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        try:
            saved_report_delete(saved_report=obj, user=request.user)
        except PermissionDenied as exc:
            raise ValidationError(str(exc)) from exc

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        sources = report_sources(request.user)
        if "record_type" in form.base_fields:
            lines = []
            for source in sources:
                fields = source.fields_for(request.user).values()
                groups = ", ".join(f.name for f in fields if f.kind not in NUMERIC)
                figures = ", ".join(f.name for f in fields if f.kind in NUMERIC)
                lines.append(f"{source.key}: group by {groups}; measure {figures}")
            form.base_fields["record_type"].help_text = " | ".join(lines)
        return form

    @admin.display(description="run")
    def run_link(self, obj):
        return format_html('<a href="{}">Run</a>', reverse("admin:crm_savedreport_run", args=[obj.pk]))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/run/", wrap(self.run_view), name="crm_savedreport_run"),
            *super().get_urls(),
        ]

    def run_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if not str(object_id).isdigit() or len(str(object_id)) > 18:
            raise Http404("No such report.")
        report = self.get_queryset(request).filter(pk=int(object_id)).first()
        if report is None:
            raise Http404("No such report.")
        errors, result, pivot = [], None, None
        try:
            result, pivot = saved_report_run(saved_report=report, user=request.user)
        except ValidationError as exc:
            errors = [f"{name}: {' '.join(texts)}" for name, texts in exc.message_dict.items()]
        except PermissionDenied as exc:
            errors = [str(exc)]
        fmt = request.GET.get("export", "")
        if result is not None and fmt in REPORT_FORMATS:
            content, content_type, filename = report_file(result, fmt, f"report-{report.pk}")
            response = HttpResponse(content, content_type=content_type)
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
        chart = None
        if result is not None and result.chart:
            chart = {
                "money": result.chart["kind"] == "money",
                "rows": [
                    {"label": r["label"], "value": json_value(r["value"], result.chart["kind"]) or 0}
                    for r in result.chart["rows"]
                ],
            }
        table = None
        if result is not None:
            table = {
                "columns": result.columns,
                "rows": [[(c.kind, row.get(c.key)) for c in result.columns] for row in result.rows],
            }
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": report.name,
            "report": report,
            "errors": errors,
            "result": result,
            "table": table,
            "pivot": pivot,
            "chart": chart,
            "exports": [{"label": f.upper(), "url": f"?export={f}"} for f in REPORT_FORMATS],
            "change_url": reverse("admin:crm_savedreport_change", args=[report.pk])
            if self.has_change_permission(request, report)
            else None,
            "changelist_url": reverse("admin:crm_savedreport_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/crm/reports/saved_run.html", context)
