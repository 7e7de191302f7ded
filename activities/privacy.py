"""The activities app's personal data for crm's privacy requests: activities on the person's records,
notes and files on them, emails to and from them, their tickets (their audit trail and events too) and
the messages of those tickets."""

from django.db import transaction
from django.db.models import Q, QuerySet

from activities.models import Activity, Attachment, EmailMessage, Note, Ticket, TicketMessage
from crm.models import OutboxEvent
from crm.privacy.registry import Person, PersonalData, register_personal_data, register_text_copies
from crm.privacy.services import ERASED
from crm.privacy.sources import _event_payloads_erase


def _on_records(person: Person) -> Q:
    """Notes and files on the person's leads, contacts, activities, tickets and ticket messages."""
    q = person.record_q()
    for record_type, key in (
        ("activity", "activities"),
        ("ticket", "tickets"),
        ("ticket_message", "ticket_messages"),
    ):
        q |= Q(record_type=record_type, record_id__in=person.found.get(key, []))
    return q


def _emails(person: Person) -> Q:
    q = person.record_q() | Q(activities__in=person.found.get("activities", []))
    for email in person.emails:
        q |= (
            Q(from_address__icontains=email)
            | Q(to_addresses__icontains=email)
            | Q(cc_addresses__icontains=email)
        )
    return q


def _attachments_remove(queryset: QuerySet, person: Person) -> None:
    """The stored files go once the rows are gone for good (after the commit)."""
    files = [(a.file.storage, a.file.name) for a in queryset if a.file]

    def remove():
        for storage, name in files:
            storage.delete(name)

    transaction.on_commit(remove)


def register() -> None:
    register_personal_data(
        PersonalData(
            key="activities",
            model=Activity,
            find=lambda p: Activity.objects.filter(
                Q(lead_id__in=sorted(p.lead_ids)) | Q(contact_id__in=sorted(p.contact_ids))
            ),
            # The type, dates and status stay: activity counts and reports name no one.
            erase={"description": ""},
            scrub=("subject",),
        )
    )
    register_personal_data(
        PersonalData(
            key="tickets",
            model=Ticket,
            find=lambda p: Ticket.objects.filter(
                Q(contact_id__in=sorted(p.contact_ids)) | p.email_q("requester_email")
            ),
            erase={"description": "", "requester_email": ""},
            scrub=("subject",),
        )
    )
    register_personal_data(
        PersonalData(
            # The tickets' events (ticket.created...) carry a copy of the ticket, its requester's too.
            key="ticket_events",
            model=OutboxEvent,
            find=lambda p: OutboxEvent.objects.filter(
                record_type="ticket", record_id__in=p.found.get("tickets", [])
            ),
            erase={"last_error": ""},
            anonymise=_event_payloads_erase,
        )
    )
    register_personal_data(
        PersonalData(
            key="ticket_messages",
            model=TicketMessage,
            find=lambda p: TicketMessage.objects.filter(
                Q(ticket_id__in=p.found.get("tickets", [])) | p.email_q("sender_email")
            ),
            erase={"body": ERASED, "sender_email": ""},
        )
    )
    register_personal_data(
        PersonalData(
            key="emails",
            model=EmailMessage,
            find=lambda p: EmailMessage.objects.filter(
                pk__in=EmailMessage.objects.filter(_emails(p)).values("pk")
            ),
            erase={"from_address": "", "to_addresses": "", "cc_addresses": ""},
            scrub=("subject", "skipped"),
        )
    )
    register_personal_data(
        PersonalData(
            key="notes",
            model=Note,
            find=lambda p: Note.objects.filter(_on_records(p)),
            erase={"body": ERASED, "body_html": ""},
        )
    )
    register_personal_data(
        PersonalData(
            key="files",
            model=Attachment,
            find=lambda p: Attachment.objects.filter(_on_records(p)),
            # A file's contents cannot be anonymised: it is removed, with its row.
            anonymise=_attachments_remove,
            delete=True,
        )
    )
    # Activities and notes elsewhere (on an account, a deal) that mention the person.
    register_text_copies(Activity, ("subject", "description"))
    register_text_copies(Note, ("body", "body_html"))
    register_text_copies(Ticket, ("subject", "description"))
    register_text_copies(TicketMessage, ("body",))
    register_text_copies(EmailMessage, ("subject", "from_address", "to_addresses", "cc_addresses", "skipped"))
