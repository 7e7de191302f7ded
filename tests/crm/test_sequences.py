"""Issue 17 item 3, in this process: a sequence's steps advance with a controlled clock (time-machine),
business-day waits skip weekends, a branch goes where its condition says, enrollments stop when the
lead converts or is lost, when the contact opts out, or by hand; opt-out and do-not-call respected.
The email steps reach a real SMTP server on loopback. (The worker runs them in test_sequences_worker.)"""

import datetime
import zoneinfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from activities.models import Activity
from crm import services as crm_services
from crm.actors import SYSTEM
from crm.messaging.services import email_template_create
from crm.models import EnrollmentStatus, OutboxEvent, OutgoingEmail, SequenceEnrollment
from crm.sequences import runner, services
from crm.sequences.runner import days_later
from sales.services import lead_convert
from tests.factories import ContactFactory, LeadFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

UTC = zoneinfo.ZoneInfo("UTC")
# A Thursday, 09:00 UTC.
THURSDAY = datetime.datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def utc(settings):
    settings.TIME_ZONE = "UTC"


@pytest.fixture
def welcome(db):
    return email_template_create(
        user=SYSTEM,
        data={"name": "Welcome", "subject": "Welcome {{ recipient.first_name }}", "body_html": "<p>Hi</p>"},
    )


def make_sequence(steps, name="Nurture"):
    numbered = [{"position": n, **step} for n, step in enumerate(steps, start=1)]
    return services.sequence_create(user=SYSTEM, data={"name": name}, steps=numbered)


def to_records(smtp_server):
    """The messages to the enrolled records (the owners' own notifications left aside)."""
    return [m for m in smtp_server.received() if m["To"] != "ann@example.com"]


def advance(at: datetime.datetime) -> int:
    with time_machine.travel(at, tick=False):
        return runner.sequence_enrollments_advance()


def history(enrollment):
    return [event.kind for event in enrollment.events.order_by("id")]


@pytest.fixture
def owner(db):
    return UserFactory(username="ann")


@pytest.fixture
def lead(stages, owner):
    return LeadFactory(
        name="Acme", contact_name="Wile Coyote", email="wile@acme.example", stage=stages["New"], owner=owner
    )


def enroll(sequence, record, at=THURSDAY):
    with time_machine.travel(at, tick=False):
        return services.sequence_enroll(sequence=sequence, record=record, user=SYSTEM, kick=False)


def test_steps_advance_with_the_clock_email_then_wait_then_task(smtp_server, welcome, lead):
    sequence = make_sequence(
        [
            {"kind": "email", "email_template": welcome},
            {"kind": "wait", "wait_days": 3},
            {"kind": "task", "task_subject": "Call Wile", "task_type": "task", "task_due_days": 1},
        ]
    )
    enrollment = enroll(sequence, lead)

    assert advance(THURSDAY) == 1
    smtp_server.wait_for(1)
    (message,) = to_records(smtp_server)
    assert message["Subject"] == "Welcome Wile" and message["To"] == "wile@acme.example"
    enrollment.refresh_from_db()
    assert enrollment.position == 3 and enrollment.next_run_at == THURSDAY + datetime.timedelta(days=3)
    assert advance(THURSDAY + datetime.timedelta(days=2, hours=23)) == 0  # not due yet
    assert not Activity.objects.filter(activity_type="task").exists()

    assert advance(THURSDAY + datetime.timedelta(days=3)) == 1

    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED and enrollment.next_run_at is None
    task = Activity.objects.get(activity_type="task")
    assert (task.lead, task.subject, task.owner) == (lead, "Call Wile", lead.owner)
    assert task.due_date == THURSDAY + datetime.timedelta(days=4)
    assert history(enrollment) == ["enrolled", "emailed", "waited", "task_created", "completed"]
    # The email is on the lead's timeline too.
    assert Activity.objects.filter(lead=lead, activity_type="email", subject="Welcome Wile").exists()
    assert len(to_records(smtp_server)) == 1


def test_a_business_day_wait_skips_the_weekend(lead):
    sequence = make_sequence(
        [
            {"kind": "wait", "wait_days": 2, "business_days": True},
            {"kind": "task", "task_subject": "Follow up"},
        ]
    )
    enrollment = enroll(sequence, lead)

    advance(THURSDAY)

    enrollment.refresh_from_db()
    monday = THURSDAY + datetime.timedelta(days=4)  # Friday is one business day, Monday the second
    assert enrollment.next_run_at == monday
    assert advance(monday - datetime.timedelta(days=1)) == 0  # Sunday: still waiting
    assert advance(monday) == 1
    assert Activity.objects.filter(activity_type="task", lead=lead).count() == 1


def test_days_later_counts_calendar_days_unless_asked_for_business_days():
    friday = THURSDAY + datetime.timedelta(days=1)
    assert days_later(friday, 1, business_days=False).weekday() == 5  # Saturday
    assert days_later(friday, 1, business_days=True).weekday() == 0  # Monday
    assert days_later(friday, 5, business_days=True) == friday + datetime.timedelta(days=7)


@pytest.mark.parametrize(("rating", "task"), [("hot", "Call now"), ("cold", "Send a brochure")])
def test_a_branch_goes_where_its_condition_says(stages, rating, task):
    lead = LeadFactory(rating=rating, stage=stages["New"])
    sequence = make_sequence(
        [
            {
                "kind": "branch",
                "condition_field": "rating",
                "condition_operator": "equals",
                "condition_value": "hot",
                "branch_to": 4,
            },
            {"kind": "task", "task_subject": "Send a brochure"},
            {
                "kind": "branch",
                "condition_field": "email",
                "condition_operator": "is_not_empty",
            },  # to the end
            {"kind": "task", "task_subject": "Call now"},
        ]
    )
    enrollment = enroll(sequence, lead)

    advance(THURSDAY)

    assert list(Activity.objects.filter(lead=lead).values_list("subject", flat=True)) == [task]
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED


def test_a_branch_is_checked_when_saved(db):
    with pytest.raises(ValidationError) as refused:
        make_sequence(
            [
                {"kind": "task", "task_subject": "x"},
                {"kind": "branch", "condition_field": "shoe_size", "branch_to": 1},
            ]
        )
    messages = " ".join(refused.value.messages)
    assert "Step 2" in messages and "Choose one of" in messages and "goes forward" in messages


def two_step(welcome):
    return make_sequence([{"kind": "wait", "wait_days": 1}, {"kind": "email", "email_template": welcome}])


def test_the_enrollment_stops_when_the_lead_converts(smtp_server, welcome, lead):
    enrollment = enroll(two_step(welcome), lead)
    advance(THURSDAY)

    lead_convert(lead=lead, user=SYSTEM, create_opportunity=False)

    enrollment.refresh_from_db()
    assert (
        enrollment.status == EnrollmentStatus.STOPPED and enrollment.stop_reason == "The lead was converted."
    )
    advance(THURSDAY + datetime.timedelta(days=2))
    assert to_records(smtp_server) == [] and not OutgoingEmail.objects.exists()


def test_the_enrollment_stops_when_the_lead_is_lost(smtp_server, welcome, lead):
    enrollment = enroll(two_step(welcome), lead)
    advance(THURSDAY)

    crm_services.lead_mark_lost(lead=lead, user=SYSTEM)

    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.STOPPED and enrollment.stop_reason == "The lead was lost."
    advance(THURSDAY + datetime.timedelta(days=2))
    assert to_records(smtp_server) == []


def test_the_enrollment_stops_when_the_contact_opts_out_and_no_message_arrives(smtp_server, welcome):
    contact = ContactFactory(first_name="Road", email="road@runner.example")
    enrollment = enroll(two_step(welcome), contact)
    advance(THURSDAY)

    crm_services.contact_update(contact=contact, user=SYSTEM, data={"email_opt_out": True})

    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.STOPPED
    assert enrollment.stop_reason == "The contact opted out of email."
    advance(THURSDAY + datetime.timedelta(days=2))
    assert to_records(smtp_server) == [] and not OutgoingEmail.objects.exists()


def test_an_opt_out_the_runner_finds_before_the_step_stops_it_too(smtp_server, welcome, lead):
    """A lead whose address a contact opted out with: the runner stops it before any email."""
    enrollment = enroll(two_step(welcome), lead)
    advance(THURSDAY)
    ContactFactory(email="Wile@Acme.example").__class__.objects.filter(email="Wile@Acme.example").update(
        email_opt_out=True
    )  # written around the services: no event, the runner must find it itself

    advance(THURSDAY + datetime.timedelta(days=2))

    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.STOPPED and "opted out" in enrollment.stop_reason
    assert to_records(smtp_server) == []


def test_an_opted_out_contact_cannot_be_enrolled(welcome):
    contact = ContactFactory(email_opt_out=True)
    with pytest.raises(ValidationError) as refused:
        enroll(two_step(welcome), contact)
    assert "opted out of email" in refused.value.message_dict["contact_id"][0]


def test_stopping_by_hand(welcome, lead, owner):
    enrollment = enroll(two_step(welcome), lead)

    services.enrollment_stop(enrollment=enrollment, user=owner)

    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.STOPPED and "by hand" in enrollment.stop_reason
    assert advance(THURSDAY + datetime.timedelta(days=2)) == 0
    with pytest.raises(ValidationError):
        services.enrollment_stop(enrollment=enrollment, user=owner)


def test_do_not_call_no_call_is_scheduled_but_a_task_is(db):
    contact = ContactFactory(do_not_call=True)
    sequence = make_sequence(
        [
            {"kind": "task", "task_subject": "Ring them", "task_type": "call"},
            {"kind": "task", "task_subject": "Write"},
        ]
    )
    enrollment = enroll(sequence, contact)

    advance(THURSDAY)

    assert list(Activity.objects.filter(contact=contact).values_list("activity_type", "subject")) == [
        ("task", "Write")
    ]
    enrollment.refresh_from_db()
    assert history(enrollment) == ["enrolled", "skipped", "task_created", "completed"]


def test_a_failing_step_is_retried_then_fails_visibly(stages, welcome, lead):
    sequence = make_sequence([{"kind": "email", "email_template": welcome}])
    welcome.__class__.objects.filter(pk=welcome.pk).update(is_active=False)
    enrollment = enroll(sequence, lead)

    at = THURSDAY
    for _ in range(runner.MAX_ATTEMPTS):
        advance(at)
        enrollment.refresh_from_db()
        at = enrollment.next_run_at or at

    assert enrollment.status == EnrollmentStatus.FAILED
    assert "inactive" in enrollment.last_error and enrollment.attempts == runner.MAX_ATTEMPTS
    assert history(enrollment).count("step_failed") == runner.MAX_ATTEMPTS


def test_a_record_is_in_a_sequence_once_at_a_time(welcome, lead):
    sequence = two_step(welcome)
    enroll(sequence, lead)
    with pytest.raises(ValidationError) as refused:
        enroll(sequence, lead)
    assert "already" in refused.value.message_dict["lead_id"][0]
    assert SequenceEnrollment.objects.count() == 1


def test_a_lead_whose_address_is_a_do_not_call_contact_gets_no_call(stages, owner):
    ContactFactory(email="Wile@Acme.example", do_not_call=True)
    lead = LeadFactory(email="wile@acme.example", stage=stages["New"], owner=owner)
    sequence = make_sequence([{"kind": "task", "task_subject": "Ring them", "task_type": "call"}])
    enrollment = enroll(sequence, lead)

    advance(THURSDAY)

    assert not Activity.objects.filter(lead=lead).exists()
    assert history(enrollment) == ["enrolled", "skipped", "completed"]


def _nurture_many(welcome, stages, owner, count, name="Nurture", domain="acme.example"):
    sequence = make_sequence(
        [
            {"kind": "email", "email_template": welcome},
            {"kind": "task", "task_subject": "Call them", "task_type": "call", "task_due_days": 1},
            {"kind": "wait", "wait_days": 2},
        ],
        name=name,
    )
    leads = [
        LeadFactory(
            name=f"Lead {n}",
            contact_name=f"Person {n}",
            email=f"p{n}@{domain}",
            stage=stages["New"],
            owner=owner,
        )
        for n in range(count)
    ]
    return [enroll(sequence, lead) for lead in leads]


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "one_by_one"])
def test_a_batch_writes_each_records_email_task_and_events_in_bulk_or_one_by_one(
    smtp_server, welcome, stages, owner, bulk
):
    enrollments = _nurture_many(welcome, stages, owner, 3)
    ContactFactory(email="p1@acme.example", do_not_call=True)  # lead 1: no call

    with time_machine.travel(THURSDAY, tick=False):
        assert runner.sequence_enrollments_advance(bulk=bulk) == 3
    smtp_server.wait_for(3)

    assert sorted(m["To"] for m in to_records(smtp_server)) == [f"p{n}@acme.example" for n in range(3)]
    calls = Activity.objects.filter(activity_type="call").order_by("lead__name")
    assert [a.lead.name for a in calls] == ["Lead 0", "Lead 2"]
    assert all(a.owner == owner and a.due_date == THURSDAY + datetime.timedelta(days=1) for a in calls)
    assert Activity.objects.filter(activity_type="email", status="completed").count() == 3
    created = OutboxEvent.objects.filter(type="activity.created")
    assert sorted(created.values_list("record_id", flat=True)) == sorted(
        Activity.objects.values_list("pk", flat=True)
    )
    for enrollment in enrollments:
        enrollment.refresh_from_db()
        assert enrollment.position == 4 and enrollment.next_run_at == THURSDAY + datetime.timedelta(days=2)
    assert history(enrollments[1]) == ["enrolled", "emailed", "skipped", "waited"]
    assert history(enrollments[0]) == ["enrolled", "emailed", "task_created", "waited"]


def test_a_batch_of_steps_costs_a_fixed_number_of_queries(
    smtp_server, welcome, stages, owner, django_assert_max_num_queries
):
    """The runner's own queries: the relay that hands the events to their consumers (the owners'
    notifications) runs once the outer transaction commits, outside the count (a worker's job)."""
    first = _nurture_many(welcome, stages, owner, 2, name="Warm-up", domain="warm.example")
    with time_machine.travel(THURSDAY, tick=False):
        runner.sequence_enrollments_advance()  # warm-up: caches, the scoring rules
    SequenceEnrollment.objects.filter(pk__in=[e.pk for e in first]).update(status=EnrollmentStatus.STOPPED)

    for count in (5, 25):
        batch = _nurture_many(
            welcome, stages, owner, count, name=f"Batch {count}", domain=f"b{count}.example"
        )
        with (
            time_machine.travel(THURSDAY, tick=False),
            transaction.atomic(),
            # Without row locks (SQLite) each enrollment is claimed by its own conditional UPDATE. The
            # calls' leads are scored again by the default scoring rules, in one batch.
            django_assert_max_num_queries(
                51 if connection.features.has_select_for_update_skip_locked else 51 + count
            ),
        ):
            assert runner.sequence_enrollments_advance() == count
        SequenceEnrollment.objects.filter(pk__in=[e.pk for e in batch]).update(
            status=EnrollmentStatus.STOPPED
        )
    assert Activity.objects.filter(activity_type="call").count() == 2 + 5 + 25
