"""The reports in the back office: ``/admin/reports/`` lists those one may read, ``/admin/reports/<key>/``
shows one (filters, key figures, an SVG chart drawn on the server, the table) and exports its table
(``?export=csv|xlsx``). Wired by the admin site (crm_project.admin_site)."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from . import MONEY, ReportFilterForm, report_definition, report_definitions
from .output import REPORT_FORMATS, json_value, report_file


def reports_index_view(request, admin_site):
    definitions = report_definitions(request.user)
    if not definitions:
        raise PermissionDenied
    context = {
        **admin_site.each_context(request),
        "title": "Reports",
        "reports": [
            {"title": d.title, "description": d.description, "url": reverse("admin:report", args=[d.key])}
            for d in definitions
        ],
    }
    request.current_app = admin_site.name
    return TemplateResponse(request, "admin/crm/reports/index.html", context)


def report_view(request, admin_site, key: str):
    definition = report_definition(key)
    if definition is None:
        raise Http404("No such report.")
    if not definition.allowed(request.user):
        raise PermissionDenied
    form = ReportFilterForm(request.GET or None, definition=definition, user=request.user)
    result, errors = None, []
    if not request.GET or form.is_valid():
        if not request.GET:
            form = ReportFilterForm({}, definition=definition, user=request.user)
            form.is_valid()
        try:
            result = definition.build(user=request.user, filters=form.filters())
        except ValidationError as exc:
            errors = [f"{name}: {' '.join(texts)}" for name, texts in exc.message_dict.items()]
    fmt = request.GET.get("export", "")
    if result is not None and fmt in REPORT_FORMATS:
        content, content_type, filename = report_file(result, fmt, f"report-{definition.key}")
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    query = request.GET.copy()
    query.pop("export", None)
    exports = []
    for name in REPORT_FORMATS:
        query["export"] = name
        exports.append({"label": name.upper(), "url": f"?{query.urlencode()}"})
    table = None
    if result is not None:
        table = {
            "columns": result.columns,
            "rows": [[(c.kind, row.get(c.key)) for c in result.columns] for row in result.rows],
        }
    chart = None
    if result is not None and result.chart:
        chart = {
            "money": result.chart["kind"] == MONEY,
            "rows": [
                {
                    "label": str(row.get(result.chart["label"]) or "—"),
                    "value": json_value(row.get(result.chart["value"]), result.chart["kind"]) or 0,
                }
                for row in result.chart["rows"]
            ],
        }
    context = {
        **admin_site.each_context(request),
        "title": definition.title,
        "definition": definition,
        "form": form,
        "errors": errors,
        "result": result,
        "table": table,
        "chart": chart,
        "exports": exports,
        "index_url": reverse("admin:reports"),
    }
    request.current_app = admin_site.name
    return TemplateResponse(request, "admin/crm/reports/report.html", context)
