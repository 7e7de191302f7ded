"""Files and notes on records: upload (API and admin), download only for who sees the record, limits,
Markdown sanitised, @mentions notify."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from activities.models import Attachment, Note
from crm.models import Notification, NotificationKind

FILES = "/api/v1/crm/files/"
NOTES = "/api/v1/crm/notes/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.CRM_FILE_MAX_BYTES = 1000
    return tmp_path


def upload(name="report.pdf", content=b"%PDF-1.4 tiny", ctype="application/pdf"):
    return SimpleUploadedFile(name, content, content_type=ctype)


def stored_files(media):
    return sorted(p for p in media.rglob("*") if p.is_file())


@pytest.mark.django_db
def test_upload_several_files_to_a_lead_then_download_one(api_as, people, media):
    lead = people.records["owner"].lead
    api = api_as("owner")

    response = api.post(
        FILES,
        {
            "record_type": "lead",
            "record_id": lead.pk,
            "file": [upload(), upload("notes.txt", b"hello", "text/plain")],
        },
        format="multipart",
    )

    assert response.status_code == 201, response.content
    assert [row["name"] for row in response.json()] == ["report.pdf", "notes.txt"]
    assert Attachment.objects.filter(record_type="lead", record_id=lead.pk).count() == 2
    assert len(stored_files(media)) == 2
    file_id = response.json()[1]["id"]
    download = api.get(f"{FILES}{file_id}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"hello"
    assert "attachment" in download["Content-Disposition"]
    listed = api.get(FILES, {"record_type": "lead", "record_id": lead.pk}).json()
    assert listed["count"] == 2


@pytest.mark.django_db
def test_another_teams_file_is_404_in_the_api_and_the_admin(api_as, admin_as, people):
    lead = people.records["owner"].lead
    created = api_as("owner").post(
        FILES, {"record_type": "lead", "record_id": lead.pk, "file": [upload()]}, format="multipart"
    )
    file_id = created.json()[0]["id"]

    outsider = api_as("outsider")
    assert outsider.get(f"{FILES}{file_id}/").status_code == 404
    assert outsider.get(f"{FILES}{file_id}/download/").status_code == 404
    assert outsider.delete(f"{FILES}{file_id}/").status_code == 404
    assert outsider.get(FILES).json()["count"] == 0
    assert api_as("manager").get(f"{FILES}{file_id}/download/").status_code == 200  # the owner's manager

    page = admin_as("outsider").get(reverse("admin:activities_attachment_download", args=[file_id]))
    assert page.status_code == 404
    assert (
        admin_as("owner").get(reverse("admin:activities_attachment_download", args=[file_id])).status_code
        == 200
    )
    assert Attachment.objects.filter(pk=file_id).exists()


@pytest.mark.django_db
def test_uploading_to_a_record_one_cannot_see_is_refused(api_as, people, media):
    response = api_as("outsider").post(
        FILES,
        {"record_type": "lead", "record_id": people.records["owner"].lead.pk, "file": [upload()]},
        format="multipart",
    )
    assert response.status_code == 400
    assert "record_id" in response.json()
    assert not Attachment.objects.exists() and stored_files(media) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "files, message",
    [
        ([upload("big.pdf", b"x" * 1001)], "largest file"),
        ([upload("run.exe", b"MZ", "application/octet-stream")], "not accepted"),
        # One good file and one refused: nothing kept.
        ([upload(), upload("page.html", b"<script>", "text/html")], "not accepted"),
    ],
)
def test_a_file_over_the_limit_or_of_a_refused_type_is_a_400_and_nothing_is_kept(
    api_as, people, media, files, message
):
    lead = people.records["owner"].lead
    response = api_as("owner").post(
        FILES, {"record_type": "lead", "record_id": lead.pk, "file": files}, format="multipart"
    )
    assert response.status_code == 400
    assert message in str(response.json()["file"])
    assert not Attachment.objects.exists()
    assert stored_files(media) == []


@pytest.mark.django_db
def test_unknown_record_type_is_a_400(api_as, people):
    response = api_as("owner").post(
        FILES, {"record_type": "planet", "record_id": 1, "file": [upload()]}, format="multipart"
    )
    assert response.status_code == 400
    assert "record_type" in response.json()


@pytest.mark.django_db
def test_admin_upload_of_several_files_from_the_record_page(admin_as, people, media):
    account = people.records["owner"].account
    client = admin_as("owner")
    page = client.get(reverse("admin:crm_account_change", args=[account.pk]))
    assert b"Files and notes" in page.content and b'name="file"' in page.content

    back = reverse("admin:crm_account_change", args=[account.pk])
    response = client.post(
        reverse("admin:activities_attachment_upload"),
        {
            "record_type": "account",
            "record_id": account.pk,
            "next": back,
            "file": [upload(), upload("b.png", b"\x89PNG", "image/png")],
        },
    )

    assert response.status_code == 302 and response["Location"] == back
    assert Attachment.objects.filter(record_type="account", record_id=account.pk).count() == 2
    page = client.get(back)
    assert b"report.pdf" in page.content and b"b.png" in page.content


@pytest.mark.django_db
def test_admin_upload_of_a_refused_file_keeps_nothing(admin_as, people, media):
    lead = people.records["owner"].lead
    response = admin_as("owner").post(
        reverse("admin:activities_attachment_upload"),
        {"record_type": "lead", "record_id": lead.pk, "file": [upload(), upload("x.exe", b"MZ")]},
        follow=True,
    )
    assert b"Nothing uploaded" in response.content
    assert not Attachment.objects.exists() and stored_files(media) == []


@pytest.mark.django_db
def test_deleting_a_record_takes_its_files_and_notes(api_as, people, media):
    lead = people.records["owner"].lead
    api = api_as("owner")
    api.post(FILES, {"record_type": "lead", "record_id": lead.pk, "file": [upload()]}, format="multipart")
    api.post(NOTES, {"record_type": "lead", "record_id": lead.pk, "body": "hi"})
    assert api_as("manager").delete(f"/api/v1/crm/leads/{lead.pk}/").status_code == 204
    assert not Attachment.objects.exists() and not Note.objects.exists()


# --- notes ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_note_is_markdown_rendered_and_sanitised(api_as, people):
    lead = people.records["owner"].lead
    body = "**Call** them <script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>"
    response = api_as("owner").post(NOTES, {"record_type": "lead", "record_id": lead.pk, "body": body})

    assert response.status_code == 201, response.content
    html = response.json()["body_html"]
    assert "<strong>Call</strong>" in html
    assert (
        "<script" not in html and "javascript:" not in html and "onerror" not in html and "<img" not in html
    )


@pytest.mark.django_db
def test_a_mention_notifies_a_user_who_sees_the_record_and_no_one_else(api_as, people):
    lead = people.records["owner"].lead
    body = "Ask @west_manager and @outsider_rep. Also @teammate."
    response = api_as("owner").post(NOTES, {"record_type": "lead", "record_id": lead.pk, "body": body})
    assert response.status_code == 201

    told = Notification.objects.filter(kind=NotificationKind.MENTION)
    # The teammate and the outsider do not see the owner's lead: they are told nothing about it.
    assert {n.recipient.username for n in told} == {"west_manager"}
    notification = told.get()
    assert "mentioned you" in notification.title and notification.record_id == lead.pk
    assert notification.url == reverse("admin:crm_lead_change", args=[lead.pk])

    # Editing the note does not notify again; a newly mentioned user who sees the record is told.
    note_id = response.json()["id"]
    account = people.records["owner"].account
    api_as("owner").patch(f"{NOTES}{note_id}/", {"body": body + " @crm_admin"})
    assert set(Notification.objects.filter(kind="mention").values_list("recipient__username", flat=True)) == {
        "west_manager",
        "crm_admin",
    }
    assert account  # accounts are seen by all: a mention on one tells anyone named


@pytest.mark.django_db
def test_notes_of_another_team_are_hidden_and_not_editable(api_as, people):
    lead = people.records["owner"].lead
    note_id = (
        api_as("owner")
        .post(NOTES, {"record_type": "lead", "record_id": lead.pk, "body": "secret"})
        .json()["id"]
    )
    outsider = api_as("outsider")
    assert outsider.get(f"{NOTES}{note_id}/").status_code == 404
    assert outsider.patch(f"{NOTES}{note_id}/", {"body": "x"}).status_code == 404
    assert outsider.get(NOTES).json()["count"] == 0
    # A teammate-of-the-record's manager may edit it; the body is re-rendered.
    assert (
        api_as("manager").patch(f"{NOTES}{note_id}/", {"body": "_edited_"}).json()["body_html"]
        == "<p><em>edited</em></p>"
    )


@pytest.mark.django_db
def test_notes_and_files_show_in_the_record_timeline(admin_as, api_as, people):
    opportunity = people.records["owner"].opportunity
    api_as("owner").post(
        NOTES, {"record_type": "opportunity", "record_id": opportunity.pk, "body": "Budget **approved**"}
    )
    api_as("owner").post(
        FILES,
        {"record_type": "opportunity", "record_id": opportunity.pk, "file": [upload("quote.pdf")]},
        format="multipart",
    )
    page = admin_as("owner").get(reverse("admin:sales_opportunity_change", args=[opportunity.pk]))
    content = page.content.decode()
    assert "Budget <strong>approved</strong>" in content
    assert "File: quote.pdf" in content


@pytest.mark.django_db
def test_admin_note_from_the_record_page_comes_back_to_it(admin_as, people):
    contact = people.records["owner"].contact
    back = reverse("admin:crm_contact_change", args=[contact.pk])
    response = admin_as("owner").post(
        reverse("admin:activities_note_add") + f"?next={back}",
        {"record_type": "contact", "record_id": contact.pk, "body": "Met at the fair, ping @west_manager"},
    )
    assert response.status_code == 302 and response["Location"].startswith(back)
    assert Note.objects.get().author.username == "owner"
    assert Notification.objects.filter(kind="mention", recipient__username="west_manager").exists()


@pytest.mark.django_db
def test_file_and_note_lists_cost_a_fixed_number_of_queries(api_as, people, django_assert_max_num_queries):
    lead = people.records["owner"].lead
    api = api_as("owner")
    for size in (2, 8):
        for index in range(size):
            api.post(NOTES, {"record_type": "lead", "record_id": lead.pk, "body": f"n{index}"})
            api.post(
                FILES,
                {
                    "record_type": "lead",
                    "record_id": lead.pk,
                    "file": [upload(f"f{index}.txt", b"x", "text/plain")],
                },
                format="multipart",
            )
        api.get(NOTES)
        with django_assert_max_num_queries(8):
            assert api.get(NOTES).status_code == 200
        with django_assert_max_num_queries(8):
            assert api.get(FILES).status_code == 200


@pytest.mark.django_db
def test_admin_note_page_edits_the_note_through_its_service(admin_as, api_as, people):
    lead = people.records["owner"].lead
    note_id = (
        api_as("owner")
        .post(NOTES, {"record_type": "lead", "record_id": lead.pk, "body": "first"})
        .json()["id"]
    )
    client = admin_as("owner")
    url = reverse("admin:activities_note_change", args=[note_id])
    page = client.get(url)
    assert page.status_code == 200 and b"first" in page.content

    response = client.post(url, {"body": "second, ask @west_manager"})

    assert response.status_code == 302
    note = Note.objects.get(pk=note_id)
    assert note.body_html == "<p>second, ask @west_manager</p>"
    assert Notification.objects.filter(kind="mention", recipient__username="west_manager").exists()
    assert admin_as("outsider").get(url).status_code == 302  # not theirs to see: back to the index


@pytest.mark.django_db
def test_files_stored_in_a_transaction_that_then_rolls_back_are_deleted(people, media):
    """The upload's rows commit with the caller's transaction: if it rolls back afterwards (here
    a later step raises), the stored files go with the rows instead of staying unreferenced."""
    from django.db import transaction

    from activities.services import attachments_create

    owner = people.users["owner"]
    lead = people.records["owner"].lead
    with pytest.raises(RuntimeError), transaction.atomic():
        attachments_create(
            user=owner, record=lead, uploads=[upload(), upload("notes.txt", b"hi", "text/plain")]
        )
        assert len(stored_files(media)) == 2
        raise RuntimeError("a later step of the same request fails")

    assert Attachment.objects.count() == 0
    assert stored_files(media) == []


@pytest.mark.django_db
def test_files_of_a_rolled_back_savepoint_are_deleted_and_the_others_kept(people, media):
    from django.db import transaction

    from activities.services import attachments_create

    owner = people.users["owner"]
    lead = people.records["owner"].lead
    with transaction.atomic():
        kept = attachments_create(user=owner, record=lead, uploads=[upload("kept.pdf")])
        with pytest.raises(RuntimeError), transaction.atomic():
            attachments_create(user=owner, record=lead, uploads=[upload("dropped.pdf")])
            raise RuntimeError("undo the inner block")

    assert [a.name for a in Attachment.objects.all()] == ["kept.pdf"]
    assert stored_files(media) == [media / kept[0].file.name]


@pytest.mark.django_db(transaction=True)
def test_files_are_deleted_when_a_real_transaction_rolls_back(stages, media):
    from django.db import transaction

    from activities.services import attachments_create
    from crm.actors import SYSTEM
    from tests.factories import LeadFactory

    owner = SYSTEM
    lead = LeadFactory(stage=stages["New"])
    with pytest.raises(RuntimeError), transaction.atomic():
        attachments_create(user=owner, record=lead, uploads=[upload()])
        raise RuntimeError("roll back")
    attachments_create(user=owner, record=lead, uploads=[upload("committed.pdf")])

    assert [a.name for a in Attachment.objects.all()] == ["committed.pdf"]
    assert len(stored_files(media)) == 1
