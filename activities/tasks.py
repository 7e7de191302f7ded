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


@shared_task(name="activities.tasks.churn_retrain", ignore_result=True)
def churn_retrain() -> int:
    """Refit the churn points model on the accounts' history and rescore every customer account."""
    from activities.churn import churn_retrain as retrain

    return retrain(user=SYSTEM)["scored"]
