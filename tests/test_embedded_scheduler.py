"""Without a broker (``make run``) the web process runs beat's schedule itself, so reminders, digests
and the sweeps still happen with nothing else started. The last test serves the site with a real
``manage.py runserver`` and waits for a due reminder to be sent by that process alone."""

import datetime
import os
import socket
import subprocess
import sys
import time

import pytest
from celery.schedules import crontab
from django.utils import timezone

from crm.models import Notification, NotificationKind
from crm_project.celery import app
from crm_project.scheduler import EmbeddedScheduler
from tests import backbone
from tests.backbone import BASE_DIR, wait_until
from tests.factories import ActivityFactory, LeadFactory, UserFactory


def due_reminder(stages, owner):
    lead = LeadFactory(stage=stages["New"], owner=owner)
    return ActivityFactory(
        subject="Call Acme", lead=lead, owner=owner, remind_at=timezone.now() - datetime.timedelta(minutes=1)
    )


@pytest.mark.django_db
def test_intervals_run_at_start_then_every_interval_and_crontabs_at_their_time(stages):
    owner = UserFactory(username="rep")
    start = timezone.now()
    scheduler = EmbeddedScheduler(
        app,
        {
            "reminders": {"task": "activities.tasks.activity_reminders_send", "schedule": 60.0},
            "digest": {"task": "activities.tasks.activity_digest_send", "schedule": crontab(minute=0)},
        },
        now=start,
    )
    reminder = due_reminder(stages, owner)

    assert scheduler.tick(start) == ["reminders"]  # what waited while nothing ran goes out at once
    reminder.refresh_from_db()
    assert reminder.reminded_at is not None  # claimed and sent (the notification follows the commit)
    assert scheduler.tick(start + datetime.timedelta(seconds=1)) == []  # not again until the interval
    assert scheduler.entries[0][3] == start
    # Entries remember when they last ran: once the interval has passed, the reminders run again.
    scheduler.entries[0][3] = start - datetime.timedelta(seconds=61)
    assert "reminders" in scheduler.tick()


@pytest.mark.django_db
def test_a_failing_entry_does_not_stop_the_others(stages):
    scheduler = EmbeddedScheduler(
        app,
        {
            "broken": {"task": "crm.jobs.tasks.job_run", "schedule": 10.0},  # needs an argument: fails
            "reminders": {"task": "activities.tasks.activity_reminders_send", "schedule": 10.0},
        },
    )
    reminder = due_reminder(stages, UserFactory(username="rep"))

    assert scheduler.tick() == ["broken", "reminders"]
    reminder.refresh_from_db()
    assert reminder.reminded_at is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.celery_worker  # the test database must be a file on SQLite, shared with the server process
@pytest.mark.django_db(transaction=True)
def test_runserver_without_a_broker_sends_a_due_reminder_on_its_own(stages, tmp_path):
    owner = UserFactory(username="rep")
    due_reminder(stages, owner)
    port = free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm_project.settings",
        "DATABASE_URL": backbone.test_database_url(),
        "CELERY_BROKER_URL": "",
        "CRM_EMBEDDED_SCHEDULER": "true",
        "CRM_EMBEDDED_SCHEDULER_TICK": "0.2",
        "PYTHONPATH": str(BASE_DIR),
    }
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=BASE_DIR,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        notification = wait_until(
            lambda: Notification.objects.filter(recipient=owner, kind=NotificationKind.REMINDER).first(),
            timeout=60,
            interval=0.2,
        )
        assert notification.title == "Reminder: Call Acme"
        time.sleep(1)  # several ticks later: still one reminder
        assert Notification.objects.filter(recipient=owner, kind=NotificationKind.REMINDER).count() == 1
    finally:
        server.terminate()
        server.wait(15)
        log.close()
