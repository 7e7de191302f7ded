"""Email sent from a record (a lead, a deal, a contact, an account) and meeting invitations.

The message is written through crm's outgoing email (``outgoing_email_queue``: one Message-ID, the
opt-out rule, sending as a background task after the commit); this module chooses the recipient, fills
the template, attaches the invitation and, once the message went out, logs it as an email activity on
the record it was written from, with its Message-ID (``sent_emails_log``, registered with crm).
"""

import datetime
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone
from icalendar import Calendar, Event, vCalAddress, vText

from activities.attachables import attachable_model, record_type_of
from activities.models import (
    DEFAULT_DURATION_MINUTES,
    Activity,
    ActivityStatus,
    ActivityType,
    EmailDirection,
    EmailMessage,
)
from activities.services import activities_create_bulk, activity_create
from crm.actors import SYSTEM, Actor, person
from crm.messaging.services import (
    email_template_render,
    message_id_new,
    outgoing_email_queue,
    record_email_opted_out,
)
from crm.models import Account, Contact, EmailTemplate, Lead, OutgoingEmail
from crm.selectors import record_is_visible
from sales.models import Opportunity

logger = logging.getLogger("activities.mail")


def email_recipients(record: Model) -> list[Contact | Lead]:
    """Whom an email from ``record`` may go to: the lead itself, the contact itself, a deal's contact
    then its account's contacts, an account's contacts (the primary one first)."""
    if isinstance(record, Lead | Contact):
        return [record]
    if isinstance(record, Activity):
        found = [r for r in (record.contact, record.lead) if r is not None]
        if record.opportunity_id:
            found += email_recipients(record.opportunity)
        elif record.account_id:
            found += email_recipients(record.account)
        return list(dict.fromkeys(found))
    contacts: list[Contact] = []
    account_id = None
    if isinstance(record, Opportunity):
        if record.contact_id:
            contacts.append(record.contact)
        account_id = record.account_id
    elif isinstance(record, Account):
        account_id = record.pk
    if account_id:
        contacts += list(
            Contact.objects.filter(account_id=account_id, is_active=True)
            .exclude(email="")
            .order_by("-is_primary", "last_name", "first_name", "pk")[:50]
        )
    return list(dict.fromkeys(contacts))


def _recipient(*, user: Actor, record: Model, to: Contact | Lead | None) -> Contact | Lead:
    allowed = email_recipients(record)
    if to is None:
        to = next((r for r in allowed if r.email), None)
        if to is None:
            raise ValidationError({"to": f"“{record}” has no contact or lead with an email address."})
    elif to not in allowed:
        raise ValidationError({"to": f"“{to}” is not a contact of “{record}”."})
    if not record_is_visible(user=user, record=to):
        raise ValidationError({"to": f"“{to}” is not a contact of “{record}”."})
    if not to.email:
        raise ValidationError({"to": f"“{to}” has no email address."})
    if record_email_opted_out(to):
        raise ValidationError({"to": f"{to.email} opted out of email: nothing is sent to it."})
    return to


def _links(record: Model, recipient: Contact | Lead | None) -> dict[str, Any]:
    """The activity's links for a message about ``record`` to ``recipient``."""
    links: dict[str, Any] = {}
    if isinstance(record, Activity):
        links = {name: getattr(record, name) for name in ("lead", "opportunity", "contact", "account")}
        links = {name: value for name, value in links.items() if value is not None}
    elif isinstance(record, Lead):
        links["lead"] = record
    elif isinstance(record, Contact):
        links["contact"] = record
    elif isinstance(record, Opportunity):
        links["opportunity"] = record
        if record.account_id:
            links["account"] = record.account
    elif isinstance(record, Account):
        links["account"] = record
    if isinstance(recipient, Contact):
        links.setdefault("contact", recipient)
        if recipient.account_id:
            links.setdefault("account", recipient.account)
    elif isinstance(recipient, Lead):
        links.setdefault("lead", recipient)
    return links


@transaction.atomic
def email_compose(
    *,
    user: Actor,
    record: Model,
    to: Contact | Lead | None = None,
    template: EmailTemplate | None = None,
    subject: str = "",
    body: str = "",
    calendar: str = "",
) -> EmailMessage:
    """Email the contact or lead of ``record`` (one the user sees): from ``template`` (filled from the
    recipient), or with ``subject`` and ``body`` (plain text; either overrides the template's). Sent
    by a background task once this commits, then logged as an email activity on ``record``. An address
    that opted out is refused (400 on ``to``)."""
    record_type = record_type_of(record)
    if record_type is None:
        raise ValidationError({"record_type": "Email is sent from a lead, a deal, a contact or an account."})
    recipient = _recipient(user=user, record=record, to=to)
    html = ""
    if template is not None:
        if not template.is_active:
            raise ValidationError({"template": f"The email template “{template}” is inactive."})
        rendered = email_template_render(template=template, record=recipient, user=user)
        subject = subject.strip() or rendered.subject
        if not body.strip():
            body, html = rendered.text, rendered.html
    errors = {}
    if not subject.strip():
        errors["subject"] = "Write a subject, or choose a template."
    if not body.strip():
        errors["body"] = "Write the message, or choose a template."
    if errors:
        raise ValidationError(errors)
    email = outgoing_email_queue(
        record=recipient,
        user=user,
        subject=subject.strip(),
        body_text=body,
        body_html=html,
        template=template,
        calendar=calendar,
    )
    message = EmailMessage(
        direction=EmailDirection.OUTBOUND,
        message_id=email.message_id,
        outgoing=email,
        record_type=record_type,
        record_id=record.pk,
        from_address=settings.DEFAULT_FROM_EMAIL,
        to_addresses=email.to,
        subject=email.subject,
    )
    message.full_clean(exclude=["outgoing", "mailbox"])
    message.save()
    return message


def invitation_ics(*, activity: Activity, organizer, attendee: str, domain: str) -> str:
    """An iCalendar request (RFC 5546 METHOD:REQUEST) for the meeting ``activity``, to ``attendee``."""
    start = activity.due_date
    end = start + datetime.timedelta(minutes=activity.duration_minutes or DEFAULT_DURATION_MINUTES)
    calendar = Calendar()
    calendar.add("prodid", "-//CRM//Meeting invitation//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "REQUEST")
    event = Event()
    event.add("uid", f"activity-{activity.pk}@{domain}")  # the same event as in the owner's feed
    event.add("dtstamp", timezone.now())
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", activity.subject)
    if activity.description:
        event.add("description", activity.description)
    event.add("sequence", 0)
    event.add("status", "CONFIRMED")
    organizer_address = vCalAddress(f"mailto:{organizer[1]}")
    organizer_address.params["cn"] = vText(organizer[0])
    event.add("organizer", organizer_address)
    guest = vCalAddress(f"mailto:{attendee}")
    guest.params.update({"role": vText("REQ-PARTICIPANT"), "partstat": vText("NEEDS-ACTION"), "rsvp": "TRUE"})
    event.add("attendee", guest)
    if activity.recurrence:
        event.add("rrule", _rrule_dict(activity.recurrence))
    calendar.add_component(event)
    return calendar.to_ical().decode()


def _rrule_dict(value: str) -> dict[str, str]:
    parts = value.strip().removeprefix("RRULE:").split(";")
    return dict(part.split("=", 1) for part in parts if "=" in part)


@transaction.atomic
def activity_invitation_send(
    *, user: Actor, activity: Activity, to: Contact | Lead | None = None, body: str = ""
) -> EmailMessage:
    """Send the meeting ``activity`` as an invitation (an ``invite.ics`` attachment that calendars
    accept) to its contact or lead; logged, once sent, as an email activity on the meeting's records."""
    if activity.activity_type != ActivityType.MEETING:
        raise ValidationError({"activity": "Only a meeting is sent as an invitation."})
    if activity.due_date is None:
        raise ValidationError({"due_date": "Give the meeting a date and time before inviting anyone."})
    if activity.status == ActivityStatus.CANCELLED:
        raise ValidationError({"status": "The meeting is cancelled."})
    recipient = _recipient(user=user, record=activity, to=to)
    sender = person(user) or activity.owner
    organizer_name = (sender.get_full_name() or sender.get_username()) if sender else "CRM"
    organizer_email = (sender.email if sender and sender.email else "") or settings.DEFAULT_FROM_EMAIL
    domain = settings.CRM_BASE_URL.split("//")[-1].split("/")[0].split(":")[0] or "crm.invalid"
    when = timezone.localtime(activity.due_date)
    text = (
        body.strip()
        or (
            f"{organizer_name} invites you to “{activity.subject}” on {when:%A %d %B %Y at %H:%M %Z} "
            f"({activity.duration_minutes or DEFAULT_DURATION_MINUTES} minutes).\n\n{activity.description}"
        ).strip()
    )
    return email_compose(
        user=user,
        record=activity,
        to=recipient,
        subject=f"Invitation: {activity.subject}",
        body=text,
        calendar=invitation_ics(
            activity=activity,
            organizer=(organizer_name, organizer_email),
            attendee=recipient.email,
            domain=domain,
        ),
    )


def _source_record(message: EmailMessage) -> Model | None:
    try:
        model = attachable_model(message.record_type)
    except ValidationError:
        return None
    return model._default_manager.filter(pk=message.record_id).first()


def sent_emails_log(*, emails: list[OutgoingEmail]) -> None:
    """Each message crm sent becomes an email activity (completed when it went out) on the record it
    was written from, and is kept with its Message-ID so that replies join its thread. Registered with
    crm (``register_sent_email_logger``): template emails of sequences and automations come here too."""
    by_outgoing = {m.outgoing_id: m for m in EmailMessage.objects.filter(outgoing__in=[e.pk for e in emails])}
    fresh = [e for e in emails if e.pk not in by_outgoing and (e.lead or e.contact) is not None]
    if len(fresh) > 1:
        # A batch (a sequence's, a campaign's): its messages and activities in a few statements.
        try:
            with transaction.atomic():
                _sent_emails_log_bulk(fresh)
            emails = [e for e in emails if e not in fresh]
        except Exception:
            logger.exception("Could not log %s sent emails at once; logging them one by one", len(fresh))
    for email in emails:
        try:
            with transaction.atomic():
                _sent_email_log(email, by_outgoing.get(email.pk))
        except Exception:
            logger.exception("Could not log the sent email %s on its record", email.pk)


def _sent_emails_log_bulk(emails: list[OutgoingEmail]) -> None:
    """New sent messages, each to its lead or contact: their EmailMessage rows in one INSERT (a
    Message-ID logged already fails the batch, which the caller then logs one by one) and their
    activities through the bulk activity service, grouped by who sent them."""
    now = timezone.now()
    messages = [
        EmailMessage(
            direction=EmailDirection.OUTBOUND,
            message_id=email.message_id or message_id_new(),
            outgoing=email,
            record_type="lead" if email.lead_id else "contact",
            record_id=(email.lead or email.contact).pk,
            from_address=settings.DEFAULT_FROM_EMAIL,
            to_addresses=email.to,
            subject=email.subject,
            sent_at=email.sent_at or now,
        )
        for email in emails
    ]
    EmailMessage.objects.bulk_create(messages)
    by_sender: dict[Any, list[tuple[OutgoingEmail, EmailMessage]]] = {}
    for email, message in zip(emails, messages, strict=True):
        by_sender.setdefault(email.sent_by, []).append((email, message))
    links = []
    for sender, pairs in by_sender.items():
        rows = []
        for email, message in pairs:
            recipient = email.lead or email.contact
            rows.append(
                {
                    **_links(recipient, recipient),
                    "activity_type": ActivityType.EMAIL,
                    "subject": email.subject[:200],
                    "description": email.body_text,
                    "due_date": message.sent_at,
                    "status": ActivityStatus.COMPLETED,
                    "completed_at": message.sent_at,
                    "owner": sender or getattr(recipient, "owner", None),
                }
            )
        # Logged as the person who sent them; the system's own sends by the system.
        activities = activities_create_bulk(user=sender or SYSTEM, rows=rows)
        through = EmailMessage.activities.through
        links.extend(
            through(emailmessage_id=message.pk, activity_id=activity.pk)
            for (_, message), activity in zip(pairs, activities, strict=True)
        )
    EmailMessage.activities.through.objects.bulk_create(links)


def _sent_email_log(email: OutgoingEmail, message: EmailMessage | None) -> None:
    recipient = email.lead or email.contact
    if message is None:
        if recipient is None:
            return
        message = EmailMessage(
            direction=EmailDirection.OUTBOUND,
            message_id=email.message_id or message_id_new(),
            outgoing=email,
            record_type="lead" if email.lead_id else "contact",
            record_id=recipient.pk,
            from_address=settings.DEFAULT_FROM_EMAIL,
            to_addresses=email.to,
            subject=email.subject,
        )
        try:
            with transaction.atomic():
                message.save()
        except IntegrityError:
            return  # logged already
    elif message.activities.exists():
        return
    record = _source_record(message) or recipient
    if record is None:
        return
    sent_at = email.sent_at or timezone.now()
    owner = email.sent_by or getattr(record, "owner", None) or getattr(recipient, "owner", None)
    # Logged as the person who sent it (their own email on their timeline: no "assigned to you"
    # notification); the system's own sends (sequences, automations) are logged by the system.
    activity = activity_create(
        user=email.sent_by or SYSTEM,
        data={
            **_links(record, recipient),
            "activity_type": ActivityType.EMAIL,
            "subject": email.subject[:200],
            "description": email.body_text,
            "due_date": sent_at,
            "status": ActivityStatus.COMPLETED,
            "completed_at": sent_at,
            "owner": owner,
        },
    )
    message.sent_at = sent_at
    message.save(update_fields=["sent_at"])
    message.activities.add(activity)
