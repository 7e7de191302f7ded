"""crm's own personal data for privacy requests: leads, contacts, campaign members, sent emails, the
unsubscribe list, sequence enrollments, the outbox, and the free text that may quote a person."""

from django.contrib.admin.models import LogEntry
from django.db import models

from crm.models import (
    Account,
    AutomationRun,
    CampaignMember,
    ChannelPreference,
    ConsentRecord,
    Contact,
    EmailUnsubscribe,
    EnrollmentEvent,
    Job,
    Lead,
    Notification,
    OutboxEvent,
    OutboxStatus,
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


# The keys under which a copy of a lead or contact (an event's payload, the record an automation saw)
# carries what names the person: blanked in copies that keep their shape.
PERSONAL_KEYS = frozenset(
    (
        "contact_name",
        "email",
        "phone",
        "mobile",
        "first_name",
        "last_name",
        "full_name",
        "job_title",
        "department",
        "description",
        "lost_note",
        "name",
    )
)


def personal_keys_blank(value, keys=PERSONAL_KEYS):
    """A copy of ``value`` (JSON) whose values under ``keys``, at any depth, are empty strings."""
    if isinstance(value, dict):
        return {
            k: "" if k in keys and isinstance(v, str) else personal_keys_blank(v, keys)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [personal_keys_blank(v, keys) for v in value]
    return value


def _json_blank(queryset, field: str) -> None:
    rows = list(queryset.only("pk", field))
    for row in rows:
        setattr(row, field, personal_keys_blank(getattr(row, field)))
    queryset.model._default_manager.bulk_update(rows, [field], batch_size=500)


def _event_payloads_erase(queryset, person: Person) -> None:
    """A relayed event's payload is a copy of the record as it was: only its id is left. One still
    pending keeps its shape for the consumers, its personal values blanked."""
    queryset.exclude(status=OutboxStatus.PENDING).update(payload={"erased": True})
    _json_blank(queryset.filter(status=OutboxStatus.PENDING), "payload")


def _run_records_erase(queryset, person: Person) -> None:
    _json_blank(queryset, "record")


def _runs_on(person: Person):
    return AutomationRun.objects.filter(
        models.Q(model__iexact="crm.Lead", record_id__in=sorted(person.lead_ids))
        | models.Q(model__iexact="crm.Contact", record_id__in=sorted(person.contact_ids))
    )


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
            key="consents",
            model=ConsentRecord,
            find=lambda p: ConsentRecord.objects.filter(_linked(p)),
            # Purpose, basis, source and dates stay: what was allowed, and when, names no one.
            scrub=("evidence",),
        )
    )
    register_personal_data(
        PersonalData(
            key="channel_preferences",
            model=ChannelPreference,
            find=lambda p: ChannelPreference.objects.filter(_linked(p)),
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
            erase={"last_error": ""},
            anonymise=_event_payloads_erase,
        )
    )
    register_personal_data(
        PersonalData(key="automation_runs", model=AutomationRun, find=_runs_on, anonymise=_run_records_erase)
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
    # A sole trader's account may carry their name or phone; the company and its figures stay.
    register_text_copies(Account, ("name", "phone", "website", "billing_street"))
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
