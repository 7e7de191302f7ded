"""How tickets come in besides the admin and the API: the public support form and raw email posted by a
mail forwarder (a new ticket, or a reply threaded onto its ticket by the number in the subject or by
``In-Reply-To``/``References``); and how agents' public replies go out by email, threadable back."""

import email
import email.policy
import email.utils
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.mail import EmailMessage
from django.db import transaction

from activities.mail.inbound import without_nulls
from activities.service.models import Ticket, TicketChannel, TicketMessage, TicketStatus
from activities.service.services import ticket_create, ticket_message_create
from crm.actors import SYSTEM
from crm.models import Contact
from crm.selectors import with_email

NUMBER = re.compile(r"\bT-(\d{6,})\b")
MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def _contact_of(address: str) -> Contact | None:
    return with_email(Contact.objects.all(), address).select_related("account").order_by("pk").first()


@transaction.atomic
def ticket_from_web_form(*, name: str, email_address: str, subject: str, body: str) -> Ticket:
    """A ticket from the public form: the requester matched to a contact by email when one exists."""
    contact = _contact_of(email_address)
    data = {
        "subject": subject[:200],
        "description": body,
        "channel": TicketChannel.WEB,
        "requester_email": email_address,
        "contact": contact,
    }
    ticket = ticket_create(user=SYSTEM, data=data)
    ticket_message_create(
        ticket=ticket, user=SYSTEM, body=body, from_customer=True, sender_email=email_address
    )
    return ticket


@dataclass
class Inbound:
    ticket: Ticket
    created: bool
    message: TicketMessage


def _header_text(value) -> str:
    """A header as text, without null characters (see ``without_nulls``)."""
    return without_nulls(str(value))


def _text_of(message) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = part.get_content()
    if part.get_content_type() == "text/html":
        text = re.sub(r"<[^>]+>", " ", text)
    return text.strip()


def _uploads_of(message) -> list[SimpleUploadedFile]:
    uploads = []
    for part in message.iter_attachments():
        name = part.get_filename()
        content = part.get_payload(decode=True)
        if name and content:
            uploads.append(SimpleUploadedFile(name, content, content_type=part.get_content_type()))
    return uploads


def _thread_of(subject: str, references: list[str]) -> Ticket | None:
    match = NUMBER.search(subject)
    if match:
        ticket = Ticket.objects.filter(number=f"T-{int(match.group(1)):06d}").first()
        if ticket is not None:
            return ticket
    if references:
        known = TicketMessage.objects.filter(message_id__in=references).select_related("ticket")
        message = known.order_by("-created_at").first()
        if message is not None:
            return message.ticket
    return None


def ticket_from_email(*, raw: bytes) -> Inbound:
    """Thread a raw RFC 5322 message onto its ticket, or open one. A reply to a closed ticket opens a
    new ticket (a closed one stays closed). Files the settings refuse are left out, named in the text."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        sender = email.utils.parseaddr(_header_text(message.get("From", "")))[1].strip().lower()
        subject = _header_text(message.get("Subject", "")).strip() or "(no subject)"
        message_id = _header_text(message.get("Message-ID", "")).strip()
        threading = f"{message.get('In-Reply-To', '')} {message.get('References', '')}"
        references = MESSAGE_ID.findall(_header_text(threading))
        body = without_nulls(_text_of(message))
        uploads = _uploads_of(message)
    except (ValueError, TypeError, LookupError, UnicodeError, AttributeError) as exc:
        raise ValidationError({"message": f"Not a message that can be read: {exc}."}) from exc
    if not sender or "@" not in sender:
        raise ValidationError({"From": "The message has no sender address."})
    if message_id and TicketMessage.objects.filter(message_id=message_id).exists():
        # The forwarder posted it twice: the first post stands.
        known = TicketMessage.objects.select_related("ticket").filter(message_id=message_id).first()
        return Inbound(ticket=known.ticket, created=False, message=known)
    from activities.services import attachment_check

    accepted, refused = [], []
    for upload in uploads:
        try:
            attachment_check(upload=upload)
        except ValidationError:
            refused.append(upload.name)
        else:
            accepted.append(upload)
    if refused:
        body += f"\n\n[Attachments not kept: {', '.join(refused)}]"
    body = body or "(empty message)"
    with transaction.atomic():
        ticket = _thread_of(subject, references)
        created = ticket is None or ticket.status == TicketStatus.CLOSED
        if created:
            contact = _contact_of(sender)
            ticket = ticket_create(
                user=SYSTEM,
                data={
                    "subject": subject[:200],
                    "description": body,
                    "channel": TicketChannel.EMAIL,
                    "requester_email": sender,
                    "contact": contact,
                },
            )
        posted = ticket_message_create(
            ticket=ticket,
            user=SYSTEM,
            body=body,
            from_customer=True,
            sender_email=sender,
            message_id=message_id,
            uploads=accepted or None,
        )
    return Inbound(ticket=ticket, created=created, message=posted)


def ticket_reply_email_send(*, message_id: int) -> None:
    """Email an agent's public reply to the ticket's requester, with the number in the subject and the
    thread's headers, so the customer's answer comes back onto the ticket. Runs after commit."""
    reply = TicketMessage.objects.select_related("ticket__contact").filter(pk=message_id).first()
    if reply is None:
        return
    ticket = reply.ticket
    to = (
        ticket.contact.email if ticket.contact_id and ticket.contact.email else ""
    ) or ticket.requester_email
    if not to:
        return
    earlier = list(
        TicketMessage.objects.filter(ticket=ticket, created_at__lte=reply.created_at)
        .exclude(pk=reply.pk)
        .exclude(message_id="")
        .order_by("created_at")
        .values_list("message_id", flat=True)
    )
    headers = {"Message-ID": reply.message_id}
    if earlier:
        headers.update({"In-Reply-To": earlier[-1], "References": " ".join(earlier[-10:])})
    EmailMessage(
        subject=f"[{ticket.number}] {ticket.subject}",
        body=reply.body,
        from_email=settings.CRM_SUPPORT_EMAIL or settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=headers,
    ).send()
