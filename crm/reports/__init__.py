"""Reports: the registry each app fills with the standard reports over the figures it owns, the filters
they share (period, pipeline, owner or team, source) and the shape every report answers in.

crm renders and exports every report (admin pages, API, CSV/XLSX) without knowing the apps that compute
them: sales registers the deal reports, activities the activity report, from their ``ready()``.
"""

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connections
from django.db.models import Q, QuerySet
from django.utils import timezone

from crm.models import LeadSource, Pipeline, SalesTeam
from crm.selectors import sales_team_visible_to, user_managed_ids, user_sees_everything

# Kinds of a column: how a cell is shown, exported and written in JSON.
TEXT, INTEGER, MONEY, PERCENT, NUMBER, DATE = "text", "integer", "money", "percent", "number", "date"
COLUMN_KINDS = (TEXT, INTEGER, MONEY, PERCENT, NUMBER, DATE)
COHORTS = ("month", "quarter", "year")
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = TEXT


@dataclass
class ReportResult:
    """What a report answers: a table (columns and rows of plain values), key figures, and notes that
    say how the figures were computed. ``chart`` names the rows, label and value the page draws."""

    columns: list[Column]
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]] = field(default_factory=list)  # {"key", "label", "value", "kind"}
    notes: list[str] = field(default_factory=list)
    chart: dict[str, Any] | None = None  # {"rows": [...], "label": key, "value": key, "kind": kind}


@dataclass(frozen=True)
class ReportFilters:
    """The filters every report takes; each report says in its notes which date the period applies to."""

    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    pipeline: Pipeline | None = None
    owner_ids: tuple[int, ...] | None = None  # an owner, or the members and manager of a team
    source: str = ""
    group_by: str = ""
    cohort: str = "month"
    kind: str = "opportunity"
    limit: int = 100

    def datetime_range(self) -> tuple[datetime.datetime | None, datetime.datetime | None]:
        """The period as [start, end) instants in the current time zone (for created_at, changed_at)."""
        zone = timezone.get_current_timezone()
        start = end = None
        if self.date_from is not None:
            start = datetime.datetime.combine(self.date_from, datetime.time.min, tzinfo=zone)
        if self.date_to is not None:
            end = datetime.datetime.combine(
                self.date_to + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone
            )
        return start, end

    def period_q(self, name: str, *, instant: bool = False) -> Q:
        """``name`` (a date field, or a datetime one with ``instant``) within the period."""
        condition = Q()
        if instant:
            start, end = self.datetime_range()
            if start is not None:
                condition &= Q(**{f"{name}__gte": start})
            if end is not None:
                condition &= Q(**{f"{name}__lt": end})
            return condition
        if self.date_from is not None:
            condition &= Q(**{f"{name}__gte": self.date_from})
        if self.date_to is not None:
            condition &= Q(**{f"{name}__lte": self.date_to})
        return condition

    def owner_q(self, name: str = "owner") -> Q:
        return Q() if self.owner_ids is None else Q(**{f"{name}__in": self.owner_ids})


# (*, user, filters) -> ReportResult
ReportBuilder = Callable[..., ReportResult]


@dataclass(frozen=True)
class ReportDefinition:
    key: str  # the URL's part: /api/v1/crm/reports/<key>/
    title: str
    description: str
    build: ReportBuilder
    permissions: tuple[str, ...]  # what the reader needs ("sales.view_opportunity")
    group_by: tuple[tuple[str, str], ...] = ()  # (value, label); the first is the default
    uses: tuple[str, ...] = ("date_from", "date_to", "pipeline", "owner", "team", "source")

    def allowed(self, user) -> bool:
        return bool(user and user.is_authenticated and user.has_perms(self.permissions))


_reports: dict[str, ReportDefinition] = {}


def register_report(definition: ReportDefinition) -> None:
    """A standard report, listed and served in registration order."""
    _reports[definition.key] = definition


def report_definitions(user=None) -> list[ReportDefinition]:
    """Every registered report, or those ``user`` may read."""
    return [d for d in _reports.values() if user is None or d.allowed(user)]


def report_definition(key: str) -> ReportDefinition | None:
    return _reports.get(key)


class ReportFilterForm(forms.Form):
    """The filters from a query string, for the admin page and the API alike (400 with its errors)."""

    date_from = forms.DateField(required=False, label="From")
    date_to = forms.DateField(required=False, label="To")
    pipeline = forms.ModelChoiceField(queryset=Pipeline.objects.order_by("sequence", "name"), required=False)
    owner = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"), required=False)
    team = forms.ModelChoiceField(queryset=SalesTeam.objects.order_by("name"), required=False)
    source = forms.ChoiceField(choices=[("", "any"), *LeadSource.choices], required=False)
    group_by = forms.ChoiceField(choices=(), required=False, label="Group by")
    cohort = forms.ChoiceField(choices=[(c, c) for c in COHORTS], required=False, label="Cohort")
    kind = forms.ChoiceField(
        choices=[("opportunity", "deals"), ("lead", "leads")], required=False, label="Of"
    )
    limit = forms.IntegerField(min_value=1, max_value=MAX_LIMIT, required=False, label="Rows")

    def __init__(self, data=None, *, definition: ReportDefinition, user):
        super().__init__(data)
        self.definition = definition
        # Whom one may filter by: the people and teams one sees (a rep: themselves and their teams).
        if "owner" in self.fields and not user_sees_everything(user):
            self.fields["owner"].queryset = self.fields["owner"].queryset.filter(
                pk__in=user_managed_ids(user)
            )
        if "team" in self.fields:
            self.fields["team"].queryset = sales_team_visible_to(user).order_by("name")
        for name in list(self.fields):
            if name not in definition.uses and name not in ("group_by",):
                del self.fields[name]
        if definition.group_by:
            self.fields["group_by"].choices = list(definition.group_by)
        else:
            del self.fields["group_by"]

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise ValidationError({"date_to": "The period ends before it starts."})
        return data

    def filters(self) -> ReportFilters:
        """Once valid: the filters as the reports take them."""
        data = self.cleaned_data
        owner_ids = None
        if data.get("owner") is not None:
            owner_ids = (data["owner"].pk,)
        team = data.get("team")
        if team is not None:
            members = set(team.members.values_list("pk", flat=True))
            if team.manager_id:
                members.add(team.manager_id)
            owner_ids = tuple(sorted(members & set(owner_ids) if owner_ids is not None else members))
        return ReportFilters(
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            pipeline=data.get("pipeline"),
            owner_ids=owner_ids,
            source=data.get("source") or "",
            group_by=data.get("group_by")
            or (self.definition.group_by[0][0] if self.definition.group_by else ""),
            cohort=data.get("cohort") or "month",
            kind=data.get("kind") or "opportunity",
            limit=data.get("limit") or 100,
        )


def report_run(*, user, definition: ReportDefinition, filters: ReportFilters) -> ReportResult:
    return definition.build(user=user, filters=filters)


_SOURCE = re.compile(r"\{(\w+)\}")


def rows_over(sql: str, **sources: QuerySet) -> list[tuple]:
    """The rows of ``sql``, a SELECT over derived tables: each ``{name}`` in it is replaced by the SQL of
    the queryset ``name`` (in brackets, with its parameters).

    For what one grouped query of the ORM cannot say without a subquery per row (a record's furthest
    stage in its history, the next stage change of each change): the querysets carry the visibility
    rules and filters and are compiled for the database in use; ``sql`` joins and groups them, in SQL
    that PostgreSQL and SQLite both read. Values come back as the database driver gives them.
    """
    params: list = []
    database = None

    def compiled(match: re.Match) -> str:
        nonlocal database
        queryset = sources[match.group(1)]
        database = database or queryset.db
        inner, inner_params = queryset.query.sql_with_params()
        params.extend(inner_params)
        return f"({inner})"

    text = _SOURCE.sub(compiled, sql)
    with connections[database or "default"].cursor() as cursor:
        cursor.execute(text, params)
        return cursor.fetchall()


def as_duration(value) -> datetime.timedelta | None:
    """A sum of durations read by ``rows_over``: an interval (PostgreSQL) or microseconds (SQLite)."""
    if value is None or isinstance(value, datetime.timedelta):
        return value
    return datetime.timedelta(microseconds=int(value))


def as_date(value):
    """A truncated date read by ``rows_over``: a date or datetime (PostgreSQL) or its text (SQLite)."""
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
