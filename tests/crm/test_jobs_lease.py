"""A job's worker holds a lease it renews with a heartbeat: a worker killed mid-job stops beating, and
the sweep runs the job again (the killed run rolled back with its connection), up to
CRM_JOB_MAX_ATTEMPTS runs. Finished jobs and their files go after CRM_JOB_RETENTION_DAYS days."""

import datetime
import os
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from crm.jobs.runner import Heartbeat, jobs_clean_up, jobs_reclaim
from crm.jobs.services import job_file_name
from crm.jobs.tasks import jobs_queued_sweep
from crm.models import Job, JobStatus, Lead
from tests.backbone import BROKER_URL, celery_point_at, redis_flush, wait_until, worker_start
from tests.crm.importing_helpers import csv_bytes

postgres_only = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite locks the file for the import: no lease there"
)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def stale(minutes: int) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(minutes=minutes)


def running_job(user, *, attempts: int, heartbeat_at, input_file: str = "") -> Job:
    return Job.objects.create(
        kind="import",
        resource="leads",
        status=JobStatus.RUNNING,
        created_by=user,
        attempts=attempts,
        started_at=stale(60),
        heartbeat_at=heartbeat_at,
        input_file=input_file,
    )


@postgres_only
@pytest.mark.django_db
def test_a_job_whose_worker_stopped_beating_is_queued_again_and_failed_after_the_last_attempt(
    admin_user, settings
):
    settings.CRM_JOB_LEASE, settings.CRM_JOB_MAX_ATTEMPTS = 300, 3
    alive = running_job(admin_user, attempts=1, heartbeat_at=stale(1))
    lost = running_job(admin_user, attempts=1, heartbeat_at=stale(10))
    never_beat = running_job(admin_user, attempts=2, heartbeat_at=None)  # started before leases existed
    upload = default_storage.save("crm-jobs/x/leads.csv", ContentFile(b"name\nA\n"))
    exhausted = running_job(admin_user, attempts=3, heartbeat_at=stale(10), input_file=upload)

    assert sorted(jobs_reclaim()) == sorted([lost.pk, never_beat.pk])

    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses == {
        alive.pk: JobStatus.RUNNING,
        lost.pk: JobStatus.QUEUED,
        never_beat.pk: JobStatus.QUEUED,
        exhausted.pk: JobStatus.FAILED,
    }
    exhausted.refresh_from_db()
    assert "stopped 3 times" in exhausted.errors[0] and exhausted.finished_at
    assert not default_storage.exists(upload) and exhausted.input_file == ""
    assert jobs_reclaim() == []  # nothing is taken twice


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite case")
def test_on_sqlite_a_running_job_keeps_its_run(admin_user):
    job = running_job(admin_user, attempts=1, heartbeat_at=stale(60))
    assert jobs_reclaim() == []
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_renews_the_lease_while_the_job_runs_and_stops_with_it(admin_user, settings):
    settings.CRM_JOB_HEARTBEAT = 0.05
    job = running_job(admin_user, attempts=1, heartbeat_at=stale(10))

    with Heartbeat(job):
        wait_until(lambda: Job.objects.get(pk=job.pk).heartbeat_at > stale(1), timeout=10)
    last = Job.objects.get(pk=job.pk).heartbeat_at
    time.sleep(0.3)
    assert Job.objects.get(pk=job.pk).heartbeat_at == last  # the thread ended with the job

    # A run that is no longer the job's current one (it was taken over) does not renew the lease.
    Job.objects.filter(pk=job.pk).update(attempts=2, heartbeat_at=stale(10))
    with Heartbeat(job):
        time.sleep(0.3)
    assert Job.objects.get(pk=job.pk).heartbeat_at < stale(5)


@postgres_only
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_import_leaves_nothing_and_the_job_runs_again_on_another(
    admin_user, stages, settings, tmp_path
):
    redis_flush()
    settings.CELERY_BROKER_URL = BROKER_URL
    settings.CRM_IMPORT_SYNC_MAX_ROWS = 50
    celery_point_at(BROKER_URL)
    worker_env = {"MEDIA_ROOT": settings.MEDIA_ROOT, "CRM_JOB_PROGRESS_INTERVAL": 0, "CRM_JOB_HEARTBEAT": 0.2}
    first = worker_start(tmp_path, **worker_env)
    second = None
    try:
        client = APIClient()
        client.force_authenticate(admin_user)
        rows = [["name", "email"]] + [[f"Lead {n}", f"lead{n}@x.test"] for n in range(30_000)]
        data = csv_bytes(rows)
        response = client.post(
            "/api/v1/crm/leads/import/",
            {"file": SimpleUploadedFile("leads.csv", data, content_type="text/csv")},
            format="multipart",
        )
        assert response.status_code == 202, response.content
        job = Job.objects.get(pk=response.json()["id"])

        # Killed while it imports: its transaction goes with its connection.
        wait_until(
            lambda: Job.objects.filter(pk=job.pk, status="running", progress_done__gt=0).exists(), 60, 0.02
        )
        first.kill()
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING and job.attempts == 1
        assert jobs_queued_sweep() == 0  # the lease has not run out yet
        settings.CRM_JOB_LEASE = 1
        wait_until(
            lambda: Job.objects.get(pk=job.pk).heartbeat_at < stale(0) - datetime.timedelta(seconds=1), 10
        )
        assert Lead.objects.count() == 0

        assert jobs_queued_sweep() == 1  # queued again on the broker
        second = worker_start(tmp_path, **worker_env)
        wait_until(
            lambda: Job.objects.get(pk=job.pk).status in ("succeeded", "failed"), timeout=180, interval=0.2
        )
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, job.errors
        assert job.attempts == 2 and job.result["new"] == 30_000
        assert Lead.objects.count() == 30_000  # once, not once and a part
        assert client.get(f"/api/v1/crm/jobs/{job.pk}/").json()["attempts"] == 2
    finally:
        first.kill()
        if second:
            second.kill()
        celery_point_at(BROKER_URL)


@pytest.mark.django_db
def test_finished_jobs_past_retention_go_with_their_files(admin_user, settings):
    settings.CRM_JOB_RETENTION_DAYS = 30
    old = Job.objects.create(
        kind="export", resource="leads", status=JobStatus.SUCCEEDED, created_by=admin_user
    )
    old_file = default_storage.save(job_file_name(old, "leads.csv"), ContentFile(b"name\nA\n"))
    Job.objects.filter(pk=old.pk).update(
        result_file=old_file, finished_at=timezone.now() - datetime.timedelta(days=31)
    )
    old_failed = Job.objects.create(
        kind="import", resource="leads", status=JobStatus.FAILED, created_by=admin_user
    )
    Job.objects.filter(pk=old_failed.pk).update(finished_at=timezone.now() - datetime.timedelta(days=40))
    recent = Job.objects.create(
        kind="export", resource="leads", status=JobStatus.SUCCEEDED, created_by=admin_user
    )
    recent_file = default_storage.save(job_file_name(recent, "leads.csv"), ContentFile(b"name\nB\n"))
    Job.objects.filter(pk=recent.pk).update(
        result_file=recent_file, finished_at=timezone.now() - datetime.timedelta(days=29)
    )
    queued = Job.objects.create(kind="import", resource="leads", created_by=admin_user)
    Job.objects.filter(pk=queued.pk).update(created_at=timezone.now() - datetime.timedelta(days=90))

    assert jobs_clean_up() == 2

    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, queued.pk}
    assert not default_storage.exists(old_file)
    assert not os.path.exists(default_storage.path(job_file_name(old, "")))  # its folder too
    assert default_storage.exists(recent_file)
