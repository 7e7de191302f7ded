"""Issue 16 item 5 in the admin: a large import or export lands on its job page (progress bar that
refreshes itself while the job runs; the report or the file once it ends); the Jobs list shows mine."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crm.models import Job, JobKind, JobStatus, Lead
from tests.crm.importing_helpers import csv_bytes, read_csv
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def job_settings(settings, tmp_path):
    settings.CRM_IMPORT_TMP_DIR = str(tmp_path / "uploads")
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CRM_IMPORT_SYNC_MAX_ROWS = 5
    settings.CRM_EXPORT_SYNC_MAX_ROWS = 3


def leads_csv(count: int) -> SimpleUploadedFile:
    rows = [["name", "email"]] + [[f"Lead {n}", f"lead{n}@x.test"] for n in range(count)]
    return SimpleUploadedFile("leads.csv", csv_bytes(rows), content_type="text/csv")


def test_a_large_import_lands_on_the_job_page_with_its_report(
    client, owner, stages, django_capture_on_commit_callbacks
):
    client.force_login(owner)
    preview = client.post(reverse("admin:crm_lead_import"), {"file": leads_csv(12)})
    token = preview.context["token"]

    with django_capture_on_commit_callbacks(execute=True):
        confirm = client.post(reverse("admin:crm_lead_import_confirm"), {"token": token})

    job = Job.objects.get()
    assert confirm.status_code == 302 and confirm["Location"] == reverse(
        "admin:crm_job_change", args=[job.pk]
    )
    page = client.get(confirm["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="job-progress" value="100" max="100"' in html
    assert "12 rows: 12 were created, 0 were updated, 0 unchanged." in html
    assert 'http-equiv="refresh"' not in html  # finished: the page stops refreshing
    assert Lead.objects.filter(owner=owner).count() == 12


def test_a_running_job_page_refreshes_itself_and_shows_the_progress(client, owner):
    job = Job.objects.create(
        kind=JobKind.IMPORT,
        resource="leads",
        status=JobStatus.RUNNING,
        phase="writing",
        progress_done=250,
        progress_total=1000,
        params={"filename": "big.csv"},
        created_by=owner,
    )
    client.force_login(owner)

    html = client.get(reverse("admin:crm_job_change", args=[job.pk])).content.decode()

    assert '<meta http-equiv="refresh" content="2">' in html
    assert 'id="job-progress" value="25" max="100"' in html and "250 of 1,000" in html
    assert "big.csv" in html


def test_a_failed_import_job_page_lists_the_rejected_rows(client, owner):
    job = Job.objects.create(
        kind=JobKind.IMPORT,
        resource="leads",
        status=JobStatus.FAILED,
        created_by=owner,
        result={
            "detail": "1 of 9 rows are invalid; nothing was imported.",
            "rows": 9,
            "new": 8,
            "committed": False,
            "errors": 1,
            "file_errors": [],
            "row_errors": [{"row": 4, "column": "priority", "value": "bogus", "message": "Not a choice."}],
        },
        errors=["1 of 9 rows are invalid; nothing was imported."],
    )
    client.force_login(owner)

    page = client.get(reverse("admin:crm_job_change", args=[job.pk]))

    assert page.context["row_errors"][0]["row"] == 4
    assert "Not a choice." in page.content.decode() and 'id="import-errors"' in page.content.decode()


def test_a_large_export_lands_on_the_job_page_with_the_download(
    client, owner, stages, django_capture_on_commit_callbacks
):
    for n in range(5):
        LeadFactory(name=f"Lead {n}", email=f"l{n}@x.test", owner=owner, stage=stages["New"])
    client.force_login(owner)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(reverse("admin:crm_lead_export") + "?format=csv&o=1")

    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:crm_job_change", args=[job.pk]
    )
    page = client.get(response["Location"])
    download_url = reverse("admin:crm_job_download", args=[job.pk])
    assert f'href="{download_url}"' in page.content.decode()
    download = client.get(download_url)
    assert download.status_code == 200
    rows = read_csv(b"".join(download.streaming_content))
    assert sorted(row["name"] for row in rows) == [f"Lead {n}" for n in range(5)]


def test_the_jobs_list_shows_mine_and_someone_elses_job_is_not_found(client, owner, outsider, crm_admin):
    mine = Job.objects.create(kind=JobKind.EXPORT, resource="leads", created_by=owner)
    theirs = Job.objects.create(kind=JobKind.EXPORT, resource="leads", created_by=outsider)
    client.force_login(owner)

    changelist = client.get(reverse("admin:crm_job_changelist"))

    assert changelist.status_code == 200
    assert list(changelist.context["cl"].result_list) == [mine]
    assert client.get(reverse("admin:crm_job_change", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("admin:crm_job_download", args=[theirs.pk])).status_code == 404
    client.force_login(crm_admin)
    assert set(client.get(reverse("admin:crm_job_changelist")).context["cl"].result_list) == {mine, theirs}


def test_the_jobs_changelist_costs_a_fixed_number_of_queries(client, owner, django_assert_max_num_queries):
    client.force_login(owner)
    url = reverse("admin:crm_job_changelist")

    def add(count):
        Job.objects.bulk_create(
            [Job(kind=JobKind.IMPORT, resource="leads", created_by=owner) for _ in range(count)]
        )

    add(2)
    client.get(url)  # warm up
    with django_assert_max_num_queries(25) as small:
        client.get(url)
    add(30)
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(url)
