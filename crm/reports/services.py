"""Saved reports: who sees and changes them, their writes (acting user required), running one as its
reader, and the scheduled e-mails.

A saved report is its owner's; sharing it with a team (its members and manager) or everyone lets them
run it, never change it. Whoever runs it counts only the records and fields they may see.
"""

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from crm.actors import Actor, actor_ensure_given, person
from crm.models import ReportSchedule, ReportSharing, SalesTeam, SavedReport
from crm.selectors import sales_team_visible_to, user_sees_everything
from crm.services.records import record_delete, record_lock, record_save

from .builder import builder_parse, builder_run
from .output import report_file

logger = logging.getLogger("crm.reports")
DEFINITION_FIELDS = ("record_type", "group_by", "measures", "filters")
SCHEDULE_INTERVALS = {
    ReportSchedule.DAILY: datetime.timedelta(days=1),
    ReportSchedule.WEEKLY: datetime.timedelta(days=7),
    ReportSchedule.MONTHLY: datetime.timedelta(days=30),
}


def saved_report_visible_to(user: Actor) -> QuerySet[SavedReport]:
    """Its owner's, those shared with everyone, and those shared with a team ``user`` is in or manages;
    every report for a CRM Admin."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return SavedReport.objects.none()
    if user_sees_everything(user):
        return SavedReport.objects.all()
    teams = SalesTeam.objects.filter(Q(manager=user) | Q(members=user)).values("pk")
    return SavedReport.objects.filter(
        Q(owner=user) | Q(sharing=ReportSharing.EVERYONE) | Q(sharing=ReportSharing.TEAM, team__in=teams)
    )


def saved_report_editable_by(user: Actor) -> QuerySet[SavedReport]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return SavedReport.objects.none()
    if user_sees_everything(user):
        return SavedReport.objects.all()
    return SavedReport.objects.filter(owner=user)


def saved_report_list(*, user: Actor) -> QuerySet[SavedReport]:
    return saved_report_visible_to(user).select_related("owner", "team")


def definition_of(report: SavedReport) -> dict[str, Any]:
    return {name: getattr(report, name) for name in DEFINITION_FIELDS}


def _validate(*, report: SavedReport, user: Actor) -> None:
    # The definition must make sense to its author: fields they may see, filters the list knows.
    builder_parse(user=user, definition=definition_of(report))
    shared_with_team = report.sharing == ReportSharing.TEAM and report.team_id is not None
    if shared_with_team and not sales_team_visible_to(user).filter(pk=report.team_id).exists():
        raise ValidationError({"team": ["Share with a team you are in or manage."]})
    if report.sharing != ReportSharing.TEAM:
        report.team = None


@transaction.atomic
def saved_report_create(*, user: Actor, data: Mapping[str, Any]) -> SavedReport:
    actor_ensure_given(user)
    owner = person(user)
    if owner is None:
        raise ValidationError({"owner": ["A saved report belongs to a person."]})
    report = SavedReport(owner=owner)
    for name, value in data.items():
        setattr(report, name, value)
    _validate(report=report, user=user)
    return record_save(instance=report, user=user, publish=False)


@transaction.atomic
def saved_report_update(*, saved_report: SavedReport, user: Actor, data: Mapping[str, Any]) -> SavedReport:
    actor_ensure_given(user)
    if not saved_report_editable_by(user).filter(pk=saved_report.pk).exists():
        raise PermissionDenied("Only its owner changes a saved report.")
    report = record_lock(saved_report)
    for name, value in data.items():
        if name == "owner":
            continue
        setattr(report, name, value)
    _validate(report=report, user=user)
    return record_save(instance=report, user=user, publish=False)


@transaction.atomic
def saved_report_delete(*, saved_report: SavedReport, user: Actor) -> None:
    actor_ensure_given(user)
    if not saved_report_editable_by(user).filter(pk=saved_report.pk).exists():
        raise PermissionDenied("Only its owner deletes a saved report.")
    record_delete(instance=saved_report, user=user)


def saved_report_run(*, saved_report: SavedReport, user: Actor):
    """(table, pivot) of the report as ``user`` sees it."""
    return builder_run(user=user, definition=definition_of(saved_report))


def _due(now: datetime.datetime) -> QuerySet[SavedReport]:
    condition = Q()
    for schedule, interval in SCHEDULE_INTERVALS.items():
        # A minute's slack, so an hourly beat does not drift a report by an hour each time.
        since = now - interval + datetime.timedelta(minutes=5)
        condition |= Q(schedule=schedule) & (Q(last_sent_at__isnull=True) | Q(last_sent_at__lte=since))
    return SavedReport.objects.filter(condition).select_related("owner")


def saved_report_email(*, saved_report: SavedReport, now: datetime.datetime) -> bool:
    """E-mail the report to its owner (a CSV of what the owner sees) and note when."""
    owner = saved_report.owner
    if not owner.is_active or not owner.email:
        return False
    try:
        result, _pivot = saved_report_run(saved_report=saved_report, user=owner)
    except (ValidationError, PermissionDenied) as exc:
        # The owner lost a permission or a field since saving it: say so rather than send nothing.
        body = f"Your saved report “{saved_report.name}” cannot run any more: {exc}."
        attachment = None
    else:
        body = (
            f"Your saved report “{saved_report.name}” ({saved_report.get_schedule_display().lower()}), "
            f"{len(result.rows)} rows, is attached as a CSV file.\n\n" + "\n".join(result.notes)
        )
        attachment = report_file(result, "csv", f"report-{saved_report.pk}")
    message = EmailMessage(subject=f"Report: {saved_report.name}", body=body, to=[owner.email])
    if attachment is not None:
        content, content_type, filename = attachment
        message.attach(filename, content, content_type.split(";")[0])
    message.send()
    SavedReport.objects.filter(pk=saved_report.pk).update(last_sent_at=now)
    return True


def saved_reports_send_due(*, now: datetime.datetime | None = None) -> int:
    """Send every scheduled report whose time has come; how many were sent. Run by beat hourly."""
    now = now or timezone.now()
    sent = 0
    for report in _due(now):
        try:
            sent += saved_report_email(saved_report=report, now=now)
        except Exception:  # one failing mailbox must not hold back the others
            logger.exception("saved report %s could not be sent", report.pk)
    return sent
