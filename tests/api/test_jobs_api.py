"""Issue 16 item 5, the API: large imports and exports run as jobs (202 + the job's URL), small ones
answer at once as before; a job is seen by the person who started it and by CRM Admins only.

No broker is configured here (the embedded mode): the job runs in process once the request's
transaction commits (``run_jobs``: the test's own transaction never commits), so the 202 of ``make
run`` already carries the finished job. tests/crm/test_jobs_worker.py runs the same flow through a
real Celery worker.
"""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from crm.models import Job, JobStatus, Lead
from tests.crm.importing_helpers import csv_bytes
from tests.factories import LeadFactory

_capture = None

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/crm/leads/"
JOBS = "/api/v1/crm/jobs/"


@pytest.fixture(autouse=True)
def job_settings(settings, tmp_path):
    settings.CRM_IMPORT_SYNC_MAX_ROWS = 5
    settings.CRM_EXPORT_SYNC_MAX_ROWS = 3
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def upload(content: bytes, name="leads.csv"):
    return SimpleUploadedFile(name, content, content_type="text/csv")


def leads_file(count: int, *, bad_row: int | None = None) -> bytes:
    rows = [["name", "email", "priority"]]
    for n in range(1, count + 1):
        rows.append([f"Lead {n}", f"lead{n}@x.test", "bogus" if n == bad_row else "high"])
    return csv_bytes(rows)


@pytest.fixture(autouse=True)
def run_jobs(django_capture_on_commit_callbacks):
    """What commits in a request runs as it would outside the test's transaction."""
    global _capture
    _capture = django_capture_on_commit_callbacks


def committed(call, *args, **kwargs):
    with _capture(execute=True):
        return call(*args, **kwargs)


def post_import(client, content: bytes, **data):
    return committed(client.post, LEADS + "import/", {"file": upload(content), **data}, format="multipart")


def test_a_small_import_stays_synchronous(owner, stages):
    response = post_import(client_for(owner), leads_file(3))

    assert response.status_code == 200
    assert response.json()["new"] == 3 and response.json()["committed"] is True
    assert not Job.objects.exists()


def test_a_large_import_answers_202_with_the_job(owner, stages):
    response = post_import(client_for(owner), leads_file(12))

    assert response.status_code == 202, response.content
    job = Job.objects.get()
    assert response["Location"] == f"http://testserver{JOBS}{job.pk}/"
    assert response.json()["url"] == response["Location"]
    body = client_for(owner).get(response["Location"]).json()
    assert (body["kind"], body["resource"], body["status"]) == ("import", "leads", "succeeded")
    progress = body["progress"]
    assert (progress["done"], progress["total"], progress["percent"]) == (12, 12, 100)
    assert body["result"]["new"] == 12 and body["result"]["committed"] is True
    assert body["errors"] == [] and body["download_url"] is None
    assert Lead.objects.filter(owner=owner).count() == 12
    job.refresh_from_db()
    assert not job.input_file  # the stored upload is removed once the job ends


def test_a_failing_import_job_changes_nothing_and_reports_every_bad_row(owner, stages):
    response = post_import(client_for(owner), leads_file(12, bad_row=11))

    assert response.status_code == 202
    body = client_for(owner).get(response["Location"]).json()
    assert body["status"] == "failed"
    assert body["result"]["committed"] is False and body["result"]["errors"] == 1
    (error,) = body["result"]["row_errors"]
    assert (error["row"], error["column"], error["value"]) == (12, "priority", "bogus")
    assert body["errors"] == [
        "1 of 12 rows are invalid; nothing was imported. Fix them and import the file again."
    ]
    assert not Lead.objects.exists()


def test_a_large_dry_run_job_writes_nothing(owner, stages):
    response = post_import(client_for(owner), leads_file(12), dry_run="true")

    body = client_for(owner).get(response["Location"]).json()
    assert response.status_code == 202 and body["status"] == "succeeded"
    assert body["result"]["new"] == 12 and body["result"]["dry_run"] is True
    assert not Lead.objects.exists()


def test_a_bad_large_file_is_still_answered_at_once(owner, stages):
    content = b"name\n" + b"\x00\n" * 20
    response = post_import(client_for(owner), content)

    assert response.status_code == 400 and response.json()["file_errors"]
    assert not Job.objects.exists()


def test_a_large_export_answers_202_and_its_file_downloads(owner, teammate, stages):
    for n in range(5):
        LeadFactory(name=f"Mine {n}", email=f"m{n}@x.test", owner=owner, stage=stages["New"], priority="high")
    LeadFactory(name="Low", email="low@x.test", owner=owner, stage=stages["New"], priority="low")
    LeadFactory(name="Not mine", email="t@x.test", owner=teammate, stage=stages["New"], priority="high")
    client = client_for(owner)

    response = committed(client.get, LEADS + "export/?format=csv&priority=high&ordering=name")
    body = client.get(response["Location"]).json()

    assert response.status_code == 202, response.content
    assert (body["kind"], body["status"], body["params"]["format"]) == ("export", "succeeded", "csv")
    assert body["result"]["rows"] == 5 and body["progress"]["percent"] == 100
    download = client.get(body["download_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"].startswith('attachment; filename="leads-')
    content = b"".join(download.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(content)))
    # The list's filters, ordering and the reader's visibility apply, as in a small export.
    assert [row["name"] for row in rows] == [f"Mine {n}" for n in range(5)]


def test_a_small_export_stays_synchronous(owner, stages):
    LeadFactory(name="Only", owner=owner, stage=stages["New"])

    response = client_for(owner).get(LEADS + "export/?format=csv")

    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert not Job.objects.exists()


def test_someone_elses_job_is_404_and_the_list_shows_mine(owner, outsider, crm_admin, stages):
    mine = post_import(client_for(owner), leads_file(8))
    theirs = post_import(
        client_for(outsider), csv_bytes([["name", "email"]] + [[f"O {n}", f"o{n}@x.test"] for n in range(8)])
    )
    mine_id, theirs_id = mine.json()["id"], theirs.json()["id"]

    assert client_for(owner).get(f"{JOBS}{theirs_id}/").status_code == 404
    assert client_for(owner).get(f"{JOBS}{theirs_id}/download/").status_code == 404
    listed = client_for(owner).get(JOBS).json()
    assert [job["id"] for job in listed["results"]] == [mine_id] and listed["count"] == 1
    # A CRM Admin sees everyone's jobs.
    everyone = client_for(crm_admin).get(JOBS).json()
    assert {job["id"] for job in everyone["results"]} == {mine_id, theirs_id}
    assert APIClient().get(JOBS).status_code in {401, 403}


def test_an_import_job_has_no_download(owner, stages):
    job_id = post_import(client_for(owner), leads_file(8)).json()["id"]

    response = client_for(owner).get(f"{JOBS}{job_id}/download/")

    assert response.status_code == 404
    assert client_for(owner).get(f"{JOBS}not-a-number/").status_code == 404


def test_the_jobs_list_costs_a_fixed_number_of_queries(owner, django_assert_max_num_queries):
    client = client_for(owner)

    def add(count):
        for _ in range(count):
            Job.objects.create(kind="import", resource="leads", status=JobStatus.SUCCEEDED, created_by=owner)

    add(2)
    client.get(JOBS)  # warm up
    with django_assert_max_num_queries(4):
        assert len(client.get(JOBS).json()["results"]) == 2
    add(20)
    with django_assert_max_num_queries(4):
        assert len(client.get(JOBS).json()["results"]) == 22


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_202_carries_the_finished_job(admin_user, stages):
    """As in ``make run``: the request's write commits, the job runs in process, then the 202 answers."""
    response = client_for(admin_user).post(
        LEADS + "import/", {"file": upload(leads_file(9))}, format="multipart"
    )

    assert response.status_code == 202
    assert response.json()["status"] == "succeeded" and response.json()["result"]["new"] == 9
    assert Lead.objects.count() == 9
