"""The writes of email templates and outgoing email: manage templates, send one to a record, deliver.

``email_template_send`` is the one way to email a record from a template (a sequence's step, the
automation rules, the API): it renders the message now, writes it as an ``OutgoingEmail`` in the
caller's transaction and sends it once that commits. An address that opted out is never emailed.
"""

import datetime
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from email.mime.text import MIMEText
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from crm import registries
from crm.actors import Actor, is_system, person
from crm.messaging.context import record_context, record_kind
from crm.messaging.rendering import Rendered, sanitize_html, template_check, template_render
from crm.models import (
    Contact,
    EmailTemplate,
    EmailUnsubscribe,
    ExclusionReason,
    OutgoingEmail,
    OutgoingEmailStatus,
)
from crm.services import record_delete, record_lock, record_save

logger = logging.getLogger("crm.messaging")

TEMPLATE_FIELDS = ("subject", "body_html", "body_text")


def _ensure_perm(user: Actor, action: str, model: str) -> None:
    if not user.has_perm(f"crm.{action}_{model}"):
        raise PermissionDenied(f"You may not {action} {model.replace('email', 'email ')}s.")


def _template_clean(data: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if data.get("body_html"):
        data["body_html"] = sanitize_html(data["body_html"])
    template_check({name: data[name] for name in TEMPLATE_FIELDS if data.get(name)})
    return data


@transaction.atomic
def email_template_create(*, user: Actor, data: Mapping[str, Any]) -> EmailTemplate:
    """A new template; an unknown placeholder, a refused tag or bad syntax is refused, by field."""
    _ensure_perm(user, "add", "emailtemplate")
    return record_save(instance=EmailTemplate(), data=_template_clean(data), user=user)


@transaction.atomic
def email_template_update(*, template: EmailTemplate, user: Actor, data: Mapping[str, Any]) -> EmailTemplate:
    _ensure_perm(user, "change", "emailtemplate")
    template = record_lock(template)
    return record_save(instance=template, data=_template_clean(data), user=user)


@transaction.atomic
def email_template_delete(*, template: EmailTemplate, user: Actor) -> None:
    """Delete a template; one a sequence's step sends is kept (409, naming the sequences)."""
    _ensure_perm(user, "delete", "emailtemplate")
    record_delete(instance=template, user=user)


def _ensure_visible(user: Actor, record) -> None:
    if is_system(user):
        return
    from crm.selectors import record_is_visible

    if not record_is_visible(user=user, record=record):
        raise PermissionDenied("You cannot see this record.")


def _sender(user: Actor, record):
    return person(user) or getattr(record, "owner", None)


def email_template_render(
    *, template: EmailTemplate, record, user: Actor, extra_context: Mapping[str, Any] | None = None
) -> Rendered:
    """The message ``template`` makes for ``record``: subject, HTML and plain text. Writes nothing.
    ``extra_context`` fills placeholders the sender knows (a campaign's ``campaign.preferences_url``)."""
    _ensure_visible(user, record)
    context = record_context(record, sender=_sender(user, record))
    context.update(extra_context or {})
    return template_render(
        subject=template.subject, body_html=template.body_html, body_text=template.body_text, context=context
    )


# A preview is a render: it reads the record and writes nothing.
email_template_preview = email_template_render


def email_addresses_opted_out(addresses: Iterable[str]) -> set[str]:
    """Which of ``addresses`` (lowercased) belong to a contact who opted out of email, or unsubscribed
    from a campaign: never emailed, whatever record (a lead, another contact) carries the address."""
    lowered = {address.strip().lower() for address in addresses if address}
    if not lowered:
        return set()
    opted_out = set(
        Contact.objects.annotate(address=Lower("email"))
        .filter(address__in=lowered, email_opt_out=True)
        .values_list("address", flat=True)
    )
    # An address unsubscribed from the campaigns' link is out of every sender's reach too.
    return opted_out | set(EmailUnsubscribe.objects.filter(email__in=lowered).values_list("email", flat=True))


def record_email_opted_out(record) -> bool:
    if getattr(record, "email_opt_out", False):
        return True
    return bool(record.email and email_addresses_opted_out([record.email]))


def email_template_message(
    *,
    template: EmailTemplate,
    record,
    user: Actor,
    to: str | None = None,
    enrollment=None,
    opted_out: set[str] | None = None,
    headers: Mapping[str, str] | None = None,
    finish: Callable[[Rendered], Rendered] | None = None,
    extra_context: Mapping[str, Any] | None = None,
    purpose=None,
    refusals: Mapping[tuple[str, int], str] | None = None,
) -> OutgoingEmail:
    """The ``OutgoingEmail`` (not saved yet) that ``template`` makes for ``record`` (a lead or a
    contact), to ``to`` or the record's address: queued, or ``suppressed`` when the address opted
    out. ``opted_out``: the opted-out addresses (lowercased) already read for a batch of records,
    else they are read here. ``headers`` go on the message; ``finish`` may change the rendered
    message. It gets its Message-ID now. Raises ValidationError for an inactive template or no address.

    A message to the person's own address is marketing (a template the CRM sends on its own): it is
    ``suppressed`` too when the consent service refuses it (``email_refusal``: email turned off in
    their preferences, no consent in force for ``purpose``), the reason in its ``error``.
    ``refusals``: those reasons already read for a batch of records (``email_refusals``)."""
    kind = record_kind(record)
    _ensure_visible(user, record)
    if not template.is_active:
        raise ValidationError({"template": f"The email template “{template}” is inactive."})
    address = (to or record.email or "").strip()
    if not address:
        raise ValidationError({"to": f"The {kind} “{record}” has no email address."})
    rendered = email_template_render(template=template, record=record, user=user, extra_context=extra_context)
    if finish is not None:
        rendered = finish(rendered)
    if opted_out is None:
        suppressed = record_email_opted_out(record) or bool(email_addresses_opted_out([address]))
    else:
        suppressed = (
            getattr(record, "email_opt_out", False)
            or address.lower() in opted_out
            or bool(record.email and record.email.strip().lower() in opted_out)
        )
    refused = None
    if address.lower() == (record.email or "").strip().lower():
        from crm.consent.services import email_refusal

        if refusals is None:
            refused = email_refusal(record, purpose=purpose)
        else:
            refused = refusals.get((kind, record.pk))
    return OutgoingEmail(
        template=template,
        lead=record if kind == "lead" else None,
        contact=record if kind == "contact" else None,
        enrollment=enrollment,
        to=address,
        subject=rendered.subject[:255],
        body_html=rendered.html,
        body_text=rendered.text,
        status=OutgoingEmailStatus.SUPPRESSED if suppressed or refused else OutgoingEmailStatus.QUEUED,
        # An opt-out says so as it always has (no error); the consent service's other reasons are kept.
        error=ExclusionReason(refused).label if refused and not suppressed else "",
        headers=dict(headers or {}),
        sent_by=person(user),
        message_id=message_id_new(),
    )


def email_template_send(
    *,
    template: EmailTemplate,
    record,
    user: Actor,
    to: str | None = None,
    enrollment=None,
    send: bool = True,
    headers: Mapping[str, str] | None = None,
    finish: Callable[[Rendered], Rendered] | None = None,
    extra_context: Mapping[str, Any] | None = None,
    purpose=None,
    refusals: Mapping[tuple[str, int], str] | None = None,
) -> OutgoingEmail:
    """Email ``record`` (a lead or a contact) the message ``template`` makes for it, to ``to`` or the
    record's address. Returns the ``OutgoingEmail``: queued (sent after the caller's transaction
    commits), or ``suppressed`` when the address opted out or the consent service refuses marketing
    email to the person (``purpose``, ``refusals``: as ``email_template_message``; nothing is sent).
    ``send=False`` leaves sending to the caller (``outgoing_emails_send``), which batches many
    messages on one connection.
    ``headers`` go on the message as they are; ``finish`` may change the rendered message (a campaign
    adds its unsubscribe footer and tracked links)."""
    email = email_template_message(
        template=template,
        record=record,
        user=user,
        to=to,
        enrollment=enrollment,
        headers=headers,
        finish=finish,
        extra_context=extra_context,
        purpose=purpose,
        refusals=refusals,
    )
    email.save()
    if send and email.status == OutgoingEmailStatus.QUEUED:
        from crm.events.dispatch import send_after_commit
        from crm.messaging.tasks import outgoing_email_send

        send_after_commit(outgoing_email_send, email.pk)
    return email


def message_id_new() -> str:
    """A Message-ID in the CRM's own domain (the host of CRM_BASE_URL)."""
    domain = urlparse(settings.CRM_BASE_URL).hostname or "crm.invalid"
    return make_msgid(domain=domain)


def outgoing_email_queue(
    *,
    record,
    user: Actor,
    subject: str,
    body_text: str,
    body_html: str = "",
    to: str | None = None,
    template: EmailTemplate | None = None,
    enrollment=None,
    calendar: str = "",
    send: bool = True,
    headers: Mapping[str, str] | None = None,
) -> OutgoingEmail:
    """Write one message to ``record`` (a lead or a contact), to ``to`` or the record's address, and
    send it once the caller's transaction commits (a background task). It gets its Message-ID now.
    An address that opted out is never emailed: the message is kept as ``suppressed``."""
    kind = record_kind(record)
    _ensure_visible(user, record)
    address = (to or record.email or "").strip()
    if not address:
        raise ValidationError({"to": f"The {kind} “{record}” has no email address."})
    suppressed = record_email_opted_out(record) or bool(email_addresses_opted_out([address]))
    email = OutgoingEmail(
        template=template,
        lead=record if kind == "lead" else None,
        contact=record if kind == "contact" else None,
        enrollment=enrollment,
        to=address,
        subject=subject[:255],
        body_html=body_html,
        body_text=body_text,
        status=OutgoingEmailStatus.SUPPRESSED if suppressed else OutgoingEmailStatus.QUEUED,
        headers=dict(headers or {}),
        sent_by=person(user),
        message_id=message_id_new(),
        calendar=calendar,
    )
    try:
        validate_email(address)
    except ValidationError as exc:
        raise ValidationError({"to": f"“{address}” is not an email address."}) from exc
    email.save()
    if send and not suppressed:
        from crm.events.dispatch import send_after_commit
        from crm.messaging.tasks import outgoing_email_send

        send_after_commit(outgoing_email_send, email.pk)
    return email


def outgoing_emails_queue(*, emails: list[OutgoingEmail]) -> list[OutgoingEmail]:
    """Write many messages built by ``email_template_message`` in one ``INSERT``; the caller sends
    them (``outgoing_emails_send``) once its transaction commits."""
    return OutgoingEmail.objects.bulk_create(emails, batch_size=1000)


def _message(email: OutgoingEmail, connection) -> EmailMultiAlternatives:
    headers = {**(email.headers or {}), **({"Message-ID": email.message_id} if email.message_id else {})}
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.body_text,
        to=[email.to],
        connection=connection,
        headers=headers or None,
    )
    if email.body_html:
        message.attach_alternative(email.body_html, "text/html")
    if email.calendar:
        invitation = MIMEText(email.calendar, "calendar", "utf-8")
        invitation.set_param("method", "REQUEST")
        invitation.add_header("Content-Disposition", "attachment", filename="invite.ics")
        message.attach(invitation)
    return message


def outgoing_emails_send(*, ids: Iterable[int]) -> int:
    """Send the queued messages among ``ids`` on one connection; returns how many went out.

    Each is claimed first (queued → sending, under a token of this run), so two senders handed the
    same ids send each message once. The opt-out is checked again just before sending: an address
    that opted out since the message was queued is not emailed. Each message sent is logged as an
    email activity on its record's timeline."""
    ids = list(ids)
    if not ids:
        return 0
    token = uuid.uuid4().hex
    claimed = OutgoingEmail.objects.filter(pk__in=ids, status=OutgoingEmailStatus.QUEUED).update(
        status=OutgoingEmailStatus.SENDING, claim=token, claimed_at=timezone.now()
    )
    if not claimed:
        return 0
    emails = list(OutgoingEmail.objects.filter(claim=token).select_related("lead__owner", "contact__owner"))
    opted_out = email_addresses_opted_out(email.to for email in emails)
    sent, failed, suppressed = [], {}, []
    to_send = []
    for email in emails:
        record = email.lead or email.contact
        if email.to.lower() in opted_out or (record is not None and getattr(record, "email_opt_out", False)):
            suppressed.append(email.pk)
        else:
            to_send.append(email)
    if to_send:
        try:
            connection = get_connection()
            connection.open()
        except Exception as exc:  # the server is down: every message fails now, visibly
            failed = {email.pk: f"{type(exc).__name__}: {exc}" for email in to_send}
            to_send, connection = [], None
        try:
            for email in to_send:
                try:
                    _message(email, connection).send()
                    sent.append(email)
                except Exception as exc:
                    logger.warning("Email %s to %s failed: %s", email.pk, email.to, exc)
                    failed[email.pk] = f"{type(exc).__name__}: {exc}"
        finally:
            if connection is not None:
                connection.close()
    now = timezone.now()
    OutgoingEmail.objects.filter(pk__in=[e.pk for e in sent]).update(
        status=OutgoingEmailStatus.SENT, sent_at=now
    )
    OutgoingEmail.objects.filter(pk__in=suppressed).update(status=OutgoingEmailStatus.SUPPRESSED)
    for pk, error in failed.items():
        OutgoingEmail.objects.filter(pk=pk).update(status=OutgoingEmailStatus.FAILED, error=error[:2000])
    _failures_on_enrollments(failed)
    _log_sent(sent)
    return len(sent)


def _failures_on_enrollments(failed: Mapping[int, str]) -> None:
    if not failed:
        return
    from crm.models import EnrollmentEvent

    now = timezone.now()
    rows = OutgoingEmail.objects.filter(pk__in=list(failed), enrollment__isnull=False)
    EnrollmentEvent.objects.bulk_create(
        EnrollmentEvent(
            enrollment_id=enrollment_id, at=now, kind="email_failed", detail=f"{subject}: {failed[pk]}"
        )
        for pk, enrollment_id, subject in rows.values_list("pk", "enrollment_id", "subject")
    )
    from crm.models import SequenceEnrollment

    for pk, enrollment_id in rows.values_list("pk", "enrollment_id"):
        SequenceEnrollment.objects.filter(pk=enrollment_id).update(
            last_error=f"Email failed: {failed[pk]}"[:2000]
        )


def _log_sent(sent: list[OutgoingEmail]) -> None:
    """Each email sent shows on its record's timeline, as an email activity: through the app that
    logs emails (with their Message-IDs) when one registered, else all written together, or one by
    one (each on its own) if that fails."""
    if not sent:
        return
    logger_of_sent = registries.sent_email_logger()
    if logger_of_sent is not None:
        try:
            logger_of_sent(emails=sent)
        except Exception:
            logger.exception("Could not log the emails %s sent", [email.pk for email in sent])
        return
    if not registries.activity_writer_registered():
        return
    from crm.actors import SYSTEM

    items = [
        {
            "record": email.lead or email.contact,
            "activity_type": "email",
            "subject": email.subject,
            "description": email.body_text,
            "completed": True,
        }
        for email in sent
        if (email.lead or email.contact) is not None
    ]
    if not items:
        return
    try:
        with transaction.atomic():
            registries.activities_write(user=SYSTEM, items=items)
        return
    except Exception:
        logger.exception("Could not log %s emails at once; logging them one by one", len(items))
    for item in items:
        try:
            with transaction.atomic():
                registries.activity_write(user=SYSTEM, **item)
        except Exception:
            logger.exception("Could not log an email to %s on its record's timeline", item["record"])


def outgoing_email_send(*, email_id: int) -> int:
    return outgoing_emails_send(ids=[email_id])


INTERRUPTED = (
    "Interrupted: the worker sending it stopped before saying whether the server took it, so it may or "
    "may not have gone out. It is not sent again by itself (at most once); retry it to send it again."
)


def outgoing_emails_mark_interrupted(*, now: datetime.datetime | None = None) -> int:
    """Messages left “sending” longer than a job's lease (CRM_JOB_LEASE: their sender died between
    the claim and the result) become failed with INTERRUPTED as their error, so they show among the
    failures with a retry action instead of staying “sending” for ever. Returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.CRM_JOB_LEASE)
    stuck = dict(
        OutgoingEmail.objects.filter(status=OutgoingEmailStatus.SENDING)
        .filter(Q(claimed_at__lt=cutoff) | Q(claimed_at__isnull=True))
        .values_list("pk", "claim")
    )
    failed = {}
    for pk, claim in stuck.items():
        # The claim in the filter: a sender that reports meanwhile keeps its own result.
        if OutgoingEmail.objects.filter(pk=pk, status=OutgoingEmailStatus.SENDING, claim=claim).update(
            status=OutgoingEmailStatus.FAILED, error=INTERRUPTED
        ):
            failed[pk] = INTERRUPTED
    if failed:
        logger.warning("%s outgoing email(s) interrupted while sending: %s", len(failed), sorted(failed))
    _failures_on_enrollments(failed)
    return len(failed)


@transaction.atomic
def outgoing_email_retry(*, email: OutgoingEmail, user: Actor) -> OutgoingEmail:
    """Queue a failed message again (an interrupted one, or one the server refused); it is sent once
    the transaction commits. Only failed messages can be retried."""
    email = OutgoingEmail.objects.select_for_update().get(pk=email.pk)
    if email.status != OutgoingEmailStatus.FAILED:
        raise ValidationError(
            f"Only a failed email can be sent again; this one is {email.get_status_display().lower()}.",
            code="closed",
        )
    email.status, email.error, email.claim, email.claimed_at = OutgoingEmailStatus.QUEUED, "", "", None
    email.save(update_fields=["status", "error", "claim", "claimed_at"])
    from crm.events.dispatch import send_after_commit
    from crm.messaging.tasks import outgoing_email_send

    send_after_commit(outgoing_email_send, email.pk)
    return email


def outgoing_emails_queued(*, older_than_seconds: float = 60.0, limit: int = 500) -> list[int]:
    """Messages still queued a while after they were written (their sender died before sending)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        OutgoingEmail.objects.filter(status=OutgoingEmailStatus.QUEUED, created_at__lt=cutoff)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
