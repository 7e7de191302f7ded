"""Issue 17 item 3 through real components: a Celery worker on Redis advances enrollments and sends
their email to an SMTP server on loopback; two workers (and concurrent advance calls on PostgreSQL)
never run the same step twice."""

import datetime
import threading

import pytest
from django.db import connection
from django.utils import timezone

from activities.models import Activity
from crm.actors import SYSTEM
from crm.messaging.services import email_template_create
from crm.models import EnrollmentStatus, OutgoingEmail, OutgoingEmailStatus, SequenceEnrollment
from crm.sequences import runner, services
from crm.sequences.tasks import sequence_enrollments_advance
from tests.backbone import wait_until
from tests.factories import ContactFactory, LeadFactory, UserFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def welcome(db):
    return email_template_create(
        user=SYSTEM,
        data={"name": "Welcome", "subject": "Welcome {{ recipient.first_name }}", "body_html": "<p>Hi</p>"},
    )


def sequence_of(steps):
    numbered = [{"position": n, **step} for n, step in enumerate(steps, start=1)]
    return services.sequence_create(user=SYSTEM, data={"name": "Nurture"}, steps=numbered)


def to_records(smtp_server, domain):
    return [m for m in smtp_server.received() if m["To"].endswith(domain)]


def test_a_sequence_runs_end_to_end_through_a_worker(stages, welcome, smtp_server, start_worker):
    start_worker()
    owner = UserFactory(username="ann")
    lead = LeadFactory(
        contact_name="Wile Coyote", email="wile@acme.example", stage=stages["New"], owner=owner
    )
    opted_out = ContactFactory(first_name="Road", email="road@runner.example")
    sequence = sequence_of(
        [
            {"kind": "email", "email_template": welcome},
            {"kind": "wait", "wait_days": 2, "business_days": True},
            {"kind": "task", "task_subject": "Call Wile", "task_type": "call"},
        ]
    )

    # The contact opts out once enrolled and before any worker runs its first step (no kick yet).
    other = services.sequence_enroll(sequence=sequence, record=opted_out, user=SYSTEM, kick=False)
    type(opted_out).objects.filter(pk=opted_out.pk).update(email_opt_out=True)
    enrollment = services.sequence_enroll(sequence=sequence, record=lead, user=owner)  # the worker runs it

    smtp_server.wait_for(1, timeout=30)
    waiting = wait_until(lambda: SequenceEnrollment.objects.filter(pk=enrollment.pk, position=3).first(), 30)
    assert waiting.next_run_at.date() > timezone.now().date()
    (message,) = to_records(smtp_server, "acme.example")
    assert message["Subject"] == "Welcome Wile"
    # The clock moves on: the wait is over (the worker's clock cannot be travelled; its due time can).
    SequenceEnrollment.objects.filter(pk=enrollment.pk).update(next_run_at=timezone.now())
    sequence_enrollments_advance.apply_async(retry=False)

    done = wait_until(
        lambda: SequenceEnrollment.objects.filter(
            pk=enrollment.pk, status=EnrollmentStatus.COMPLETED
        ).first(),
        30,
    )
    assert Activity.objects.filter(lead=lead, activity_type="call", subject="Call Wile").count() == 1
    assert [e.kind for e in done.events.order_by("id")] == [
        "enrolled",
        "emailed",
        "waited",
        "task_created",
        "completed",
    ]
    other.refresh_from_db()
    assert other.status == EnrollmentStatus.STOPPED and "opted out" in other.stop_reason
    assert to_records(smtp_server, "runner.example") == []


def test_each_step_runs_once_with_two_workers(stages, welcome, smtp_server, start_worker):
    leads = [LeadFactory(email=f"lead{n}@many.example", stage=stages["New"]) for n in range(30)]
    sequence = sequence_of(
        [{"kind": "email", "email_template": welcome}, {"kind": "task", "task_subject": "Next"}]
    )
    for lead in leads:
        services.sequence_enroll(sequence=sequence, record=lead, user=SYSTEM, kick=False)
    start_worker(concurrency=2)
    start_worker(concurrency=2)

    for _ in range(8):  # two beats, four ticks each, landing on four pool processes at once
        sequence_enrollments_advance.apply_async(retry=False)

    wait_until(lambda: not SequenceEnrollment.objects.filter(status=EnrollmentStatus.ACTIVE).exists(), 60)
    smtp_server.wait_for(30, timeout=30)
    wait_until(lambda: OutgoingEmail.objects.filter(status=OutgoingEmailStatus.SENT).count() == 30, 30)
    assert sorted(m["To"] for m in to_records(smtp_server, "many.example")) == sorted(
        lead.email for lead in leads
    )
    assert Activity.objects.filter(activity_type="task", subject="Next").count() == 30
    assert OutgoingEmail.objects.count() == 30


@pytest.mark.postgres_only
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one writer at a time anyway")
def test_concurrent_advance_calls_on_postgresql_run_each_step_once(stages, welcome, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    sequence = sequence_of(
        [{"kind": "task", "task_subject": "Once"}, {"kind": "email", "email_template": welcome}]
    )
    for n in range(40):
        lead = LeadFactory(email=f"lead{n}@pg.example", stage=stages["New"])
        services.sequence_enroll(sequence=sequence, record=lead, user=SYSTEM, kick=False)
    barrier = threading.Barrier(4)
    counts: list[int] = []
    later = timezone.now() + datetime.timedelta(seconds=1)

    def beat():
        try:
            barrier.wait()
            counts.append(runner.sequence_enrollments_advance(now=later, batch_size=5))
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(counts) == 40
    assert Activity.objects.filter(activity_type="task", subject="Once").count() == 40
    assert OutgoingEmail.objects.count() == 40
    assert not SequenceEnrollment.objects.exclude(status=EnrollmentStatus.COMPLETED).exists()
