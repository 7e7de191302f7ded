"""Writes of tickets and their threads. The conventions are crm.services': acting user required,
rows locked for transitions, ``full_clean`` before saving, side effects after commit."""

import datetime
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.mail import make_msgid
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from activities.service.models import (
    DONE_STATUSES,
    Holiday,
    SlaPolicy,
    Ticket,
    TicketCounter,
    TicketMessage,
    TicketMessageKind,
    TicketStatus,
    WorkingCalendar,
    WorkingHours,
)
from activities.service.selectors import ticket_assignable_to
from crm.actors import Actor, actor_ensure_given, person
from crm.events import publishing as events
from crm.models import NotificationKind
from crm.notifications.services import notify
from crm.services import (
    CLOSED,
    record_assign,
    record_ensure_changeable,
    record_lock,
    record_save,
    related_ensure_visible,
)

# What a ticket links to: each must be a record its author sees.
LINKS = ("account", "contact", "opportunity")


def ticket_number_next() -> str:
    """The next ticket number, from the counter row locked until the caller's transaction ends."""
    TicketCounter.objects.bulk_create([TicketCounter(pk=1)], ignore_conflicts=True)
    counter = TicketCounter.objects.select_for_update().get(pk=1)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return f"T-{counter.last_number:06d}"


def _links_ensure_visible(*, user: Actor, ticket: Ticket | None, data: Mapping[str, Any]) -> None:
    for name in LINKS:
        record = data.get(name)
        if record is not None and (ticket is None or record.pk != getattr(ticket, f"{name}_id")):
            related_ensure_visible(user=user, record=record, field=name)


def _assignee_ensure_allowed(*, user: Actor, ticket: Ticket | None, data: Mapping[str, Any]) -> None:
    if "assignee" not in data and "team" not in data:
        return
    assignee = data.get("assignee", ticket.assignee if ticket else None)
    if assignee is None:
        return
    unchanged = ticket is not None and ticket.assignee_id == assignee.pk and "team" not in data
    team = data.get("team", ticket.team if ticket else None)
    if not unchanged and not ticket_assignable_to(user=user, team=team).filter(pk=assignee.pk).exists():
        raise ValidationError(
            {"assignee": "You may assign a ticket to yourself, your team's members or the queue's members."}
        )


def _assigned(*, ticket: Ticket, user: Actor) -> None:
    if ticket.assignee is None or ticket.assignee_id == getattr(user, "pk", None):
        return
    notify(
        recipient=ticket.assignee,
        kind=NotificationKind.ASSIGNED,
        event_id=f"ticket:{ticket.pk}:assigned:{ticket.assignee_id}:{ticket.updated_at.timestamp()}",
        title=f"Ticket assigned to you: {ticket.number} {ticket.subject}"[:255],
        url=reverse("admin:activities_ticket_change", args=[ticket.pk]),
        record_type="ticket",
        record_id=ticket.pk,
    )


def _resolved(*, ticket: Ticket, previous: str, user: Actor) -> None:
    """On entering resolved: the contact is asked to rate the ticket (once per ticket)."""
    if ticket.status == TicketStatus.RESOLVED and previous != TicketStatus.RESOLVED:
        from activities.service.satisfaction import ticket_survey_send

        ticket_survey_send(ticket=ticket, user=user)


def _status_apply(*, ticket: Ticket, status: str, now) -> None:
    """Set ``status`` and the times it stamps; the SLA clock follows (activities.service.sla)."""
    from activities.service import sla

    previous = ticket.status
    if status == previous:
        return
    if previous == TicketStatus.CLOSED:
        raise ValidationError("A closed ticket stays closed: open a new ticket instead.", code=CLOSED)
    ticket.status = status
    if status in DONE_STATUSES:
        ticket.resolved_at = ticket.resolved_at or now
        if status == TicketStatus.CLOSED:
            ticket.closed_at = now
    else:
        ticket.resolved_at = None
        ticket.closed_at = None
    sla.ticket_clock_status_changed(ticket=ticket, previous=previous, now=now)


@transaction.atomic
def ticket_create(*, user: Actor, data: Mapping[str, Any]) -> Ticket:
    """Open a ticket, numbered ``T-000123`` without gaps; its SLA targets are set from its policy."""
    actor_ensure_given(user)
    from activities.service import sla

    data = dict(data)
    status = data.pop("status", TicketStatus.NEW)
    _links_ensure_visible(user=user, ticket=None, data=data)
    _assignee_ensure_allowed(user=user, ticket=None, data=data)
    if data.get("contact") is not None and data.get("account") is None and data["contact"].account_id:
        data["account"] = data["contact"].account
    ticket = Ticket(number=ticket_number_next())
    # Born new or open; any later state is a transition from there (it stamps its times).
    ticket.status = status if status in (TicketStatus.NEW, TicketStatus.OPEN) else TicketStatus.NEW
    before = events.record_snapshot(ticket, data)
    ticket = record_save(instance=ticket, data=data, user=user, publish=False)
    # The clock starts when the ticket was stored (its created_at).
    sla.ticket_sla_assign(ticket=ticket, data={}, now=ticket.created_at)
    if status != ticket.status:
        _status_apply(ticket=ticket, status=status, now=ticket.created_at)
    # One creation, as the audit trail and the subscribers see it: the first version is the ticket
    # as it was created (clock and status included), and one ticket.created event is published.
    ticket.skip_history_when_saving = True
    try:
        ticket = record_save(instance=ticket, user=user, publish=False)
    finally:
        del ticket.skip_history_when_saving
    first = ticket.history.order_by("-history_id").first()
    if first is not None:
        for field in first.tracked_fields:
            setattr(first, field.attname, getattr(ticket, field.attname))
        first.save()
    events.record_published(ticket, before=before, user=user)
    _assigned(ticket=ticket, user=user)
    _resolved(ticket=ticket, previous=TicketStatus.NEW, user=user)
    return ticket


@transaction.atomic
def ticket_update(*, ticket: Ticket, user: Actor, data: Mapping[str, Any]) -> Ticket:
    """Change a ticket's fields, its status among them (a closed ticket changes no more)."""
    from activities.service import sla

    ticket = record_lock(ticket)
    record_ensure_changeable(user=user, record=ticket)
    data = dict(data)
    if ticket.status == TicketStatus.CLOSED and data:
        raise ValidationError("A closed ticket cannot be changed.", code=CLOSED)
    _links_ensure_visible(user=user, ticket=ticket, data=data)
    _assignee_ensure_allowed(user=user, ticket=ticket, data=data)
    previous_assignee, previous_status = ticket.assignee_id, ticket.status
    # The event compares with the ticket as it was, before the transition changes it below.
    before = events.record_snapshot(ticket, data)
    now = timezone.now()
    if "status" in data:
        _status_apply(ticket=ticket, status=data.pop("status"), now=now)
    if "priority" in data and data["priority"] != ticket.priority:
        ticket.priority = data.pop("priority")
        sla.ticket_sla_assign(ticket=ticket, data=data, now=now)
    ticket = record_save(instance=ticket, data=data, user=user, publish=False)
    events.record_published(ticket, before=before, user=user)
    if ticket.assignee_id and ticket.assignee_id != previous_assignee:
        _assigned(ticket=ticket, user=user)
    _resolved(ticket=ticket, previous=previous_status, user=user)
    return ticket


@transaction.atomic
def ticket_set_status(*, ticket: Ticket, user: Actor, status: str) -> Ticket:
    """One transition: resolve, close, reopen, wait on the customer, hold."""
    return ticket_update(ticket=ticket, user=user, data={"status": status})


@transaction.atomic
def ticket_message_create(
    *,
    ticket: Ticket,
    user: Actor,
    body: str,
    kind: str = TicketMessageKind.REPLY,
    from_customer: bool = False,
    sender_email: str = "",
    message_id: str = "",
    uploads: list[UploadedFile] | None = None,
    article_ids: list[int] | None = None,
) -> TicketMessage:
    """Add a public reply or an internal note to ``ticket``'s thread, with files.

    The policy on a closed ticket: refused (409), a closed ticket is final; a customer writing again
    about it opens a new ticket. A customer's reply reopens a resolved ticket and resumes a ticket
    pending on them; an agent's first public reply is the ticket's first response. ``article_ids``:
    published knowledge-base articles whose links end the message.
    """
    from activities.service import sla
    from activities.services import attachments_create

    ticket = record_lock(ticket)
    if not from_customer:
        record_ensure_changeable(user=user, record=ticket)
    if ticket.status == TicketStatus.CLOSED:
        raise ValidationError("This ticket is closed: replies and notes are refused.", code=CLOSED)
    if kind == TicketMessageKind.NOTE and from_customer:
        raise ValidationError({"kind": "A customer writes replies, not internal notes."})
    if article_ids:
        # Knowledge-base articles linked in the reply: their titles and public links close it.
        from activities.service.kb import article_links_text, articles_linkable

        if from_customer:
            raise ValidationError({"article_ids": "Only an agent links articles in a reply."})
        links = article_links_text(articles_linkable(user=user, ids=article_ids))
        body = f"{(body or '').rstrip()}\n\n{links}".lstrip()
    if not (body or "").strip():
        raise ValidationError({"body": "Write something."})
    before = events.record_snapshot(ticket)
    now = timezone.now()
    message = TicketMessage(
        ticket=ticket,
        kind=kind,
        body=body,
        author=None if from_customer else person(user),
        from_customer=from_customer,
        sender_email=sender_email[:254],
        # An agent's reply gets its own Message-ID: the customer's answer names it in In-Reply-To.
        message_id=(
            message_id
            or (
                ""
                if from_customer
                else make_msgid(domain=urlsplit(settings.CRM_BASE_URL).hostname or "crm.invalid")
            )
        )[:255],
    )
    message.full_clean()
    message.save()
    if uploads:
        attachments_create(user=user, record=message, uploads=uploads)
    changed = False
    if from_customer:
        if ticket.status in (TicketStatus.PENDING_CUSTOMER, TicketStatus.RESOLVED):
            _status_apply(ticket=ticket, status=TicketStatus.OPEN, now=now)
            changed = True
    elif kind == TicketMessageKind.REPLY:
        if ticket.first_response_at is None:
            ticket.first_response_at = now
            sla.ticket_first_response_given(ticket=ticket, now=now)
            changed = True
        if ticket.status == TicketStatus.NEW:
            _status_apply(ticket=ticket, status=TicketStatus.OPEN, now=now)
            changed = True
    if changed:
        record_save(instance=ticket, user=user, publish=False)
        events.record_published(ticket, before=before, user=user)
    else:
        Ticket.objects.filter(pk=ticket.pk).update(updated_at=now)
    if kind == TicketMessageKind.REPLY and not from_customer:
        from activities.service.intake import ticket_reply_email_send

        message_pk = message.pk
        transaction.on_commit(lambda: ticket_reply_email_send(message_id=message_pk))
    return message


@transaction.atomic
def ticket_merge(*, user: Actor, survivor: Ticket, duplicates: list[Ticket]) -> Ticket:
    """Merge duplicate tickets into ``survivor``: their threads (and files) and tags move to it, each
    duplicate is closed and points at it, both sides get an internal note. Needs the right to change
    every ticket; a closed survivor is refused. All or nothing."""
    duplicates = [d for d in duplicates if d.pk != survivor.pk]
    if not duplicates:
        raise ValidationError("Choose at least two tickets to merge.")
    tickets = {
        t.pk: t
        for t in Ticket.objects.select_for_update().filter(pk__in=[survivor.pk, *[d.pk for d in duplicates]])
    }
    survivor = tickets[survivor.pk]
    for ticket in tickets.values():
        record_ensure_changeable(user=user, record=ticket)
    survivor_before = events.record_snapshot(survivor, {"tags": None})
    if survivor.status == TicketStatus.CLOSED:
        raise ValidationError(f"{survivor.number} is closed: merge into an open ticket.", code=CLOSED)
    now = timezone.now()
    author = person(user)
    for duplicate in (tickets[d.pk] for d in duplicates):
        before = events.record_snapshot(duplicate)
        TicketMessage.objects.filter(ticket=duplicate).update(ticket=survivor)
        survivor.tags.add(*duplicate.tags.all())
        if duplicate.status != TicketStatus.CLOSED:
            _status_apply(ticket=duplicate, status=TicketStatus.CLOSED, now=now)
        duplicate.merged_into = survivor
        record_save(instance=duplicate, user=user, publish=False)
        events.record_published(duplicate, before=before, user=user)
        TicketMessage.objects.create(
            ticket=duplicate,
            kind=TicketMessageKind.NOTE,
            author=author,
            body=f"Merged into {survivor.number}.",
        )
        TicketMessage.objects.create(
            ticket=survivor,
            kind=TicketMessageKind.NOTE,
            author=author,
            body=f"{duplicate.number} “{duplicate.subject}” was merged into this ticket.",
        )
    if survivor.first_response_at is None:
        # A reply on a duplicate answered the customer already.
        answered = survivor.messages.filter(kind=TicketMessageKind.REPLY, from_customer=False).order_by(
            "created_at"
        )
        first = answered.values_list("created_at", flat=True).first()
        if first is not None:
            from activities.service import sla

            survivor.first_response_at = first
            sla.ticket_first_response_given(ticket=survivor, now=first)
    survivor = record_save(instance=survivor, user=user, publish=False)
    events.record_published(survivor, before=survivor_before, user=user)
    return survivor


# --- working calendars and SLA policies (configuration: CRM Admins) ----------------------------------


def _ensure_may_configure(user: Actor, model, action: str) -> None:
    opts = model._meta
    if not user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}"):
        raise PermissionDenied(f"You may not {action} {opts.verbose_name_plural}.")


def _hours_ensure_no_overlap(hours: WorkingHours) -> None:
    siblings = WorkingHours.objects.filter(calendar=hours.calendar_id, weekday=hours.weekday).exclude(
        pk=hours.pk
    )

    def end_of(span) -> datetime.time:
        return datetime.time.max if span.end == datetime.time(0) else span.end

    for other in siblings:
        if hours.start < end_of(other) and other.start < end_of(hours):
            raise ValidationError(
                {"start": f"{hours} overlaps {other}: working hours of one day may not overlap."}
            )


def _calendar_spans_set(calendar: WorkingCalendar, data: dict[str, Any]) -> None:
    """Replace the calendar's hours and holidays by the lists in ``data`` (each when given): every
    span checked, then compared with the others of its day; any overlap refuses the whole write."""
    spans, holidays = data.pop("hours", None), data.pop("holidays", None)
    if spans is not None:
        rows = [WorkingHours(calendar=calendar, **span) for span in spans]
        for index, row in enumerate(rows):
            try:
                row.full_clean(exclude=["calendar"])
            except ValidationError as exc:
                raise ValidationError({"hours": [f"Span {index + 1}: {' '.join(exc.messages)}"]}) from exc
        for index, row in enumerate(rows):
            for other in rows[index + 1 :]:
                if row.weekday == other.weekday and _overlap(row, other):
                    raise ValidationError(
                        {"hours": [f"{row} overlaps {other}: working hours may not overlap."]}
                    )
        calendar.hours.all().delete()
        WorkingHours.objects.bulk_create(rows)
    if holidays is not None:
        days = [holiday["date"] for holiday in holidays]
        if len(set(days)) != len(days):
            raise ValidationError({"holidays": ["A date is listed twice."]})
        calendar.holidays.all().delete()
        Holiday.objects.bulk_create(Holiday(calendar=calendar, **holiday) for holiday in holidays)


def _overlap(one: WorkingHours, other: WorkingHours) -> bool:
    def end_of(span) -> datetime.time:
        return datetime.time.max if span.end == datetime.time(0) else span.end

    return one.start < end_of(other) and other.start < end_of(one)


@transaction.atomic
def working_calendar_create(*, user: Actor, data: Mapping[str, Any]) -> WorkingCalendar:
    """A calendar with its time zone, and (optionally) its hours and holidays as lists."""
    _ensure_may_configure(user, WorkingCalendar, "add")
    data = dict(data)
    spans = {key: data.pop(key) for key in ("hours", "holidays") if key in data}
    calendar = record_save(instance=WorkingCalendar(), data=data, user=user)
    _calendar_spans_set(calendar, spans)
    return calendar


@transaction.atomic
def working_calendar_update(
    *, user: Actor, calendar: WorkingCalendar, data: Mapping[str, Any]
) -> WorkingCalendar:
    _ensure_may_configure(user, WorkingCalendar, "change")
    data = dict(data)
    spans = {key: data.pop(key) for key in ("hours", "holidays") if key in data}
    calendar = record_save(instance=record_lock(calendar), data=data, user=user)
    _calendar_spans_set(calendar, spans)
    return calendar


@transaction.atomic
def working_hours_save(*, user: Actor, hours: WorkingHours | None, data: Mapping[str, Any]) -> WorkingHours:
    """Add or change one span of working hours; a span overlapping another of its day is refused."""
    _ensure_may_configure(user, WorkingCalendar, "change")
    hours = hours or WorkingHours()
    record_assign(instance=hours, data=data)
    hours.full_clean()
    # Spans of one calendar are written one at a time: lock the calendar, then compare.
    WorkingCalendar.objects.select_for_update().filter(pk=hours.calendar_id).first()
    _hours_ensure_no_overlap(hours)
    hours.save()
    return hours


@transaction.atomic
def working_hours_delete(*, user: Actor, hours: WorkingHours) -> None:
    _ensure_may_configure(user, WorkingCalendar, "change")
    hours.delete()


@transaction.atomic
def holiday_save(*, user: Actor, holiday: Holiday | None, data: Mapping[str, Any]) -> Holiday:
    _ensure_may_configure(user, WorkingCalendar, "change")
    return record_save(instance=holiday or Holiday(), data=data, user=user)


@transaction.atomic
def holiday_delete(*, user: Actor, holiday: Holiday) -> None:
    _ensure_may_configure(user, WorkingCalendar, "change")
    holiday.delete()


@transaction.atomic
def sla_policy_create(*, user: Actor, data: Mapping[str, Any]) -> SlaPolicy:
    _ensure_may_configure(user, SlaPolicy, "add")
    return record_save(instance=SlaPolicy(), data=data, user=user)


@transaction.atomic
def sla_policy_update(*, user: Actor, policy: SlaPolicy, data: Mapping[str, Any]) -> SlaPolicy:
    """Change a policy: tickets keep the deadlines they were given (new tickets get the new targets)."""
    _ensure_may_configure(user, SlaPolicy, "change")
    return record_save(instance=record_lock(policy), data=data, user=user)
