"""Issue 16 item 5 through real components: a large import posted to the API answers 202 and a Celery
worker process on Redis runs it; the job's progress and result are read back from the API. Progress
is written in transactions of its own, so it outlives (and shows during) the import's transaction."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from rest_framework.test import APIClient

from crm.jobs.runner import ProgressWriter
from crm.models import Job, JobStatus, Lead
from tests.backbone import BROKER_URL, celery_point_at, redis_flush, wait_until, worker_start
from tests.crm.importing_helpers import csv_bytes, read_csv
from tests.factories import LeadFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker(settings, tmp_path):
    redis_flush()
    settings.CELERY_BROKER_URL = BROKER_URL
    settings.CRM_IMPORT_SYNC_MAX_ROWS = 50
    settings.MEDIA_ROOT = str(tmp_path / "media")
    celery_point_at(BROKER_URL)
    yield settings
    celery_point_at(BROKER_URL)


@pytest.fixture
def worker(tmp_path, broker):
    worker = worker_start(tmp_path, MEDIA_ROOT=broker.MEDIA_ROOT, CRM_JOB_PROGRESS_INTERVAL=0)
    yield worker
    worker.kill()


def leads_file(count: int, *, bad_row: int | None = None) -> SimpleUploadedFile:
    rows = [["name", "email", "priority"]]
    rows += [
        [f"Lead {n}", f"lead{n}@x.test", "bogus" if n == bad_row else "high"] for n in range(1, count + 1)
    ]
    return SimpleUploadedFile("leads.csv", csv_bytes(rows), content_type="text/csv")


def wait_for_job(client, url, timeout=60.0) -> tuple[dict, set[str]]:
    seen = set()

    def finished():
        body = client.get(url).json()
        seen.add(body["status"])
        return body if body["status"] in ("succeeded", "failed") else None

    return wait_until(finished, timeout=timeout, interval=0.1), seen


def test_a_large_import_runs_on_a_worker_with_progress_and_result(admin_user, stages, worker):
    client = APIClient()
    client.force_authenticate(admin_user)

    response = client.post("/api/v1/crm/leads/import/", {"file": leads_file(3000)}, format="multipart")

    assert response.status_code == 202, response.content
    assert response.json()["status"] in ("queued", "running")  # the worker, not the request, imports it
    body, seen = wait_for_job(client, response["Location"])
    assert body["status"] == "succeeded", body
    assert seen <= {"queued", "running", "succeeded"}
    assert body["progress"] == {"phase": "done", "done": 3000, "total": 3000, "percent": 100}
    assert (body["result"]["new"], body["result"]["committed"], body["errors"]) == (3000, True, [])
    assert body["started_at"] and body["finished_at"]
    assert Lead.objects.filter(owner=admin_user).count() == 3000
    assert "crm.jobs.tasks.job_run" in worker.output()


def test_a_failing_import_on_a_worker_changes_nothing_and_reports_the_rows(admin_user, stages, worker):
    client = APIClient()
    client.force_authenticate(admin_user)

    response = client.post(
        "/api/v1/crm/leads/import/", {"file": leads_file(200, bad_row=150)}, format="multipart"
    )

    assert response.status_code == 202
    body, _ = wait_for_job(client, response["Location"])
    assert body["status"] == "failed"
    assert [(e["row"], e["column"]) for e in body["result"]["row_errors"]] == [(151, "priority")]
    assert body["result"]["committed"] is False
    assert not Lead.objects.exists()


def test_a_large_export_runs_on_a_worker_and_its_file_downloads(admin_user, stages, broker, worker):
    broker.CRM_EXPORT_SYNC_MAX_ROWS = 3
    for n in range(8):
        LeadFactory(name=f"Lead {n}", email=f"l{n}@x.test", stage=stages["New"], priority="high")
    LeadFactory(name="Low", email="low@x.test", stage=stages["New"], priority="low")
    client = APIClient()
    client.force_authenticate(admin_user)

    response = client.get(
        "/api/v1/crm/leads/export/", {"format": "csv", "priority": "high", "ordering": "-name"}
    )

    assert response.status_code == 202, response.content
    body, _ = wait_for_job(client, response["Location"])
    assert body["status"] == "succeeded", body
    assert body["result"]["rows"] == 8 and body["progress"]["percent"] == 100
    download = client.get(body["download_url"])
    rows = read_csv(b"".join(download.streaming_content))
    # The worker exported the request's own query: its filter and its order.
    assert [row["name"] for row in rows] == [f"Lead {n}" for n in reversed(range(8))]


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite has one writer at a time: an open import transaction holds it, so progress is best effort",
)
def test_progress_is_committed_on_its_own_even_when_the_import_rolls_back(admin_user):
    job = Job.objects.create(kind="import", resource="leads", status=JobStatus.RUNNING, created_by=admin_user)
    writer = ProgressWriter(job)

    with pytest.raises(RuntimeError), transaction.atomic():
        writer("validating", 40, 100)
        raise RuntimeError("the import failed")
    writer.close()

    job.refresh_from_db()
    assert (job.phase, job.progress_done, job.progress_total) == ("validating", 40, 100)
