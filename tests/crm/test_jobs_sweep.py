"""A job whose task never reached a worker (the broker was down when it was started) is queued again
by beat's sweep once it has waited CRM_JOB_REQUEUE_AFTER seconds, and runs once."""

import datetime

import pytest
from django.utils import timezone

from crm.jobs.services import job_import_start
from crm.jobs.tasks import job_run, jobs_queued_sweep
from crm.models import Job, JobStatus, Lead
from tests.crm.importing_helpers import csv_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def test_the_sweep_runs_a_job_left_queued_once(admin_user, stages):
    data = csv_bytes([["name", "email"], ["A", "a@x.test"], ["B", "b@x.test"]])
    # The test's transaction never commits, so the task is never sent: as with a broker that was down.
    job = job_import_start(user=admin_user, resource="leads", data=data, filename="leads.csv", rows=2)
    assert jobs_queued_sweep() == 0  # not waiting long enough yet
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - datetime.timedelta(minutes=10))

    assert jobs_queued_sweep() == 1  # no broker: it runs here and now

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.result["new"] == 2
    assert Lead.objects.count() == 2
    assert job_run(job.pk) == "skipped"  # a second delivery of its task does not import it again
    assert Lead.objects.count() == 2
