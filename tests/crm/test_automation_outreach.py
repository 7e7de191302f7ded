"""The automation actions that reach out: "send a templated email" and "enroll in a sequence" go
through the messaging and sequence services, so the email arrives at a real SMTP server on loopback,
an opted-out address gets nothing, and an enrollment is refused for the reasons a person is told."""

import pytest
from django.core.exceptions import ValidationError

from crm import services as crm_services
from crm.actors import SYSTEM
from crm.automation import engine
from crm.messaging.services import email_template_create
from crm.models import AutomationRun, OutgoingEmail, RunStatus, SequenceEnrollment
from crm.sequences import services as sequence_services
from tests.crm.automation_helpers import database_fingerprint, rule, settle
from tests.factories import ContactFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def welcome(db):
    return email_template_create(
        user=SYSTEM,
        data={"name": "Welcome", "subject": "Welcome to Acme, {{ lead.name }}", "body_html": "<p>Hello</p>"},
    )


@pytest.fixture
def owner(db):
    return UserFactory(username="ann", email="ann@example.com")


def to_leads(smtp_server):
    return [m for m in smtp_server.received() if m["To"] != "ann@example.com"]


def test_a_new_lead_gets_the_templated_email_and_the_run_says_so(stages, smtp_server, welcome, owner):
    the_rule = rule(
        trigger={"events": ["created"]},
        actions=[{"kind": "send_email", "params": {"template_id": welcome.pk}}],
    )

    lead = crm_services.lead_create(
        user=SYSTEM, data={"name": "Road Runner", "email": "beep@runner.example", "owner": owner}
    )
    settle()

    smtp_server.wait_for(1, timeout=30)
    (message,) = to_leads(smtp_server)
    assert message["To"] == "beep@runner.example"
    assert message["Subject"] == "Welcome to Acme, Road Runner"
    (run,) = AutomationRun.objects.filter(rule=the_rule)
    assert run.status == RunStatus.SUCCEEDED and run.record_id == lead.pk
    assert "queued to beep@runner.example" in run.outcomes[0]["detail"]


def test_an_opted_out_address_gets_nothing(stages, smtp_server, welcome, owner):
    ContactFactory(email="wile@acme.example", email_opt_out=True)
    the_rule = rule(
        trigger={"events": ["created"]},
        actions=[{"kind": "send_email", "params": {"template_id": welcome.pk}}],
    )

    crm_services.lead_create(
        user=SYSTEM, data={"name": "Coyote", "email": "wile@acme.example", "owner": owner}
    )
    settle()

    (run,) = AutomationRun.objects.filter(rule=the_rule)
    assert "opted out" in run.outcomes[0]["detail"]
    assert OutgoingEmail.objects.get().status == "suppressed"
    smtp_server.wait_for(0, timeout=2)
    assert to_leads(smtp_server) == []


def test_to_the_owner_sends_to_the_owners_address(stages, smtp_server, welcome, owner):
    rule(
        trigger={"events": ["created"]},
        actions=[{"kind": "send_email", "params": {"template_id": welcome.pk, "to": "owner"}}],
    )

    crm_services.lead_create(user=SYSTEM, data={"name": "Road Runner", "owner": owner})
    settle()

    subjects = [m["Subject"] for m in smtp_server.wait_for(1, timeout=30) if m["To"] == "ann@example.com"]
    assert "Welcome to Acme, Road Runner" in subjects


def test_a_rule_enrolls_the_new_lead_in_a_sequence(stages, welcome, owner):
    sequence = sequence_services.sequence_create(
        user=SYSTEM,
        data={"name": "Nurture"},
        steps=[{"position": 1, "kind": "email", "email_template": welcome}],
    )
    the_rule = rule(
        trigger={"events": ["created"]},
        actions=[{"kind": "enroll_sequence", "params": {"sequence_id": sequence.pk}}],
    )

    lead = crm_services.lead_create(user=SYSTEM, data={"name": "Road Runner", "email": "beep@runner.example"})
    settle()

    enrollment = SequenceEnrollment.objects.get(sequence=sequence)
    assert enrollment.lead_id == lead.pk
    (run,) = AutomationRun.objects.filter(rule=the_rule)
    assert run.status == RunStatus.SUCCEEDED and "Enrolled in “Nurture”" in run.outcomes[0]["detail"]


def test_bad_params_are_refused_naming_the_field(welcome):
    with pytest.raises(ValidationError) as refused:
        rule(
            trigger={"events": ["created"]},
            actions=[
                {"kind": "send_email", "params": {"template_id": 999999}},
                {"kind": "send_email", "params": {"template_id": welcome.pk, "to": "everyone"}},
                {"kind": "enroll_sequence", "params": {}},
            ],
        )
    errors = " ".join(refused.value.message_dict["actions"])
    assert "template_id: no email template with id 999999" in errors
    assert "to: “record”" in errors
    assert "sequence_id: give a list of ids" in errors
    with pytest.raises(ValidationError) as refused:
        rule(
            model="sales.Opportunity",
            trigger={"events": ["created"]},
            actions=[{"kind": "send_email", "params": {"template_id": welcome.pk}}],
        )
    assert "“send_email” is not an action for opportunity" in " ".join(refused.value.message_dict["actions"])


def test_the_preview_says_who_would_be_emailed_and_writes_nothing(stages, welcome, owner):
    lead = crm_services.lead_create(user=SYSTEM, data={"name": "Road Runner", "email": "beep@runner.example"})
    the_rule = rule(
        trigger={"events": ["updated"]},
        actions=[{"kind": "send_email", "params": {"template_id": welcome.pk}}],
    )
    before = database_fingerprint()

    preview = engine.rule_preview(rule=the_rule, record_id=lead.pk)

    assert preview["actions"][0]["would"] == "Would email beep@runner.example: “Welcome to Acme, Road Runner”"
    assert database_fingerprint() == before
