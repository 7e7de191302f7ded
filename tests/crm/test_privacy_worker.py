"""Issue 19 item 5: the retention task run by a real Celery worker on Redis, as beat sends it nightly."""

import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from crm.models import Lead, LeadStatus, PrivacyRequest, PrivacyRequestKind
from crm.privacy.tasks import retention_apply
from tests.backbone import wait_until
from tests.factories import LeadFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def test_the_worker_anonymises_leads_past_the_retention_period(stages, start_worker):
    long_ago = timezone.now() - datetime.timedelta(days=500)
    with transaction.atomic():
        old = LeadFactory(
            name="Old", contact_name="Otto Oldfield", email="otto@example.test", stage=stages["New"]
        )
        recent = LeadFactory(
            name="New", contact_name="Nia Newman", email="nia@example.test", stage=stages["New"]
        )
        Lead.objects.filter(pk=old.pk).update(status=LeadStatus.LOST, updated_at=long_ago)
    start_worker(CRM_RETENTION_MONTHS="12")

    retention_apply.delay()

    run = wait_until(
        lambda: PrivacyRequest.objects.filter(kind=PrivacyRequestKind.RETENTION).first(), timeout=60
    )
    assert run.records["leads"] == [old.pk] and run.requested_by is None
    old.refresh_from_db(), recent.refresh_from_db()
    assert (old.contact_name, old.email) == ("", "")
    assert (recent.contact_name, recent.email) == ("Nia Newman", "nia@example.test")
