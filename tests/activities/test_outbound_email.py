"""Email sent from a record: delivered to a real SMTP server on loopback (aiosmtpd) by the background
job after the commit, logged as an email activity on the record with its Message-ID; never to an
opted-out address; a meeting goes out as an invitation with an .ics the icalendar parser reads back."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from icalendar import Calendar

from activities.mail import outbound
from activities.models import Activity, ActivityType, EmailDirection, EmailMessage
from crm.actors import SYSTEM
from crm.messaging.services import email_template_create
from crm.models import OutgoingEmail, OutgoingEmailStatus
from tests.factories import AccountFactory, ContactFactory, LeadFactory, OpportunityFactory

pytestmark = pytest.mark.django_db


def delivered_to(smtp_server, address: str, count: int = 1) -> list:
    """The messages ``address`` received (notifications to the users go to the same server)."""
    import time

    for _ in range(200):
        found = [m for m in smtp_server.received() if m["To"] == address]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{address} got {len(found)} of {count} emails")


def sent_through(django_capture_on_commit_callbacks, send):
    """Run ``send`` in a transaction and the background job its commit starts (embedded mode)."""
    with django_capture_on_commit_callbacks(execute=True):
        return send()


def test_email_from_a_deal_goes_to_its_contact_and_is_logged_with_its_message_id(
    owner, smtp_server, stages, django_capture_on_commit_callbacks
):
    account = AccountFactory(owner=owner)
    contact = ContactFactory(email="buyer@customer.test", account=account, owner=owner)
    deal = OpportunityFactory(contact=contact, account=account, owner=owner)

    message = sent_through(
        django_capture_on_commit_callbacks,
        lambda: outbound.email_compose(user=owner, record=deal, subject="Our proposal", body="Attached."),
    )

    [received] = delivered_to(smtp_server, "buyer@customer.test")
    assert received["Subject"] == "Our proposal"
    message.refresh_from_db()
    assert received["Message-ID"] == message.message_id and message.message_id.startswith("<")
    assert (
        message.direction == EmailDirection.OUTBOUND and message.outgoing.status == OutgoingEmailStatus.SENT
    )
    activity = message.activities.get()
    assert activity.activity_type == ActivityType.EMAIL and activity.status == "completed"
    assert (activity.opportunity, activity.contact, activity.account, activity.owner) == (
        deal,
        contact,
        account,
        owner,
    )
    assert activity.description == "Attached.\n" or activity.description.startswith("Attached.")


def test_email_from_a_template_to_a_lead(owner, smtp_server, stages, django_capture_on_commit_callbacks):
    template = email_template_create(
        user=SYSTEM, data={"name": "Hello", "subject": "Hello {{ lead.name }}", "body_html": "<p>Hi</p>"}
    )
    lead = LeadFactory(name="Acme", email="lead@acme.test", owner=owner)

    message = sent_through(
        django_capture_on_commit_callbacks,
        lambda: outbound.email_compose(user=owner, record=lead, template=template),
    )

    [received] = delivered_to(smtp_server, "lead@acme.test")
    assert received["Subject"] == "Hello Acme"
    assert message.activities.get().lead == lead


def test_an_opted_out_address_is_refused_and_nothing_is_sent(owner, smtp_server, stages):
    contact = ContactFactory(email="no@customer.test", email_opt_out=True, owner=owner)

    with pytest.raises(ValidationError) as refused:
        outbound.email_compose(user=owner, record=contact, subject="Hi", body="Hello")

    assert "opted out" in str(refused.value.message_dict["to"])
    assert not OutgoingEmail.objects.exists() and not EmailMessage.objects.exists()
    assert [m for m in smtp_server.received() if m["To"] == "no@customer.test"] == []


def test_an_address_that_opts_out_after_queueing_gets_nothing(
    owner, smtp_server, stages, django_capture_on_commit_callbacks
):
    contact = ContactFactory(email="later@customer.test", owner=owner)
    message = outbound.email_compose(user=owner, record=contact, subject="Hi", body="Hello")
    ContactFactory(email="LATER@customer.test", email_opt_out=True)  # the same address, opted out

    sent_through(django_capture_on_commit_callbacks, lambda: None)
    from crm.messaging.services import outgoing_emails_send

    outgoing_emails_send(ids=[message.outgoing_id])

    assert [m for m in smtp_server.received() if m["To"] == "later@customer.test"] == []
    assert OutgoingEmail.objects.get().status == OutgoingEmailStatus.SUPPRESSED
    assert not message.activities.exists()


def test_a_meeting_is_sent_as_an_invitation_with_an_ics(
    owner, smtp_server, stages, django_capture_on_commit_callbacks
):
    contact = ContactFactory(email="guest@customer.test", owner=owner)
    start = timezone.now().replace(microsecond=0) + timezone.timedelta(days=2)
    meeting = Activity.objects.create(
        subject="Demo",
        activity_type=ActivityType.MEETING,
        due_date=start,
        duration_minutes=45,
        contact=contact,
        owner=owner,
    )

    message = sent_through(
        django_capture_on_commit_callbacks,
        lambda: outbound.activity_invitation_send(user=owner, activity=meeting),
    )

    [received] = delivered_to(smtp_server, "guest@customer.test")
    assert received["Subject"] == "Invitation: Demo" and received["Message-ID"] == message.message_id
    [ics] = [part for part in received.walk() if part.get_content_type() == "text/calendar"]
    assert ics.get_filename() == "invite.ics" and ics.get_param("method") == "REQUEST"
    calendar = Calendar.from_ical(ics.get_payload(decode=True))
    assert str(calendar["METHOD"]) == "REQUEST"
    [event] = calendar.walk("VEVENT")
    assert str(event["SUMMARY"]) == "Demo"
    assert event.decoded("DTSTART") == start
    assert event.decoded("DTEND") == start + timezone.timedelta(minutes=45)
    assert str(event["ATTENDEE"]) == "mailto:guest@customer.test"
    logged = message.activities.get()
    assert logged.activity_type == ActivityType.EMAIL and logged.contact == contact


def test_only_a_dated_meeting_is_sent_as_an_invitation(owner, stages):
    contact = ContactFactory(email="guest@customer.test", owner=owner)
    call = Activity.objects.create(subject="Call", activity_type=ActivityType.CALL, contact=contact)
    undated = Activity.objects.create(subject="Meet", activity_type=ActivityType.MEETING, contact=contact)

    with pytest.raises(ValidationError):
        outbound.activity_invitation_send(user=owner, activity=call)
    with pytest.raises(ValidationError):
        outbound.activity_invitation_send(user=owner, activity=undated)
    assert not OutgoingEmail.objects.exists()


def test_a_reply_to_a_template_email_threads_back(
    owner, smtp_server, stages, django_capture_on_commit_callbacks
):
    """Template emails of sequences and automations are logged with their Message-ID too."""
    from activities.mail import inbound

    template = email_template_create(user=SYSTEM, data={"name": "T", "subject": "Offer", "body_text": "Hi"})
    lead = LeadFactory(email="lead@acme.test", owner=owner)
    from crm.messaging.services import email_template_send

    with django_capture_on_commit_callbacks(execute=True):
        sent = email_template_send(template=template, record=lead, user=owner)
    delivered_to(smtp_server, "lead@acme.test")
    reply = (
        f"From: other@elsewhere.test\r\nTo: sales@example.com\r\nSubject: Re: Offer\r\n"
        f"Message-ID: <r1@elsewhere.test>\r\nIn-Reply-To: {sent.message_id}\r\n\r\nYes please\r\n"
    ).encode()

    logged, _incoming = inbound.email_receive(raw=reply)

    assert logged.logged == 1
    assert EmailMessage.objects.get(message_id="<r1@elsewhere.test>").activities.get().lead == lead
