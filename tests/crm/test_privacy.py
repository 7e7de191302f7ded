"""Issue 19 item 5: privacy requests. The export holds every record linked to a person; the erasure
leaves no trace of their address, name or phone in any text column of any table (audit trails, outbox,
notifications, import reports and the admin log included) while the figures stay; the retention job
anonymises old leads; only CRM Admins may do any of it."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from activities.models import Activity, Attachment, EmailMessage, Note, Ticket, TicketMessage
from activities.services import activity_create, attachments_create, note_create
from crm.actors import SYSTEM
from crm.consent.services import channel_preference_set, consent_grant, consent_purpose_create
from crm.marketing.services import campaign_create, campaign_member_create
from crm.models import (
    Account,
    CampaignMember,
    Contact,
    EmailUnsubscribe,
    Job,
    JobKind,
    JobStatus,
    Lead,
    LeadStatus,
    Notification,
    NotificationKind,
    OutboxEvent,
    OutgoingEmail,
    PrivacyRequest,
    PrivacyRequestKind,
    Segment,
    WebhookDelivery,
    WebhookSubscription,
)
from crm.privacy import services as privacy
from crm.privacy.tasks import retention_apply as retention_task
from crm.services import contact_create, lead_create, lead_update
from sales.models import Opportunity
from sales.models_quotes import Quote
from tests.factories import AccountFactory, LeadFactory

EMAIL = "Zebulon.Quixote@example.test"
NAME = "Zebulon Quixote"
PHONE = "+44 20 7946 0958"
MOBILE = "+44 7700 900123"
NEEDLES = (EMAIL, NAME, PHONE, MOBILE, "Quixote")


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


def _text_columns():
    """(table, column) of every text, character and JSON column of every table in the database."""
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for column in connection.introspection.get_table_description(cursor, table):
                try:
                    kind = connection.introspection.get_field_type(column.type_code, column)
                except KeyError:
                    continue
                if kind in ("CharField", "TextField", "JSONField", "EmailField", "SlugField"):
                    yield table, column.name


def traces(*needles: str) -> list[tuple[str, str, str]]:
    """Where any of ``needles`` occurs (any case) in any text column of any table."""
    found = []
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table, column in list(_text_columns()):
            text = f"LOWER(CAST({quote(column)} AS TEXT))"
            cursor.execute(
                f"SELECT {', '.join(f'SUM(CASE WHEN {text} LIKE %s THEN 1 ELSE 0 END)' for _ in needles)} "
                f"FROM {quote(table)}",
                [f"%{needle.lower()}%" for needle in needles],
            )
            counts = cursor.fetchone()
            found += [(table, column, needle) for needle, n in zip(needles, counts, strict=True) if n]
    return found


def person_everywhere(user, stages) -> dict:
    """The person as a lead that became a contact, with a trail in every kind of record."""
    account = AccountFactory(name="Quay Holdings")
    AccountFactory(name=f"{NAME} Windmill Repairs", phone=PHONE)  # a sole trader
    lead = lead_create(
        user=user,
        data={
            "name": f"{NAME} — 40 seats",
            "contact_name": NAME,
            "email": EMAIL,
            "phone": PHONE,
            "job_title": "Head of Windmills",
            "description": f"Call {NAME} on {PHONE}",
            "expected_revenue": Decimal("5000.00"),
        },
    )
    lead = lead_update(lead=lead, user=user, data={"description": f"Wrote to {EMAIL}"})
    contact = contact_create(
        user=user,
        data={
            "first_name": "Zebulon",
            "last_name": "Quixote",
            "email": EMAIL.lower(),
            "phone": PHONE,
            "mobile": MOBILE,
            "account": account,
        },
    )
    Lead.objects.filter(pk=lead.pk).update(converted_contact=contact)
    other_lead = LeadFactory(name="Second enquiry", email=EMAIL.upper(), stage=stages["New"])
    activity = activity_create(
        user=user,
        data={"subject": f"Call with {NAME}", "activity_type": "call", "lead": lead, "description": PHONE},
    )
    contact_activity = activity_create(
        user=user, data={"subject": "Demo", "activity_type": "meeting", "contact": contact}
    )
    note = note_create(user=user, record=lead, body=f"{NAME} prefers mornings, {MOBILE}")
    activity_note = note_create(user=user, record=activity, body="Left a voicemail")
    (attachment,) = attachments_create(
        user=user,
        record=contact,
        uploads=[SimpleUploadedFile("card.txt", f"{NAME} {EMAIL}".encode(), content_type="text/plain")],
    )
    campaign = campaign_create(user=user, data={"name": "Spring fair", "actual_cost": Decimal("100")})
    member = campaign_member_create(user=user, data={"campaign": campaign, "contact": contact})
    CampaignMember.objects.filter(pk=member.pk).update(email=EMAIL, status="opened")
    sent = OutgoingEmail.objects.create(
        lead=lead,
        to=EMAIL,
        subject=f"Hello {NAME}",
        body_text=f"Dear {NAME}",
        body_html=f"<p>Dear {NAME}</p>",
    )
    unsubscribed = EmailUnsubscribe.objects.create(email=EMAIL.lower(), campaign=campaign)
    email_message = EmailMessage.objects.create(
        direction="in",
        message_id="<m1@example.test>",
        record_type="lead",
        record_id=lead.pk,
        from_address=f"{NAME} <{EMAIL}>",
        to_addresses="sales@crm.test",
        subject=f"Re: Hello {NAME}",
    )
    email_message.activities.add(activity)
    ticket = Ticket.objects.create(
        number="T-000001", subject=f"{NAME} cannot log in", contact=contact, requester_email=EMAIL
    )
    ticket_message = TicketMessage.objects.create(
        ticket=ticket, body=f"Regards, {NAME}", from_customer=True, sender_email=EMAIL
    )
    opportunity = Opportunity.objects.create(
        name=f"Windmills for {NAME}",
        account=account,
        contact=contact,
        lead=lead,
        amount=Decimal("7000.00"),
        stage=stages["New"],
        description=f"Champion: {NAME}",
    )
    quote = Quote.objects.create(
        opportunity=opportunity, number="Q-1", recipient_email=EMAIL, answered_by_name=NAME, notes="net 30"
    )
    Notification.objects.create(
        recipient=user, kind=NotificationKind.ASSIGNED, title=f"Lead {NAME} assigned to you", event_id="e1"
    )
    event = OutboxEvent.objects.create(
        type="lead.updated",
        occurred_at=timezone.now(),
        record_type="lead",
        record_id=lead.pk,
        payload={"data": {"email": EMAIL, "contact_name": NAME, "phone": PHONE}},
    )
    subscription = WebhookSubscription.objects.create(
        target_url="https://hooks.example.test/", secret="whsec_x"
    )
    WebhookDelivery.objects.create(
        subscription=subscription, event=event, last_response=f'{{"echo": "{EMAIL}"}}'
    )
    Job.objects.create(
        kind=JobKind.IMPORT,
        resource="leads",
        status=JobStatus.SUCCEEDED,
        params={"filename": "fair.csv"},
        result={"row_errors": [{"row": 3, "column": "email", "value": EMAIL, "message": "taken"}]},
        created_by=user,
    )
    Segment.objects.create(name="Just him", definition={"search": EMAIL})
    LogEntry.objects.create(
        user=user,
        content_type=ContentType.objects.get_for_model(Contact),
        object_id=str(contact.pk),
        object_repr=NAME,
        action_flag=CHANGE,
        change_message=f"Changed phone to {PHONE}",
    )
    purpose = consent_purpose_create(user=user, data={"name": "Newsletter", "requires_consent": True})
    consent = consent_grant(
        user=user,
        data={
            "purpose": purpose,
            "contact": contact,
            "source": "web_form",
            "evidence": f"Form sent by {EMAIL}",
        },
    )
    preference = channel_preference_set(user=user, person_record=lead, channel="phone", allowed=False)
    return {
        "leads": {lead.pk, other_lead.pk},
        "consents": {consent.pk},
        "channel_preferences": {preference.pk},
        "contacts": {contact.pk},
        "activities": {activity.pk, contact_activity.pk},
        "notes": {note.pk, activity_note.pk},
        "files": {attachment.pk},
        "campaign_memberships": {member.pk},
        "sent_emails": {sent.pk},
        "unsubscribed_addresses": {unsubscribed.pk},
        "emails": {email_message.pk},
        "tickets": {ticket.pk},
        "ticket_messages": {ticket_message.pk},
        "opportunities": {opportunity.pk},
        "quotes": {quote.pk},
        "events": {event.pk},
    }


@pytest.fixture
def bystander(stages):
    return LeadFactory(
        name="Unrelated deal",
        contact_name="Agatha Brightwater",
        email="agatha@example.test",
        stage=stages["New"],
    )


# --- erasure ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_erasure_leaves_no_trace_of_the_person_in_any_text_column_of_any_table(admin_user, stages, bystander):
    linked = person_everywhere(admin_user, stages)
    assert {needle for *_, needle in traces(*NEEDLES)} == set(NEEDLES)  # the scan sees them before

    done = privacy.privacy_erase(user=admin_user, email=EMAIL.lower())

    assert traces(*NEEDLES) == []
    assert traces("Zebulon") == []
    # The log says when, by whom and which records, never the address.
    assert done.kind == PrivacyRequestKind.ERASURE and done.email == ""
    assert done.email_hash == privacy.email_hash(EMAIL) and done.requested_by == admin_user
    for key, ids in linked.items():
        # Events: the services' own (lead.created...) besides the one written here.
        assert set(done.records[key]) >= ids if key == "events" else set(done.records[key]) == ids, key
        assert done.counts[key] == len(done.records[key])


@pytest.mark.django_db
def test_erasure_keeps_the_figures_that_name_no_one_and_other_people(admin_user, stages, bystander):
    linked = person_everywhere(admin_user, stages)
    OutboxEvent.objects.create(
        type="lead.created",
        occurred_at=timezone.now(),
        record_type="lead",
        record_id=min(linked["leads"]),
        payload={"data": {"email": EMAIL}},
        status="delivered",
    )
    (lead_id,) = sorted(linked["leads"])[:1]

    privacy.privacy_erase(user=admin_user, email=EMAIL)

    lead = Lead.objects.get(pk=lead_id)
    assert (lead.name, lead.expected_revenue, lead.stage_id) == (
        "[erased] — 40 seats",
        Decimal("5000.00"),
        stages["New"].pk,
    )
    assert (lead.email, lead.contact_name, lead.phone, lead.description) == ("", "", "", "")
    contact = Contact.objects.get(pk=next(iter(linked["contacts"])))
    assert (contact.first_name, contact.email, contact.is_active, contact.email_opt_out) == (
        "Erased",
        "",
        False,
        True,
    )
    assert contact.account.name == "Quay Holdings"
    assert Account.objects.filter(name="[erased] Windmill Repairs", phone="[erased]").exists()
    assert Activity.objects.filter(pk__in=linked["activities"]).count() == 2
    assert Opportunity.objects.get().amount == Decimal("7000.00")
    assert CampaignMember.objects.get().status == "opened"
    assert not Attachment.objects.exists() and not EmailUnsubscribe.objects.exists()
    assert Note.objects.filter(pk__in=linked["notes"]).count() == 2
    # Versions of the lead are all kept, anonymised.
    assert lead.history.count() >= 2 and set(lead.history.values_list("email", flat=True)) == {""}
    bystander.refresh_from_db()
    assert (bystander.contact_name, bystander.email) == ("Agatha Brightwater", "agatha@example.test")
    # An event still waiting for the relay keeps its shape for the consumers; a relayed one keeps its id.
    pending = OutboxEvent.objects.get(pk=next(iter(linked["events"])))
    assert pending.payload == {"data": {"email": "", "contact_name": "", "phone": ""}}
    relayed = OutboxEvent.objects.filter(record_type="lead", record_id=lead_id).exclude(pk=pending.pk)
    assert [event.payload for event in relayed.exclude(status="pending")] == [{"erased": True}]


@pytest.mark.django_db
def test_erasure_of_an_unknown_address_is_refused_and_changes_nothing(admin_user, bystander):
    with pytest.raises(ValidationError) as refused:
        privacy.privacy_erase(user=admin_user, email="nobody@example.test")

    assert refused.value.message_dict == {"email": [privacy.UNKNOWN_EMAIL]}
    assert not PrivacyRequest.objects.exists()
    bystander.refresh_from_db()
    assert bystander.email == "agatha@example.test"


@pytest.mark.django_db
def test_privacy_services_require_a_crm_admin(owner, crm_admin, bystander):
    for call in (privacy.privacy_erase, privacy.privacy_export):
        with pytest.raises(PermissionDenied):
            call(user=owner, email="agatha@example.test")
    with pytest.raises(TypeError):
        privacy.privacy_erase(user=None, email="agatha@example.test")

    privacy.privacy_erase(user=crm_admin, email="agatha@example.test")

    bystander.refresh_from_db()
    assert bystander.email == ""


# --- export ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_export_holds_every_record_linked_to_the_person_and_its_history(admin_user, stages, bystander):
    linked = person_everywhere(admin_user, stages)

    done, document = privacy.privacy_export(user=admin_user, email=EMAIL)

    for key, ids in linked.items():
        exported = {row["id"] for row in document["records"][key]}
        assert exported >= ids if key == "events" else exported == ids, key
    assert bystander.pk not in {row["id"] for row in document["records"]["leads"]}
    lead_versions = [v for v in document["history"]["leads"] if v["email"] == EMAIL]
    assert {v["history_type"] for v in lead_versions} == {"+", "~"}
    assert {v["id"] for v in document["history"]["contacts"]} == linked["contacts"]
    assert {v["id"] for v in document["history"]["activities"]} == linked["activities"]
    assert b"Zebulon" in privacy.export_json(document)
    assert (done.kind, done.email, done.counts["leads"]) == (PrivacyRequestKind.EXPORT, EMAIL.lower(), 2)


@pytest.mark.django_db
def test_an_erasure_clears_the_address_of_earlier_exports(admin_user, bystander):
    export, _ = privacy.privacy_export(user=admin_user, email="agatha@example.test")

    privacy.privacy_erase(user=admin_user, email="agatha@example.test")

    export.refresh_from_db()
    assert export.email == "" and export.email_hash == privacy.email_hash("agatha@example.test")
    with pytest.raises(ValidationError):
        privacy.privacy_export_document(user=admin_user, privacy_request=export)


# --- retention -------------------------------------------------------------------------------------------


def _aged(lead, **when):
    Lead.objects.filter(pk=lead.pk).update(**when)


@pytest.mark.django_db
def test_the_retention_task_anonymises_leads_lost_or_inactive_past_the_period(settings, admin_user, stages):
    settings.CRM_RETENTION_MONTHS = 12
    long_ago = timezone.now() - datetime.timedelta(days=800)
    lost = LeadFactory(
        name="Lost one", contact_name="Lorna Lost", email="lorna@example.test", stage=stages["New"]
    )
    idle = LeadFactory(name="Idle one", contact_name="Ivo Idle", phone="+1 555 0100", stage=stages["New"])
    busy = LeadFactory(
        name="Busy one", contact_name="Bea Busy", email="bea@example.test", stage=stages["New"]
    )
    fresh = LeadFactory(
        name="Fresh one", contact_name="Fay Fresh", email="fay@example.test", stage=stages["New"]
    )
    note_create(user=admin_user, record=lost, body="Lorna Lost said no")
    _aged(lost, status=LeadStatus.LOST, updated_at=long_ago)
    _aged(idle, updated_at=long_ago)
    _aged(busy, updated_at=long_ago, last_activity_at=timezone.now() - datetime.timedelta(days=10))

    assert retention_task() == 2

    lost.refresh_from_db(), idle.refresh_from_db(), busy.refresh_from_db(), fresh.refresh_from_db()
    assert (lost.contact_name, lost.email, lost.status) == ("", "", LeadStatus.LOST)
    assert (idle.contact_name, idle.phone) == ("", "")
    assert busy.contact_name == "Bea Busy" and fresh.contact_name == "Fay Fresh"
    assert traces("Lorna Lost", "lorna@example.test", "Ivo Idle", "+1 555 0100") == []
    run = PrivacyRequest.objects.get()
    assert (run.kind, run.requested_by, sorted(run.records["leads"])) == (
        PrivacyRequestKind.RETENTION,
        None,
        sorted([lost.pk, idle.pk]),
    )
    assert retention_task() == 0  # anonymised leads are not found again
    assert PrivacyRequest.objects.count() == 1


@pytest.mark.django_db
def test_retention_is_off_by_default_and_keeps_an_address_a_contact_still_uses(settings, stages):
    long_ago = timezone.now() - datetime.timedelta(days=800)
    lead = LeadFactory(name="Old", contact_name="Olga Old", email="olga@example.test", stage=stages["New"])
    Contact.objects.create(first_name="Olga", last_name="Old", email="olga@example.test")
    _aged(lead, status=LeadStatus.LOST, updated_at=long_ago)
    assert settings.CRM_RETENTION_MONTHS == 0

    assert retention_task() == 0
    lead.refresh_from_db()
    assert lead.email == "olga@example.test"

    privacy.retention_apply(user=SYSTEM, months=6)

    lead.refresh_from_db()
    assert (lead.email, lead.contact_name) == ("", "")
    assert Contact.objects.get().email == "olga@example.test"  # another record, kept
