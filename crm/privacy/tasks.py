"""Celery task of privacy: the retention period applied to old leads (nightly, in beat's schedule)."""

from celery import shared_task

from crm.actors import SYSTEM
from crm.privacy.services import retention_apply as retention_apply_service


@shared_task(name="crm.privacy.tasks.retention_apply", ignore_result=True)
def retention_apply() -> int:
    """Leads past CRM_RETENTION_MONTHS anonymised, a batch a run; how many this run took."""
    done = retention_apply_service(user=SYSTEM)
    return done.counts.get("leads", 0) if done is not None else 0
