"""The writes of sequences: configure them (steps in order), enroll leads and contacts, stop them.

``sequence_enroll`` is the one way into a sequence (by hand in the admin, in bulk from a list, by
the automation rules, by the API); ``enrollment_stop`` the way out by hand. The runner
(``crm.sequences.runner``) moves enrollments on and stops those whose record left the audience.
"""

from collections.abc import Iterable, Mapping
from collections.abc import Sequence as Seq
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.actors import Actor, person
from crm.messaging.context import record_kind
from crm.models import (
    EnrollmentEvent,
    EnrollmentStatus,
    LeadStatus,
    Sequence,
    SequenceEnrollment,
    SequenceStep,
)
from crm.services import record_delete, record_lock, record_save
from crm.services.access import record_ensure_changeable

PARKED = 30000  # positions are moved out of the way while steps are renumbered


def _ensure_perm(user: Actor, action: str) -> None:
    if not user.has_perm(f"crm.{action}_sequence"):
        raise PermissionDenied(f"You may not {action} sequences.")


@transaction.atomic
def sequence_create(
    *, user: Actor, data: Mapping[str, Any], steps: Seq[Mapping[str, Any]] | None = None
) -> Sequence:
    _ensure_perm(user, "add")
    sequence = record_save(instance=Sequence(), data=data, user=user)
    if steps is not None:
        sequence_steps_replace(sequence=sequence, user=user, steps=steps)
    return sequence


@transaction.atomic
def sequence_update(
    *,
    sequence: Sequence,
    user: Actor,
    data: Mapping[str, Any],
    steps: Seq[Mapping[str, Any]] | None = None,
) -> Sequence:
    _ensure_perm(user, "change")
    sequence = record_lock(sequence)
    sequence = record_save(instance=sequence, data=data, user=user)
    if steps is not None:
        sequence_steps_replace(sequence=sequence, user=user, steps=steps)
    return sequence


@transaction.atomic
def sequence_delete(*, sequence: Sequence, user: Actor) -> None:
    """Delete a sequence with its steps and enrollments; one with active enrollments is kept (stop
    them first, or make it inactive)."""
    _ensure_perm(user, "delete")
    if sequence.enrollments.filter(status=EnrollmentStatus.ACTIVE).exists():
        raise ValidationError(
            "This sequence has active enrollments: stop them or make the sequence inactive.", code="protected"
        )
    record_delete(instance=sequence, user=user)


def _step_errors(exc: ValidationError, index: int | None) -> ValidationError:
    if index is None:
        return exc
    return ValidationError({"steps": [f"Step {index + 1}: {message}" for message in exc.messages]})


@transaction.atomic
def sequence_steps_write(
    *,
    sequence: Sequence,
    user: Actor,
    create: Seq[Mapping[str, Any]] = (),
    update: Seq[tuple[SequenceStep, Mapping[str, Any]]] = (),
    delete: Iterable[SequenceStep] = (),
    numbered: bool = False,
) -> list[SequenceStep]:
    """Add, change and remove steps of ``sequence`` at once: steps may swap positions (they are
    moved out of the way first). ``numbered``: name errors by the step's place in the list."""
    _ensure_perm(user, "change")
    record_lock(sequence)
    for step in delete:
        if step.sequence_id != sequence.pk:
            raise ValidationError({"steps": "This step belongs to another sequence."})
        step.delete()
    # Every step given a position is parked first (the admin's form has already set the new one
    # on the instance, so whether it moves cannot be told from it).
    moving = [step for step, data in update if "position" in data]
    for offset, step in enumerate(moving):
        SequenceStep.objects.filter(pk=step.pk).update(position=PARKED + offset)
        step.position = PARKED + offset
    saved = []
    items = [(step, data) for step, data in update] + [
        (SequenceStep(sequence=sequence), data) for data in create
    ]
    for index, (step, data) in enumerate(items):
        data = {key: value for key, value in data.items() if key not in ("id", "sequence")}
        try:
            saved.append(record_save(instance=step, data=data, user=user, publish=False))
        except ValidationError as exc:
            raise _step_errors(exc, index if numbered else None) from exc
    return saved


def sequence_steps_replace(*, sequence: Sequence, user: Actor, steps: Seq[Mapping[str, Any]]) -> None:
    """The API's steps: those with an ``id`` are changed, those without added, the others removed."""
    current = {step.pk: step for step in sequence.steps.all()}
    update, create = [], []
    for data in steps:
        pk = data.get("id")
        if pk is None:
            create.append(data)
        elif pk in current:
            update.append((current.pop(pk), data))
        else:
            raise ValidationError({"steps": f"Step {pk} is not a step of this sequence."})
    sequence_steps_write(
        sequence=sequence, user=user, create=create, update=update, delete=current.values(), numbered=True
    )


def _event(
    enrollment: SequenceEnrollment, kind: str, detail: str = "", position=None, at=None
) -> EnrollmentEvent:
    return EnrollmentEvent(
        enrollment=enrollment, at=at or timezone.now(), kind=kind, detail=detail[:2000], position=position
    )


def enrollment_refusal(*, sequence: Sequence, record) -> str | None:
    """Why ``record`` cannot enter ``sequence`` now, or None."""
    from crm.messaging.services import record_email_opted_out

    if not sequence.is_active:
        return f"The sequence “{sequence}” is inactive."
    if record_kind(record) == "lead" and record.status != LeadStatus.OPEN:
        return f"The lead “{record}” is {record.get_status_display().lower()}: only open leads are enrolled."
    if record_kind(record) == "contact" and not record.is_active:
        return f"The contact “{record}” is inactive."
    if record_email_opted_out(record):
        return f"“{record}” opted out of email."
    return None


def sequence_enroll(*, sequence: Sequence, record, user: Actor, kick: bool = True) -> SequenceEnrollment:
    """Put ``record`` (a lead or a contact the user may change) into ``sequence``, at its first step,
    due now. Refused (ValidationError) for an inactive sequence, a closed lead, an address that
    opted out, or a record already in the sequence."""
    kind = record_kind(record)
    record_ensure_changeable(user=user, record=record)
    refusal = enrollment_refusal(sequence=sequence, record=record)
    if refusal:
        raise ValidationError({f"{kind}_id": refusal})
    now = timezone.now()
    enrollment = SequenceEnrollment(
        sequence=sequence,
        enrolled_by=person(user),
        next_run_at=now,
        **{kind: record},
    )
    try:
        with transaction.atomic():
            enrollment.save()
    except IntegrityError:
        raise ValidationError(
            {f"{kind}_id": f"“{record}” is in the sequence “{sequence}” already."}
        ) from None
    _event(enrollment, "enrolled", f"Enrolled by {person(user) or 'the system'}.", at=now).save()
    if kick:
        sequences_kick()
    return enrollment


def sequence_enroll_many(*, sequence: Sequence, records: Iterable, user: Actor) -> tuple[int, list[str]]:
    """Enroll each of ``records`` that may enter; returns (how many entered, why the others did not)."""
    enrolled, refusals = 0, []
    for record in records:
        try:
            with transaction.atomic():
                sequence_enroll(sequence=sequence, record=record, user=user, kick=False)
            enrolled += 1
        except (ValidationError, PermissionDenied) as exc:
            refusals.append(" ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
    if enrolled:
        sequences_kick()
    return enrolled, refusals


def sequences_kick() -> None:
    """Run the due enrollments once this transaction commits (beat runs them every minute anyway)."""
    from crm.events.dispatch import send_after_commit
    from crm.sequences.tasks import sequence_enrollments_advance

    send_after_commit(sequence_enrollments_advance)


def enrollment_end(
    enrollment: SequenceEnrollment, *, status: str, reason: str = "", at=None, log=None
) -> SequenceEnrollment:
    """End an enrollment (the caller holds its row lock). ``log(enrollment, kind, detail)`` records
    the history entry (the runner writes its entries in one go); by default it is saved now."""
    at = at or timezone.now()
    enrollment.status = status
    enrollment.stop_reason = reason[:200]
    enrollment.next_run_at = None
    enrollment.finished_at = at
    enrollment.save(update_fields=["status", "stop_reason", "next_run_at", "finished_at", "updated_at"])
    if log is not None:
        log(enrollment, status, reason)
    else:
        _event(enrollment, status, reason, at=at).save()
    return enrollment


@transaction.atomic
def enrollment_stop(*, enrollment: SequenceEnrollment, user: Actor, reason: str = "") -> SequenceEnrollment:
    """Stop an active enrollment by hand (the user must be allowed to change its record)."""
    record_ensure_changeable(user=user, record=enrollment.record)
    enrollment = record_lock(enrollment)
    if enrollment.status != EnrollmentStatus.ACTIVE:
        raise ValidationError(
            f"This enrollment is {enrollment.get_status_display().lower()} already.", code="closed"
        )
    who = person(user) or "the system"
    return enrollment_end(
        enrollment, status=EnrollmentStatus.STOPPED, reason=reason or f"Stopped by hand by {who}."
    )


@transaction.atomic
def enrollments_stop_for(*, record, reason: str) -> int:
    """Stop every active enrollment of ``record`` (a lead converted or lost, a contact who opted out)."""
    kind = record_kind(record)
    stopped = 0
    for enrollment in SequenceEnrollment.objects.select_for_update().filter(
        status=EnrollmentStatus.ACTIVE, **{kind: record}
    ):
        enrollment_end(enrollment, status=EnrollmentStatus.STOPPED, reason=reason)
        stopped += 1
    return stopped
