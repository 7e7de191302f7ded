"""Periodic tasks of the activities (scheduled in crm_project/celery.py): reminders, digest, rotting deals."""

from celery import shared_task

from activities import reminders
from crm.actors import SYSTEM


@shared_task(name="activities.tasks.activity_reminders_send", ignore_result=True)
def activity_reminders_send() -> int:
    return reminders.activity_reminders_send()


@shared_task(name="activities.tasks.activity_digest_send", ignore_result=True)
def activity_digest_send() -> int:
    return reminders.activity_digest_send()


@shared_task(name="activities.tasks.opportunity_rotting_notify", ignore_result=True)
def opportunity_rotting_notify() -> int:
    return reminders.opportunity_rotting_notify()


@shared_task(name="activities.tasks.mailboxes_poll", ignore_result=True)
def mailboxes_poll() -> int:
    """Read every active mailbox over IMAP (new UIDs only); returns the messages logged."""
    from activities.mail.inbound import mailboxes_poll as poll

    return sum(result.logged for result in poll())


@shared_task(name="activities.tasks.ticket_sla_scan", ignore_result=True)
def ticket_sla_scan(now: str | None = None) -> dict[str, int]:
    """Warn assignees before their tickets' SLA deadlines, tell queue managers of breaches. ``now``
    (ISO 8601) is for replaying a moment; beat sends none."""
    import datetime

    from activities.service import sla

    moment = datetime.datetime.fromisoformat(now) if now else None
    return sla.ticket_sla_scan(now=moment)


@shared_task(name="activities.tasks.churn_retrain", ignore_result=True)
def churn_retrain() -> int:
    """Refit the churn points model on the accounts' history and rescore every customer account."""
    from activities.churn import churn_retrain as retrain

    return retrain(user=SYSTEM)["scored"]
