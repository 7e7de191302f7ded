"""Beat's schedule inside the web process, for the embedded mode (no broker: ``make run``).

With a broker, ``celery -A crm_project beat`` sends the periodic tasks (reminders, the daily digest,
rotting deals, the outbox and job sweeps...) to the workers. Without one nothing would send them, so
the process that serves the site runs the same schedule (``app.conf.beat_schedule``) in a daemon
thread: each entry is run in that thread when it is due, one after the other. Every periodic task
claims its work or keys it by an id (a reminder is claimed once, a digest is keyed by the day), so two
web processes running the schedule side by side send nothing twice.
"""

import datetime
import logging
import threading

from celery.schedules import maybe_schedule
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

logger = logging.getLogger("crm.scheduler")


class EmbeddedScheduler:
    """Runs ``schedule`` (beat's format: name → {"task": name, "schedule": seconds | crontab}).

    An interval entry runs at start (catching up on what waited while nothing ran), then every
    interval; a crontab entry runs at its next time."""

    def __init__(self, app, schedule: dict, *, now: datetime.datetime | None = None):
        self.app = app
        app.loader.import_default_modules()  # the tasks of every app, as a worker would load them
        now = now or timezone.now()
        self.entries = []
        for name, entry in schedule.items():
            when = maybe_schedule(entry["schedule"], app=app)
            is_interval = isinstance(entry["schedule"], int | float | datetime.timedelta)
            last_run = now - datetime.timedelta(days=1) if is_interval else now
            self.entries.append([name, entry["task"], when, last_run])

    def tick(self, now: datetime.datetime | None = None) -> list[str]:
        """Run every entry that is due; returns the names of those run."""
        ran = []
        for entry in self.entries:
            name, task_name, when, last_run = entry
            due, _ = when.is_due(last_run)
            if not due:
                continue
            entry[3] = now or timezone.now()
            ran.append(name)
            try:
                self.app.tasks[task_name]()
            except Exception:
                logger.exception("Scheduled task %s (%s) failed in process", name, task_name)
        return ran


_started = threading.Lock()
_thread: threading.Thread | None = None


def start_if_embedded() -> bool:
    """Start the schedule's thread in this process when there is no broker and the setting allows it;
    once per process. Returns whether it runs."""
    global _thread
    if settings.CELERY_BROKER_URL or not settings.CRM_EMBEDDED_SCHEDULER:
        return False
    with _started:
        if _thread is not None:
            return True
        from crm_project.celery import app

        scheduler = EmbeddedScheduler(app, dict(app.conf.beat_schedule))
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(settings.CRM_EMBEDDED_SCHEDULER_TICK):
                try:
                    scheduler.tick()
                finally:
                    close_old_connections()  # the thread's connection, as after a request

        _thread = threading.Thread(target=run, name="crm-embedded-scheduler", daemon=True)
        _thread.start()
        logger.info("No broker: beat's schedule runs in this process (%s entries)", len(scheduler.entries))
        return True
