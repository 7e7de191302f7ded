"""Issue 16 items 3 and 4 through real components: a Celery worker on Redis relays the events to the
notification consumers and sends their email to an SMTP server on loopback; a reminder fires exactly
once though two worker processes (what two beat processes cause) run the reminder task together."""

import datetime
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from activities import reminders
from activities.models import Activity
from activities.tasks import activity_reminders_send
from crm import services as crm_services
from crm.models import Notification, NotificationKind
from tests.backbone import wait_until
from tests.factories import ActivityFactory, LeadFactory, UserFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rep(db):
    # Plain users: a transactional test empties the tables, the roles' groups included.
    return UserFactory(username="rep")


@pytest.fixture
def other_rep(db):
    return UserFactory(username="other_rep")


def test_an_assignment_reaches_the_new_owner_by_email_through_a_worker(
    rep, other_rep, admin_user, stages, smtp_server, start_worker
):
    start_worker()
    lead = LeadFactory(name="Acme", stage=stages["New"], owner=rep)

    crm_services.lead_update(lead=lead, user=admin_user, data={"owner": other_rep})

    (message,) = smtp_server.wait_for(1, timeout=30)
    assert message["To"] == other_rep.email and message["Subject"] == "Lead assigned to you: Acme"
    notification = wait_until(
        lambda: Notification.objects.filter(recipient=other_rep, emailed_at__isnull=False).first()
    )
    assert notification.kind == NotificationKind.ASSIGNED and notification.in_app


def due_reminders(owner, stages, count):
    lead = LeadFactory(stage=stages["New"], owner=owner)
    past = timezone.now() - datetime.timedelta(minutes=1)
    return [
        ActivityFactory(subject=f"Call {n}", lead=lead, owner=owner, remind_at=past) for n in range(count)
    ]


def test_a_reminder_fires_exactly_once_with_two_workers_running_the_task_together(
    rep, stages, smtp_server, start_worker
):
    activities = due_reminders(rep, stages, 12)
    start_worker(concurrency=2)
    start_worker(concurrency=2)

    for _ in range(8):  # two beats, four ticks each, landing on four pool processes at once
        activity_reminders_send.apply_async(retry=False)

    smtp_server.wait_for(12, timeout=40)
    wait_until(lambda: not Activity.objects.filter(reminded_at__isnull=True).exists())
    time.sleep(2)  # a second email for any reminder would have arrived by now
    subjects = sorted(message["Subject"] for message in smtp_server.received())
    assert subjects == sorted(f"Reminder: {a.subject}" for a in activities)
    assert Notification.objects.filter(kind=NotificationKind.REMINDER).count() == 12


@pytest.mark.postgres_only
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one writer at a time anyway")
def test_two_concurrent_claims_on_postgresql_send_each_reminder_once(rep, stages, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    due_reminders(rep, stages, 40)
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def beat():
        try:
            barrier.wait()
            counts.append(reminders.activity_reminders_send(batch=5))
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(counts) == 40
    assert Notification.objects.filter(kind=NotificationKind.REMINDER).count() == 40
    assert not Activity.objects.filter(reminded_at__isnull=True).exists()


# Prints how many reminders it claimed (on a line of its own, among the log lines), then hangs
# inside the transaction.
CLAIM_THEN_HANG = """
import sys, time
from django.db import transaction
from activities.reminders import activity_reminders_send
with transaction.atomic():
    print(activity_reminders_send(), flush=True)
    time.sleep(60)
"""


def test_a_run_killed_before_it_commits_leaves_the_reminder_to_the_next_run(
    rep, stages, smtp_server, tmp_path
):
    """A process that claimed the reminder and dies before its commit (a worker killed mid-task)
    sends nothing; the next run sends the reminder, once."""
    import os
    import signal
    import subprocess
    import sys

    from tests.backbone import BASE_DIR, test_database_url

    (activity,) = due_reminders(rep, stages, 1)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm_project.settings",
        "DATABASE_URL": test_database_url(),
        "EMAIL_URL": smtp_server.url,
        "CELERY_BROKER_URL": "",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", CLAIM_THEN_HANG],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        lines = iter(process.stdout.readline, b"")
        claimed = next(line.strip() for line in lines if line.strip().isdigit())
        assert claimed == b"1"  # it claimed the reminder...
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # ...and died before committing
        process.wait(10)

    activity.refresh_from_db()
    assert activity.reminded_at is None

    assert reminders.activity_reminders_send() == 1
    assert reminders.activity_reminders_send() == 0
    (message,) = smtp_server.wait_for(1)
    assert message["Subject"] == "Reminder: Call 0"
