"""The reports in the API: ``GET reports/`` lists those the reader may read, ``GET reports/{key}/``
answers one (filters in the query string), ``GET reports/{key}/export/?format=csv|xlsx`` its table as a
file. Every report reads only the records its reader sees."""

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from crm.api.viewsets import BAD_REQUEST, NOT_FOUND, DetailSerializer
from crm.models import LeadSource

from . import (
    COHORTS,
    COLUMN_KINDS,
    MAX_LIMIT,
    ReportDefinition,
    ReportFilterForm,
    report_definition,
    report_definitions,
)
from .output import REPORT_FORMATS, report_file, report_json


class ReportInfoSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The report's path: reports/{key}/.")
    title = serializers.CharField()
    description = serializers.CharField()
    group_by = serializers.ListField(
        child=serializers.CharField(), help_text="Its ?group_by= values; first: default."
    )
    filters = serializers.ListField(child=serializers.CharField(), help_text="The query parameters it takes.")


class ReportColumnSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.ChoiceField(
        choices=COLUMN_KINDS, help_text="money: a decimal string; percent: a number."
    )


class ReportSummarySerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.ChoiceField(choices=COLUMN_KINDS)
    value = serializers.JSONField(allow_null=True)


class ReportSerializer(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    filters = serializers.DictField(help_text="The filters applied (ids for pipeline, owner, team).")
    columns = ReportColumnSerializer(many=True)
    rows = serializers.ListField(
        child=serializers.DictField(), help_text="One object per row, by column key."
    )
    summary = ReportSummarySerializer(many=True, help_text="The report's key figures.")
    notes = serializers.ListField(child=serializers.CharField(), help_text="How the figures are computed.")


FILTER_PARAMETERS = [
    OpenApiParameter("date_from", OpenApiTypes.DATE, description="First day of the period (inclusive)."),
    OpenApiParameter("date_to", OpenApiTypes.DATE, description="Last day of the period (inclusive)."),
    OpenApiParameter("pipeline", OpenApiTypes.INT, description="A pipeline's id."),
    OpenApiParameter("owner", OpenApiTypes.INT, description="An owner's user id (one you may see)."),
    OpenApiParameter("team", OpenApiTypes.INT, description="A sales team's id: its members and manager."),
    OpenApiParameter("source", OpenApiTypes.STR, enum=LeadSource.values, description="A lead source."),
    OpenApiParameter("group_by", OpenApiTypes.STR, description="One of the report's group_by values."),
    OpenApiParameter("cohort", OpenApiTypes.STR, enum=list(COHORTS), description="funnel: cohort length."),
    OpenApiParameter(
        "kind", OpenApiTypes.STR, enum=["opportunity", "lead"], description="funnel: of deals or leads."
    ),
    OpenApiParameter(
        "limit", OpenApiTypes.INT, description=f"lifetime-value: rows, 1–{MAX_LIMIT} (default 100)."
    ),
]
KEY = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="The report's key.")


def _info(definition: ReportDefinition) -> dict:
    return {
        "key": definition.key,
        "title": definition.title,
        "description": definition.description,
        "group_by": [value for value, _label in definition.group_by],
        "filters": [*definition.uses, *(("group_by",) if definition.group_by else ())],
    }


def report_for_request(request, key: str):
    """(definition, form, result) of the report ``key`` with the request's filters; raises Http404,
    PermissionDenied or ValidationError (400 with the form's errors)."""
    definition = report_definition(key)
    if definition is None:
        raise Http404("No such report.")
    if not definition.allowed(request.user):
        raise PermissionDenied("You may not read this report.")
    form = ReportFilterForm(request.GET, definition=definition, user=request.user)
    if not form.is_valid():
        raise ValidationError({name: list(errors) for name, errors in form.errors.items()})
    filters = form.filters()
    return definition, form, filters, definition.build(user=request.user, filters=filters)


def _applied(form: ReportFilterForm, filters) -> dict:
    applied = {}
    for name, value in form.cleaned_data.items():
        if value in (None, ""):
            continue
        applied[name] = getattr(value, "pk", value)
        if hasattr(value, "isoformat"):
            applied[name] = value.isoformat()
    if filters.group_by:
        applied["group_by"] = filters.group_by
    return applied


class ReportViewSet(viewsets.ViewSet):
    """The standard reports."""

    permission_classes = [IsAuthenticated]
    lookup_field = "key"
    lookup_value_regex = "[a-z][a-z-]{0,40}"

    @extend_schema(summary="List the reports you may read", responses={200: ReportInfoSerializer(many=True)})
    def list(self, request: Request) -> Response:
        return Response(
            ReportInfoSerializer([_info(d) for d in report_definitions(request.user)], many=True).data
        )

    @extend_schema(
        summary="Run a report",
        description="The report's table (columns and rows), key figures and notes, for the filters given. "
        "Counts and sums cover only the records you see; amounts are in the company currency, converted at "
        "the rate in force on each deal's close date. 403 without the report's permissions.",
        parameters=[KEY, *FILTER_PARAMETERS],
        responses={200: ReportSerializer, 400: BAD_REQUEST, 403: DetailSerializer, 404: NOT_FOUND},
    )
    def retrieve(self, request: Request, key: str) -> Response:
        definition, form, filters, result = report_for_request(request, key)
        body = {"key": definition.key, "title": definition.title, "filters": _applied(form, filters)}
        return Response({**body, **report_json(result)})

    @extend_schema(
        summary="Export a report's table as CSV or XLSX",
        parameters=[
            KEY,
            *FILTER_PARAMETERS,
            OpenApiParameter("format", OpenApiTypes.STR, enum=[*REPORT_FORMATS], default="csv"),
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, REPORT_FORMATS["xlsx"]): OpenApiTypes.BINARY,
            400: BAD_REQUEST,
            403: OpenApiResponse(DetailSerializer),
            404: NOT_FOUND,
        },
    )
    @action(detail=True, methods=["get"], url_path="export", url_name="export")
    def export(self, request: Request, key: str) -> HttpResponse:
        fmt = request.query_params.get("format", "csv").lower()
        if fmt not in REPORT_FORMATS:
            return Response({"format": [f"Choose one of: {', '.join(REPORT_FORMATS)}."]}, status=400)
        definition, _form, _filters, result = report_for_request(request, key)
        content, content_type, filename = report_file(result, fmt, f"report-{definition.key}")
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def perform_content_negotiation(self, request, force=False):
        # On export, ?format= names the file format, not a DRF renderer; errors are answered as JSON.
        if getattr(self, "action", None) == "export":
            renderer = self.get_renderers()[0]
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)
