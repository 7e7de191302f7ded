"""The reports in the API: ``GET reports/`` lists those the reader may read, ``GET reports/{key}/``
answers one (filters in the query string), ``GET reports/{key}/export/?format=csv|xlsx`` its table as a
file. Every report reads only the records its reader sees."""

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from crm.api.serializers import TIMESTAMPS, related_id
from crm.api.viewsets import BAD_REQUEST, NOT_FOUND, DetailSerializer, ServiceModelViewSet, crud_schema
from crm.models import LeadSource, SalesTeam, SavedReport

from . import (
    COHORTS,
    COLUMN_KINDS,
    MAX_LIMIT,
    ReportDefinition,
    ReportFilterForm,
    report_definition,
    report_definitions,
)
from .builder import NUMERIC, builder_run, report_sources
from .output import REPORT_FORMATS, json_value, report_file, report_json
from .services import (
    saved_report_create,
    saved_report_delete,
    saved_report_list,
    saved_report_run,
    saved_report_update,
)


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


# --- the report builder and saved reports ---------------------------------------------------------


class BuilderFieldSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.CharField(
        help_text="text, choice, fk, boolean, date, datetime, number, money, integer."
    )
    groupable = serializers.BooleanField()
    measurable = serializers.BooleanField()


class BuilderSourceSerializer(serializers.Serializer):
    record_type = serializers.CharField()
    label = serializers.CharField()
    fields = BuilderFieldSerializer(many=True, help_text="The fields you may see.")
    filters = serializers.ListField(child=serializers.CharField(), help_text="The list filters it takes.")


class BuilderDefinitionSerializer(serializers.Serializer):
    record_type = serializers.CharField(help_text="leads, opportunities, activities or accounts.")
    group_by = serializers.ListField(
        child=serializers.CharField(max_length=80),
        required=False,
        max_length=10,
        help_text='Up to two: a field, a related field, or a date with ":week|month|quarter|year".',
    )
    measures = serializers.ListField(
        child=serializers.CharField(max_length=80),
        required=False,
        max_length=10,
        help_text='"count", or "sum|avg|min|max:<numeric field>"; default ["count"].',
    )
    filters = serializers.DictField(required=False, help_text='The list filters: {"status": "open"}.')


class PivotRowSerializer(serializers.Serializer):
    label = serializers.CharField()
    cells = serializers.ListField(child=serializers.JSONField(allow_null=True))


class PivotSerializer(serializers.Serializer):
    measure = serializers.CharField()
    kind = serializers.CharField()
    row_field = serializers.CharField()
    column_field = serializers.CharField()
    columns = serializers.ListField(child=serializers.CharField())
    rows = PivotRowSerializer(many=True)


class BuilderResultSerializer(serializers.Serializer):
    columns = ReportColumnSerializer(many=True)
    rows = serializers.ListField(child=serializers.DictField())
    pivot = PivotSerializer(
        allow_null=True, help_text="With two group-by dimensions: the first measure, pivoted."
    )
    notes = serializers.ListField(child=serializers.CharField())


def builder_json(result, pivot) -> dict:
    body = report_json(result)
    body.pop("summary")
    if pivot is not None:
        pivot = {
            **pivot,
            "rows": [
                {"label": row["label"], "cells": [json_value(c, pivot["kind"]) for c in row["cells"]]}
                for row in pivot["rows"]
            ],
        }
    return {**body, "pivot": pivot}


def _source_info(source, user) -> dict:
    fields = source.fields_for(user).values()
    filters = sorted(set(source.filterset.base_filters) - {"ordering"}) if source.filterset else []
    return {
        "record_type": source.key,
        "label": source.label,
        "fields": [
            {
                "name": f.name,
                "label": f.label,
                "kind": f.kind,
                "groupable": f.kind not in NUMERIC,
                "measurable": f.kind in NUMERIC,
            }
            for f in fields
        ],
        "filters": filters,
    }


class ReportBuilderViewSet(viewsets.ViewSet):
    """The report builder: what one may build reports of, and running a definition."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Record types, fields and filters you may build reports of",
        responses={200: BuilderSourceSerializer(many=True)},
    )
    def list(self, request: Request) -> Response:
        return Response([_source_info(s, request.user) for s in report_sources(request.user)])

    @extend_schema(
        summary="Run a report definition",
        description="Groups the records you see by up to two dimensions and measures them. An unknown "
        "field, measure, filter or record type is a 400 naming it.",
        request=BuilderDefinitionSerializer,
        responses={200: BuilderResultSerializer, 400: BAD_REQUEST, 403: DetailSerializer},
    )
    def create(self, request: Request) -> Response:
        definition = BuilderDefinitionSerializer(data=request.data)
        definition.is_valid(raise_exception=True)
        result, pivot = builder_run(user=request.user, definition=dict(definition.validated_data))
        return Response(builder_json(result, pivot))


class SavedReportSerializer(serializers.ModelSerializer):
    owner_id = serializers.IntegerField(read_only=True)
    owner_username = serializers.CharField(source="owner.username", read_only=True)
    team_id = related_id(SalesTeam.objects.all(), "team", help_text="With sharing=team: the team.")
    group_by = serializers.ListField(
        child=serializers.CharField(max_length=80), required=False, max_length=10
    )
    measures = serializers.ListField(
        child=serializers.CharField(max_length=80), required=False, max_length=10
    )
    filters = serializers.DictField(required=False)

    class Meta:
        model = SavedReport
        fields = (
            "id",
            "name",
            "owner_id",
            "owner_username",
            "record_type",
            "group_by",
            "measures",
            "filters",
            "display",
            "sharing",
            "team_id",
            "schedule",
            "last_sent_at",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", "owner_id", "owner_username", "last_sent_at", *TIMESTAMPS)


@extend_schema_view(**crud_schema("saved report", SavedReportSerializer))
class SavedReportViewSet(ServiceModelViewSet):
    """Saved builder reports: yours, your teams' and everyone's; only their owner changes them."""

    serializer_class = SavedReportSerializer
    selector = staticmethod(lambda *, user, filters=None: saved_report_list(user=user))
    filterset_class = None

    def create_record(self, data):
        return saved_report_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return saved_report_update(saved_report=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        saved_report_delete(saved_report=instance, user=self.request.user)

    @extend_schema(
        summary="Run a saved report",
        description="As you see it: only the records and fields you may see count.",
        responses={200: BuilderResultSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="run", url_name="run")
    def run(self, request: Request, pk=None) -> Response:
        result, pivot = saved_report_run(saved_report=self.get_object(), user=request.user)
        return Response(builder_json(result, pivot))

    @extend_schema(
        summary="Export a saved report as CSV or XLSX",
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=[*REPORT_FORMATS], default="csv")],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, REPORT_FORMATS["xlsx"]): OpenApiTypes.BINARY,
            400: BAD_REQUEST,
            404: NOT_FOUND,
        },
    )
    @action(detail=True, methods=["get"], url_path="export", url_name="export")
    def export(self, request: Request, pk=None) -> HttpResponse:
        fmt = request.query_params.get("format", "csv").lower()
        if fmt not in REPORT_FORMATS:
            return Response({"format": [f"Choose one of: {', '.join(REPORT_FORMATS)}."]}, status=400)
        report = self.get_object()
        result, _pivot = saved_report_run(saved_report=report, user=request.user)
        content, content_type, filename = report_file(result, fmt, f"report-{report.pk}")
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def perform_content_negotiation(self, request, force=False):
        if getattr(self, "action", None) == "export":
            renderer = self.get_renderers()[0]
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)
