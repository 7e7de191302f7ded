"""Moving enrollments on: the beat task claims due enrollments in batches and runs their steps.

A batch is claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two workers never take
the same enrollment; each claimed row is also moved on with a conditional update (its position and
due time unchanged since it was read), which keeps a step from running twice on a database without
row locks. Each step runs in a savepoint: a step that fails is retried later (then the enrollment
fails, visibly, with the error) without undoing the steps before it. Emails the batch queued are sent
once it commits, on one SMTP connection.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from crm import registries
from crm.actors import SYSTEM, Actor
from crm.consent.services import email_refusals
from crm.messaging.context import record_kind
from crm.messaging.services import (
    email_addresses_opted_out,
    email_template_message,
    outgoing_emails_queue,
    outgoing_emails_send,
)
from crm.models import (
    Contact,
    EnrollmentEvent,
    EnrollmentStatus,
    ExclusionReason,
    LeadStatus,
    OutgoingEmail,
    OutgoingEmailStatus,
    SequenceEnrollment,
    SequenceStep,
    StepKind,
    TaskType,
)
from crm.sequences.conditions import condition_holds
from crm.sequences.services import enrollment_end

logger = logging.getLogger("crm.sequences")

MAX_ATTEMPTS = 5
RETRY_AFTER = timedelta(minutes=10)
END = 32767  # a position after every step: the enrollment is done
STEPS_PER_RUN = 50  # branches and instant steps in one go; a sequence has far fewer


def days_later(start: datetime, days: int, *, business_days: bool) -> datetime:
    """``start`` plus ``days`` days, counting only Monday to Friday (local time) when asked: a
    business-day wait that starts on a Friday ends on a weekday, never on a weekend."""
    if not business_days:
        return start + timedelta(days=days)
    moment = timezone.localtime(start)
    counted = 0
    while counted < days:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            counted += 1
    return moment


def _stop_reason(enrollment: SequenceEnrollment, opted_out: set[str]) -> str | None:
    record = enrollment.record
    if record is None:
        return "The record is gone."
    if record_kind(record) == "lead":
        if record.status == LeadStatus.CONVERTED:
            return "The lead was converted."
        if record.status == LeadStatus.LOST:
            return "The lead was lost."
    elif getattr(record, "email_opt_out", False):
        return "The contact opted out of email."
    if record.email and record.email.lower() in opted_out:
        return "The address opted out of email."
    return None


def _do_not_call(record, do_not_call: set[str]) -> bool:
    if isinstance(record, Contact):
        return record.do_not_call
    # A lead: the contact it is (the same address) may have asked not to be called.
    return bool(record.email) and record.email.lower() in do_not_call


def _addresses_not_to_call(addresses) -> set[str]:
    """Which of ``addresses`` (lowercased) belong to a contact marked do-not-call: one query a batch."""
    lowered = {address.strip().lower() for address in addresses if address}
    if not lowered:
        return set()
    return set(
        Contact.objects.annotate(address=Lower("email"))
        .filter(address__in=lowered, do_not_call=True)
        .values_list("address", flat=True)
    )


@dataclass
class Deferred:
    """A write a step asked for (an email to queue, an activity to log), done with the batch's."""

    enrollment: SequenceEnrollment
    step: SequenceStep
    email: OutgoingEmail | None = None
    activity: dict | None = None
    # The enrollment as it was before the step, and where the step's history entries begin: what a
    # write that fails puts back.
    state: tuple = ()
    events_from: int = 0


STATE_FIELDS = ("position", "next_run_at", "status", "stop_reason", "finished_at")


@dataclass
class Batch:
    now: datetime
    user: Actor
    row_locks: bool = False
    bulk: bool = True
    opted_out: set[str] = field(default_factory=set)
    # Per consent purpose of the batch's sequences (None: none), the consent service's refusals of
    # marketing email to the batch's people: ``email_refusals``.
    refusals: dict[int | None, dict[tuple[str, int], str]] = field(default_factory=dict)
    do_not_call: set[str] = field(default_factory=set)
    events: list[EnrollmentEvent] = field(default_factory=list)
    dropped: set[int] = field(default_factory=set)  # indexes in events of steps undone
    emails: list[int] = field(default_factory=list)
    moved: list[SequenceEnrollment] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)

    def log(self, enrollment, kind: str, detail: str = "", position=None) -> None:
        self.events.append(
            EnrollmentEvent(
                enrollment=enrollment, at=self.now, kind=kind, detail=detail[:2000], position=position
            )
        )

    def defer(self, enrollment, step, state, *, email=None, activity=None) -> None:
        self.deferred.append(
            Deferred(
                enrollment, step, email=email, activity=activity, state=state, events_from=len(self.events)
            )
        )


def _next_step(steps: list[SequenceStep], position: int) -> SequenceStep | None:
    return next((step for step in steps if step.position >= position), None)


def _after(steps: list[SequenceStep], step: SequenceStep) -> int:
    later = [s.position for s in steps if s.position > step.position]
    return later[0] if later else step.position + 1


def _state(enrollment: SequenceEnrollment) -> tuple:
    return tuple(getattr(enrollment, name) for name in STATE_FIELDS)


def _run_step(batch: Batch, enrollment: SequenceEnrollment, step: SequenceStep, steps) -> bool:
    """Run ``step`` for ``enrollment``; sets its next position and due time. True: go on now.

    An email or a task is checked and prepared here (rendered, validated) and written with the
    batch's (``_write_deferred``): no step writes to the database on its own."""
    record = enrollment.record
    position = step.position
    if step.kind == StepKind.WAIT:
        enrollment.next_run_at = days_later(batch.now, step.wait_days, business_days=step.business_days)
        enrollment.position = _after(steps, step)
        batch.log(
            enrollment,
            "waited",
            f"{step.describe()}: until {enrollment.next_run_at:%Y-%m-%d %H:%M}",
            position,
        )
        return False
    if step.kind == StepKind.BRANCH:
        holds = condition_holds(
            record,
            field=step.condition_field,
            operator=step.condition_operator,
            value=step.condition_value,
            kind=record_kind(record),
        )
        if holds:
            enrollment.position = step.branch_to if step.branch_to else END
        else:
            enrollment.position = _after(steps, step)
        batch.log(enrollment, "branched", f"{step.describe()}: {'yes' if holds else 'no'}", position)
        return True
    state = _state(enrollment)
    if step.kind == StepKind.EMAIL:
        if not record.email:
            enrollment.position = _after(steps, step)
            batch.log(enrollment, "skipped", f"{step.describe()}: no email address", position)
            return True
        refusals = batch.refusals.get(enrollment.sequence.consent_purpose_id, {})
        refused = refusals.get((record_kind(record), record.pk))
        if refused:
            # Email off in their preferences, or no consent for the sequence's purpose: the email
            # step is skipped (said so in the history), the other steps go on.
            enrollment.position = _after(steps, step)
            batch.log(enrollment, "skipped", f"{step.describe()}: {ExclusionReason(refused).label}", position)
            return True
        email = email_template_message(
            template=step.email_template,
            record=record,
            user=batch.user,
            enrollment=enrollment,
            opted_out=batch.opted_out,
            refusals=refusals,
        )
        enrollment.position = _after(steps, step)
        batch.defer(enrollment, step, state, email=email)
        batch.log(enrollment, "emailed", f"“{email.subject}” to {email.to}", position)
        return True
    # A task (or a call) for the record's owner.
    if step.task_type == TaskType.CALL and _do_not_call(record, batch.do_not_call):
        enrollment.position = _after(steps, step)
        batch.log(enrollment, "skipped", f"{step.describe()}: do not call", position)
        return True
    if not registries.activity_writer_registered():
        raise RuntimeError("No app registered an activity writer: tasks cannot be created.")
    enrollment.position = _after(steps, step)
    batch.defer(
        enrollment,
        step,
        state,
        activity={
            "record": record,
            "activity_type": step.task_type or TaskType.TASK,
            "subject": step.task_subject,
            "description": f"From the sequence “{enrollment.sequence}”.",
            "due_date": days_later(batch.now, step.task_due_days, business_days=step.business_days),
        },
    )
    batch.log(enrollment, "task_created", step.describe(), position)
    return True


def _advance(batch: Batch, enrollment: SequenceEnrollment, steps: list[SequenceStep], opted_out) -> None:
    if not batch.row_locks:
        # No row locks (SQLite): move it on only if no one did since it was read.
        claimed = SequenceEnrollment.objects.filter(
            pk=enrollment.pk,
            status=EnrollmentStatus.ACTIVE,
            position=enrollment.position,
            next_run_at=enrollment.next_run_at,
        ).update(updated_at=batch.now)
        if not claimed:
            return
    reason = _stop_reason(enrollment, opted_out)
    if reason:
        enrollment_end(
            enrollment, status=EnrollmentStatus.STOPPED, reason=reason, at=batch.now, log=batch.log
        )
        return
    batch.moved.append(enrollment)  # its position and due time are written with the batch's
    for _ in range(STEPS_PER_RUN):
        step = _next_step(steps, enrollment.position)
        if step is None:
            enrollment_end(
                enrollment,
                status=EnrollmentStatus.COMPLETED,
                reason="All steps done.",
                at=batch.now,
                log=batch.log,
            )
            return
        before = (enrollment.position, enrollment.next_run_at, len(batch.events), len(batch.deferred))
        try:
            go_on = _run_step(batch, enrollment, step, steps)  # writes nothing: the batch writes
            enrollment.attempts, enrollment.last_error = 0, ""
        except Exception as exc:
            enrollment.position, enrollment.next_run_at = before[0], before[1]
            del batch.events[before[2] :], batch.deferred[before[3] :]
            _failed(batch, enrollment, step, exc)
            return
        if not go_on:
            return
    enrollment.next_run_at = batch.now


def _failed(batch: Batch, enrollment: SequenceEnrollment, step: SequenceStep, exc: Exception) -> None:
    logger.warning("Sequence step %s failed for enrollment %s: %s", step.pk, enrollment.pk, exc)
    error = f"Step {step.position} ({step.describe()}): {type(exc).__name__}: {exc}"
    enrollment.attempts += 1
    enrollment.last_error = error[:2000]
    batch.log(enrollment, "step_failed", error, step.position)
    if enrollment.attempts >= MAX_ATTEMPTS:
        enrollment_end(
            enrollment,
            status=EnrollmentStatus.FAILED,
            reason=f"Step {step.position} failed {MAX_ATTEMPTS} times.",
            at=batch.now,
            log=batch.log,
        )
        return
    enrollment.next_run_at = batch.now + RETRY_AFTER * enrollment.attempts


def _write(user: Actor, items: list[Deferred]) -> list[int]:
    """Queue the items' emails (one INSERT) and log their activities (the bulk writer); the ids of
    the emails to send once the batch commits."""
    emails = outgoing_emails_queue(emails=[item.email for item in items if item.email is not None])
    activities = [item.activity for item in items if item.activity is not None]
    if len(activities) == 1:
        registries.activity_write(user=user, **activities[0])
    elif activities:
        registries.activities_write(user=user, items=activities)
    return [email.pk for email in emails if email.status == OutgoingEmailStatus.QUEUED]


def _write_deferred(batch: Batch) -> None:
    """The batch's emails and activities in a few statements; if that fails (or ``batch.bulk`` is
    off), each on its own, in a savepoint: a write that fails puts its enrollment back where it was
    before the step, fails the step (retried later), and leaves the others' writes done."""
    if not batch.deferred:
        return
    if batch.bulk and len(batch.deferred) > 1:
        try:
            with transaction.atomic():
                batch.emails.extend(_write(batch.user, batch.deferred))
            return
        except Exception:
            logger.exception("Writing %s sequence steps at once failed; one by one now", len(batch.deferred))
    failed: set[int] = set()
    for item in batch.deferred:
        enrollment = item.enrollment
        if enrollment.pk in failed:
            continue  # its later steps did not happen: it was put back before the failed one
        if item.email is not None:  # written by the batch's INSERT that was rolled back
            item.email.pk, item.email._state.adding = None, True
        try:
            with transaction.atomic():
                batch.emails.extend(_write(batch.user, [item]))
        except Exception as exc:
            failed.add(enrollment.pk)
            for name, value in zip(STATE_FIELDS, item.state, strict=True):
                setattr(enrollment, name, value)
            batch.dropped.update(
                index
                for index in range(item.events_from, len(batch.events))
                if batch.events[index].enrollment is enrollment
            )
            _failed(batch, enrollment, item.step, exc)


def _positions_write(batch: Batch) -> None:
    """One UPDATE for the batch's enrollments (locked, or claimed, until it commits). On PostgreSQL
    from arrays: Django's bulk_update builds a CASE per row and column, seconds of Python for 200 rows."""
    moved = batch.moved
    for enrollment in moved:
        enrollment.updated_at = batch.now
    fields = ["attempts", "last_error", "updated_at", *STATE_FIELDS]
    if not moved:
        return
    if connection.vendor != "postgresql":
        SequenceEnrollment.objects.bulk_update(moved, fields, batch_size=500)
        return
    opts = SequenceEnrollment._meta
    quote = connection.ops.quote_name
    types = {
        "attempts": "smallint",
        "last_error": "text",
        "updated_at": "timestamptz",
        "position": "smallint",
        "next_run_at": "timestamptz",
        "status": "text",
        "stop_reason": "text",
        "finished_at": "timestamptz",
    }
    columns = [quote(opts.get_field(name).column) for name in fields]
    arrays = ", ".join(["%s::bigint[]", *(f"%s::{types[name]}[]" for name in fields)])
    assignments = ", ".join(f"{column} = v.{column}" for column in columns)
    values = [[e.pk for e in moved], *([getattr(e, name) for e in moved] for name in fields)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(opts.db_table)} AS e SET {assignments} "
            f"FROM unnest({arrays}) AS v(id, {', '.join(columns)}) WHERE e.id = v.id",
            values,
        )


def _due(now: datetime, batch_size: int) -> list[SequenceEnrollment]:
    due = SequenceEnrollment.objects.filter(status=EnrollmentStatus.ACTIVE, next_run_at__lte=now).order_by(
        "next_run_at", "id"
    )
    if connection.features.has_select_for_update_skip_locked:
        due = due.select_for_update(skip_locked=True, of=("self",))
    return list(
        due.select_related(
            "sequence__consent_purpose",
            "lead__owner",
            "lead__stage",
            "lead__pipeline",
            "contact__owner",
            "contact__account",
        )[:batch_size]
    )


def _refusals(due: list[SequenceEnrollment], steps: dict[int, list[SequenceStep]]) -> dict:
    """The consent service's answer for the people of ``due`` whose sequence has an email step, read
    once per consent purpose of those sequences (a few queries a batch)."""
    by_purpose: dict[int | None, list] = {}
    purposes = {}
    for enrollment in due:
        sequence = enrollment.sequence
        if enrollment.record is None or not any(s.kind == StepKind.EMAIL for s in steps.get(sequence.pk, ())):
            continue
        by_purpose.setdefault(sequence.consent_purpose_id, []).append(enrollment.record)
        purposes[sequence.consent_purpose_id] = sequence.consent_purpose
    return {
        purpose_id: email_refusals(records, purpose=purposes[purpose_id])
        for purpose_id, records in by_purpose.items()
    }


def sequence_enrollments_advance_batch(
    *, user: Actor = SYSTEM, now: datetime | None = None, batch_size: int = 200, bulk: bool = True
) -> int:
    """Claim up to ``batch_size`` due enrollments and run their steps; returns how many were claimed.
    ``bulk``: the steps' emails and activities written together (else one by one, as a fallback does)."""
    batch = Batch(
        now=now or timezone.now(),
        user=user,
        row_locks=connection.features.has_select_for_update_skip_locked,
        bulk=bulk,
    )
    with transaction.atomic():
        due = _due(batch.now, batch_size)
        if not due:
            return 0
        steps: dict[int, list[SequenceStep]] = {}
        for step in (
            SequenceStep.objects.filter(sequence__in={e.sequence_id for e in due})
            .select_related("email_template")
            .order_by("position")
        ):
            steps.setdefault(step.sequence_id, []).append(step)
        addresses = [e.record.email for e in due if e.record is not None and e.record.email]
        batch.opted_out = email_addresses_opted_out(addresses)
        batch.refusals = _refusals(due, steps)
        if any(step.task_type == TaskType.CALL for sequence in steps.values() for step in sequence):
            batch.do_not_call = _addresses_not_to_call(addresses)
        for enrollment in due:
            _advance(batch, enrollment, steps.get(enrollment.sequence_id, []), batch.opted_out)
        _write_deferred(batch)
        _positions_write(batch)
        EnrollmentEvent.objects.bulk_create(
            event for index, event in enumerate(batch.events) if index not in batch.dropped
        )
    outgoing_emails_send(ids=batch.emails)
    return len(due)


def sequence_enrollments_advance(
    *,
    user: Actor = SYSTEM,
    now: datetime | None = None,
    batch_size: int = 200,
    time_budget: float = 50.0,
    bulk: bool = True,
) -> int:
    """Run the due enrollments batch after batch, until none is due or ``time_budget`` seconds passed
    (beat starts the next run); returns how many enrollments were moved on."""
    started = time.monotonic()
    total = 0
    while time.monotonic() - started < time_budget:
        claimed = sequence_enrollments_advance_batch(user=user, now=now, batch_size=batch_size, bulk=bulk)
        total += claimed
        if claimed < batch_size:
            break
    return total
