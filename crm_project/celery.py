"""The Celery app: settings from Django's (``CELERY_*``), tasks from the apps, the periodic safety nets."""

import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")

app = Celery("crm_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(
    [
        "crm.events",
        "crm.webhooks",
        "crm.jobs",
        "crm.notifications",
        "crm.automation",
        "crm.messaging",
        "crm.sequences",
        "crm.marketing",
        "crm.reports",
        "crm.privacy",
        "sales",
        "activities",
    ]
)

# Synced into django-celery-beat's tables when beat starts, then editable in the admin. The relay
# is kicked after every commit that writes events; these catch what a broker outage left behind.
app.conf.beat_schedule = {
    "outbox-relay": {"task": "crm.events.tasks.outbox_relay", "schedule": 30.0},
    "webhook-deliveries-due": {"task": "crm.webhooks.tasks.webhook_deliveries_due", "schedule": 15.0},
    "jobs-queued-sweep": {"task": "crm.jobs.tasks.jobs_queued_sweep", "schedule": 60.0},
    # The conversion funnel reads the stage history itself until a reordered pipeline is recounted.
    "reached-stages-rebuild": {"task": "crm.reports.tasks.reached_stages_rebuild", "schedule": 120.0},
    "jobs-clean-up": {"task": "crm.jobs.tasks.jobs_clean_up", "schedule": crontab(hour=3, minute=40)},
    # Automation rules on time conditions and schedules, and runs whose retry fell due.
    "automation-time-scan": {"task": "crm.automation.tasks.automation_time_scan", "schedule": 300.0},
    "automation-schedule-tick": {"task": "crm.automation.tasks.automation_schedule_tick", "schedule": 60.0},
    "automation-runs-due": {"task": "crm.automation.tasks.automation_runs_due", "schedule": 30.0},
    # Sequences: due enrollments move on (batches claimed with SKIP LOCKED: any number of workers).
    "sequence-enrollments-advance": {
        "task": "crm.sequences.tasks.sequence_enrollments_advance",
        "schedule": 60.0,
    },
    "outgoing-emails-queued": {"task": "crm.messaging.tasks.outgoing_emails_queued_send", "schedule": 60.0},
    # Notifications that no event causes (without a broker the web process runs these: scheduler.py).
    "activity-reminders": {"task": "activities.tasks.activity_reminders_send", "schedule": 60.0},
    # Every 15 minutes, so that 08:00 is met in every time zone (some are :30 or :45 off UTC).
    "activity-digest": {"task": "activities.tasks.activity_digest_send", "schedule": crontab(minute="*/15")},
    "opportunity-rotting": {
        "task": "activities.tasks.opportunity_rotting_notify",
        "schedule": crontab(minute=5),
    },
    # Inbound email: every active mailbox read over IMAP (new UIDs only).
    "mailboxes-poll": {
        "task": "activities.tasks.mailboxes_poll",
        "schedule": float(os.environ.get("CRM_MAILBOX_POLL_SECONDS") or 120.0),
    },
    # Tickets nearing or past their SLA deadline: the assignee is warned, the queue manager told.
    "ticket-sla-scan": {"task": "activities.tasks.ticket_sla_scan", "schedule": 60.0},
    # Saved reports e-mailed on their schedule (daily, weekly, monthly) to their owners.
    "saved-reports-send": {
        "task": "crm.reports.tasks.saved_reports_send_due",
        "schedule": crontab(minute=20),
    },
    # Each stage's usual time (stage history): deals longer than that in a stage are flagged rotting.
    "stage-timings-refresh": {
        "task": "sales.tasks.stage_timings_refresh",
        "schedule": crontab(hour=2, minute=40),
    },
    # Churn risk: the points model refitted on the accounts' history and every customer rescored.
    "churn-retrain": {"task": "activities.tasks.churn_retrain", "schedule": crontab(hour=2, minute=50)},
    # Sent quotes whose validity date has passed become expired (hourly: a day's precision is enough).
    "quotes-expire": {"task": "sales.tasks.quotes_expire", "schedule": crontab(minute=10)},
    # Leads lost or inactive past CRM_RETENTION_MONTHS anonymised (nothing while the setting is 0).
    "privacy-retention": {
        "task": "crm.privacy.tasks.retention_apply",
        "schedule": crontab(hour=3, minute=20),
    },
}


@worker_ready.connect
def _drain_on_start(sender, **kwargs):
    """A worker that (re)starts relays what waited in the outbox while no worker or broker was up."""
    sender.app.send_task("crm.events.tasks.outbox_relay")
    sender.app.send_task("crm.webhooks.tasks.webhook_deliveries_due")
    sender.app.send_task("crm.jobs.tasks.jobs_queued_sweep")
    sender.app.send_task("crm.automation.tasks.automation_runs_due")


def _count_task_outcomes() -> None:
    """Task outcomes for /metrics, counted in Redis by every worker (crm_project.observability)."""
    from crm_project.observability import connect_task_signals

    connect_task_signals()


_count_task_outcomes()
