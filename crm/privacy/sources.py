"""crm's own personal data for privacy requests: leads, contacts, campaign members, sent emails, the
unsubscribe list, sequence enrollments, the outbox, and the free text that may quote a person."""

from django.contrib.admin.models import LogEntry
from django.db import models

from crm.models import (
    AutomationRun,
    CampaignMember,
    Contact,
    EmailUnsubscribe,
    EnrollmentEvent,
    Job,
    Lead,
    Notification,
    OutboxEvent,
    OutgoingEmail,
    PrivacyRequest,
    PrivacyRequestKind,
    Segment,
    SequenceEnrollment,
    WebhookAttempt,
    WebhookDelivery,
)
from crm.privacy.registry import Person, PersonalData, register_personal_data, register_text_copies
from crm.privacy.services import ERASED

ERASED_NAME = "Erased"


def _linked(person: Person) -> models.Q:
    return models.Q(lead_id__in=sorted(person.lead_ids)) | models.Q(contact_id__in=sorted(person.contact_ids))


def register() -> None:
    register_personal_data(
        PersonalData(
            key="leads",
            model=Lead,
            find=lambda p: Lead.objects.filter(pk__in=sorted(p.lead_ids)),
            erase=dict.fromkeys(
                ("contact_name", "email", "phone", "job_title", "description", "lost_note"), ""
            ),
            # "What the lead is about" may name the person; the company and the figures stay.
            scrub=("name", "company_name"),
        )
    )
    register_personal_data(
        PersonalData(
            key="contacts",
            model=Contact,
            find=lambda p: Contact.objects.filter(pk__in=sorted(p.contact_ids)),
            erase={
                "first_name": ERASED_NAME,
                "last_name": "",
                "email": "",
                "phone": "",
                "mobile": "",
                "job_title": "",
                "department": "",
                # Nobody left to call or write to: no list or campaign picks it up again.
                "do_not_call": True,
                "email_opt_out": True,
                "is_active": False,
            },
        )
    )
    register_personal_data(
        PersonalData(
            key="campaign_memberships",
            model=CampaignMember,
            find=lambda p: CampaignMember.objects.filter(_linked(p) | p.email_q("email")),
            # The member's status stays: the campaign's figures (sent, opened, responded) name no one.
            erase={"email": "", "error": ""},
        )
    )
    register_personal_data(
        PersonalData(
            key="sent_emails",
            model=OutgoingEmail,
            find=lambda p: OutgoingEmail.objects.filter(_linked(p) | p.email_q("to")),
            erase={
                "to": "",
                "body_html": "",
                "body_text": ERASED,
                "headers": {},
                "calendar": "",
                "error": "",
            },
            scrub=("subject",),
            export_exclude=("claim",),
        )
    )
    register_personal_data(
        PersonalData(
            key="unsubscribed_addresses",
            model=EmailUnsubscribe,
            find=lambda p: EmailUnsubscribe.objects.filter(p.email_q("email")),
            # An erased person has no address left to send to: the suppression entry goes with it.
            delete=True,
        )
    )
    register_personal_data(
        PersonalData(
            key="sequence_enrollments",
            model=SequenceEnrollment,
            find=lambda p: SequenceEnrollment.objects.filter(_linked(p)),
            scrub=("last_error", "stop_reason"),
        )
    )
    register_personal_data(
        PersonalData(
            key="events",
            model=OutboxEvent,
            find=lambda p: OutboxEvent.objects.filter(p.record_q()),
            # The payload is a copy of the record as it was: only its id is left.
            erase={"payload": {"erased": True}, "last_error": ""},
        )
    )
    register_personal_data(
        PersonalData(
            key="privacy_exports",
            model=PrivacyRequest,
            find=lambda p: PrivacyRequest.objects.filter(p.email_q("email"), kind=PrivacyRequestKind.EXPORT),
            erase={"email": ""},
        )
    )
    # Free text anywhere that may quote a person: scrubbed of their identifiers on erasure.
    register_text_copies(Notification, ("title", "body", "url"))
    register_text_copies(OutboxEvent, ("payload", "last_error"))
    register_text_copies(WebhookDelivery, ("last_response", "last_error"))
    register_text_copies(WebhookAttempt, ("response_excerpt", "error"))
    # Import leftovers: a job's parameters and its report (every bad row, with its cells).
    register_text_copies(Job, ("params", "result", "errors", "phase"))
    register_text_copies(AutomationRun, ("record", "outcomes", "chain", "error", "reason", "dedup_key"))
    register_text_copies(SequenceEnrollment, ("last_error", "stop_reason"))
    register_text_copies(EnrollmentEvent, ("detail",))
    register_text_copies(Segment, ("definition", "description"))
    register_text_copies(OutgoingEmail, ("subject", "body_text", "body_html", "error"))
    register_text_copies(CampaignMember, ("error",))
    # The admin's change log names the records it changed ("Ann Smith").
    register_text_copies(LogEntry, ("object_repr", "change_message"))
