"""Issue 19: every marketing email honours the person's email preference and consent the same way,
through the consent service's one check (``email_refusals``): a campaign, a sequence's email step,
an automation's "send a templated email", a template sent from the API. What is not marketing (an
email to the record's owner, a message a rep writes by hand) is not stopped by them. Real SMTP on
loopback (aiosmtpd)."""

import datetime
import zoneinfo

import pytest
import time_machine

from activities.models import Activity
from crm import services as crm_services
from crm.actors import SYSTEM
from crm.consent import services as consent_services
from crm.consent.services import email_refusal, email_refusals
from crm.messaging.services import email_template_create, outgoing_email_queue
from crm.models import EnrollmentStatus, ExclusionReason, OutgoingEmail, OutgoingEmailStatus
from crm.sequences import runner
from crm.sequences import services as sequence_services
from tests.crm.automation_helpers import rule, settle
from tests.factories import ContactFactory, LeadFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

THURSDAY = datetime.datetime(2026, 12, 3, 9, 0, tzinfo=zoneinfo.ZoneInfo("UTC"))
API = "/api/v1/crm/"


@pytest.fixture
def welcome(db):
    return email_template_create(
        user=SYSTEM,
        data={"name": "Welcome", "subject": "Welcome {{ recipient.first_name }}", "body_html": "<p>Hi</p>"},
    )


@pytest.fixture
def newsletter(db):
    return consent_services.consent_purpose_create(
        user=SYSTEM, data={"name": "Newsletter", "requires_consent": True}
    )


@pytest.fixture
def ann(db):
    return UserFactory(username="ann", email="ann@example.com")


def email_off(person):
    consent_services.channel_preference_set(user=SYSTEM, person_record=person, channel="email", allowed=False)


def grant(person, purpose):
    field = "lead" if person._meta.model_name == "lead" else "contact"
    consent_services.consent_grant(user=SYSTEM, data={field: person, "purpose": purpose})


def addressed_to(smtp_server, address):
    return [m for m in smtp_server.received() if m["To"] == address]


def advance(at=THURSDAY):
    with time_machine.travel(at, tick=False):
        return runner.sequence_enrollments_advance()


def test_the_one_check_names_why_each_person_is_refused(stages, newsletter):
    fine = LeadFactory(email="fine@ok.example", stage=stages["New"])
    off = LeadFactory(email="off@no.example", stage=stages["New"])
    opted = ContactFactory(email="opted@no.example", email_opt_out=True)
    nobody = ContactFactory(email="")
    email_off(off)
    grant(fine, newsletter)

    assert email_refusals([fine, off, opted, nobody]) == {
        ("lead", off.pk): ExclusionReason.EMAIL_OFF,
        ("contact", opted.pk): ExclusionReason.OPTED_OUT,
        ("contact", nobody.pk): ExclusionReason.NO_EMAIL,
    }
    assert email_refusal(fine, purpose=newsletter) is None
    assert email_refusal(LeadFactory(email="new@ok.example", stage=stages["New"]), purpose=newsletter) == (
        ExclusionReason.NO_CONSENT
    )


def test_the_check_costs_the_same_queries_for_two_or_forty_people(
    stages, newsletter, django_assert_max_num_queries
):
    few = [LeadFactory(email=f"few{n}@ok.example", stage=stages["New"]) for n in range(2)]
    many = [LeadFactory(email=f"many{n}@ok.example", stage=stages["New"]) for n in range(20)]
    many += [ContactFactory(email=f"c{n}@ok.example") for n in range(20)]
    for people in (few, many):
        with django_assert_max_num_queries(5):
            email_refusals(people, purpose=newsletter)


def test_a_sequence_skips_its_email_to_a_person_who_turned_email_off_and_goes_on(
    smtp_server, welcome, stages, ann
):
    sequence = sequence_services.sequence_create(
        user=SYSTEM,
        data={"name": "Nurture"},
        steps=[
            {"position": 1, "kind": "email", "email_template": welcome},
            {"position": 2, "kind": "task", "task_subject": "Call them"},
        ],
    )
    wile = LeadFactory(contact_name="Wile Coyote", email="wile@acme.example", stage=stages["New"], owner=ann)
    road = LeadFactory(
        contact_name="Road Runner", email="road@runner.example", stage=stages["New"], owner=ann
    )
    email_off(road)
    with time_machine.travel(THURSDAY, tick=False):
        for lead in (wile, road):
            sequence_services.sequence_enroll(sequence=sequence, record=lead, user=SYSTEM, kick=False)

    advance()

    smtp_server.wait_for(1, timeout=10)
    assert [m["Subject"] for m in addressed_to(smtp_server, "wile@acme.example")] == ["Welcome Wile"]
    assert addressed_to(smtp_server, "road@runner.example") == []
    enrollment = road.sequence_enrollments.get()
    assert enrollment.status == EnrollmentStatus.COMPLETED
    skipped = enrollment.events.get(kind="skipped")
    assert "Email turned off in their preferences" in skipped.detail
    assert Activity.objects.filter(lead=road, subject="Call them").count() == 1
    assert not OutgoingEmail.objects.filter(lead=road).exists()


def test_a_sequence_for_a_purpose_emails_only_those_who_consented(smtp_server, welcome, stages, newsletter):
    sequence = sequence_services.sequence_create(
        user=SYSTEM,
        data={"name": "News", "consent_purpose": newsletter},
        steps=[{"position": 1, "kind": "email", "email_template": welcome}],
    )
    yes = ContactFactory(first_name="Yes", email="yes@ok.example")
    no = ContactFactory(first_name="No", email="no@no.example")
    grant(yes, newsletter)
    with time_machine.travel(THURSDAY, tick=False):
        for contact in (yes, no):
            sequence_services.sequence_enroll(sequence=sequence, record=contact, user=SYSTEM, kick=False)

    advance()

    smtp_server.wait_for(1, timeout=10)
    assert len(addressed_to(smtp_server, "yes@ok.example")) == 1
    assert addressed_to(smtp_server, "no@no.example") == []
    skipped = no.sequence_enrollments.get().events.get(kind="skipped")
    assert "No consent for the campaign's purpose" in skipped.detail


def test_an_automation_email_to_a_person_who_turned_email_off_is_suppressed(
    smtp_server, welcome, stages, ann
):
    the_rule = rule(
        trigger={"events": ["updated"]},
        actions=[{"kind": "send_email", "params": {"template_id": welcome.pk}}],
    )
    lead = LeadFactory(
        contact_name="Road Runner", email="road@runner.example", stage=stages["New"], owner=ann
    )
    email_off(lead)

    crm_services.lead_update(lead=lead, user=SYSTEM, data={"priority": "high"})
    settle()

    run = the_rule.runs.get()
    assert "Email turned off in their preferences" in run.outcomes[0]["detail"]
    email = OutgoingEmail.objects.get(lead=lead)
    assert email.status == OutgoingEmailStatus.SUPPRESSED and "turned off" in email.error
    assert addressed_to(smtp_server, "road@runner.example") == []


def test_an_automation_email_for_a_purpose_reaches_only_who_consented(
    smtp_server, welcome, stages, newsletter
):
    the_rule = rule(
        trigger={"events": ["updated"]},
        actions=[{"kind": "send_email", "params": {"template_id": welcome.pk, "purpose_id": newsletter.pk}}],
    )
    yes = LeadFactory(contact_name="Yes Lead", email="yes@ok.example", stage=stages["New"])
    no = LeadFactory(contact_name="No Lead", email="no@no.example", stage=stages["New"])
    grant(yes, newsletter)

    for lead in (yes, no):
        crm_services.lead_update(lead=lead, user=SYSTEM, data={"priority": "high"})
    settle()

    smtp_server.wait_for(1, timeout=10)
    assert len(addressed_to(smtp_server, "yes@ok.example")) == 1
    assert addressed_to(smtp_server, "no@no.example") == []
    details = {run.record_id: run.outcomes[0]["detail"] for run in the_rule.runs.all()}
    assert "No consent" in details[no.pk] and "queued to yes@ok.example" in details[yes.pk]


def test_an_unknown_purpose_is_refused_naming_the_parameter(welcome):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        rule(
            trigger={"events": ["updated"]},
            actions=[{"kind": "send_email", "params": {"template_id": welcome.pk, "purpose_id": 999999}}],
        )
    assert "purpose_id" in " ".join(refused.value.message_dict["actions"])


def test_what_is_not_marketing_still_goes(smtp_server, welcome, stages, ann):
    """The owner's copy of an automation's email, and a message a rep writes by hand, are not
    marketing to the person: their email preference does not stop them (an opt-out still would)."""
    rule(
        trigger={"events": ["updated"]},
        actions=[{"kind": "send_email", "params": {"template_id": welcome.pk, "to": "owner"}}],
    )
    lead = LeadFactory(
        contact_name="Road Runner", email="road@runner.example", stage=stages["New"], owner=ann
    )
    email_off(lead)

    crm_services.lead_update(lead=lead, user=SYSTEM, data={"priority": "high"})
    settle()
    outgoing_email_queue(record=lead, user=SYSTEM, subject="About your order", body_text="Here it is.")

    smtp_server.wait_for(2, timeout=10)
    assert len(addressed_to(smtp_server, "ann@example.com")) == 1
    assert [m["Subject"] for m in addressed_to(smtp_server, "road@runner.example")] == ["About your order"]


def test_a_template_sent_from_the_api_to_a_person_who_turned_email_off_is_suppressed(
    smtp_server, welcome, api_as, people
):
    contact = ContactFactory(first_name="Road", email="road@runner.example")
    email_off(contact)

    response = api_as("superuser").post(
        f"{API}email-templates/{welcome.pk}/send/", {"contact_id": contact.pk}, format="json"
    )

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "suppressed"
    assert OutgoingEmail.objects.get(contact=contact).status == OutgoingEmailStatus.SUPPRESSED
    assert addressed_to(smtp_server, "road@runner.example") == []


def test_the_sequence_api_takes_a_consent_purpose(api_as, people, newsletter):
    response = api_as("superuser").post(
        f"{API}sequences/", {"name": "News", "consent_purpose_id": newsletter.pk}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["consent_purpose_id"] == newsletter.pk
    bad = api_as("superuser").post(
        f"{API}sequences/", {"name": "Other", "consent_purpose_id": 999999}, format="json"
    )
    assert bad.status_code == 400 and "consent_purpose_id" in bad.json()
