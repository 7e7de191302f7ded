"""Import (upload → preview → confirm) and export of the filtered changelist through the real admin views."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crm.admin.import_export import SESSION_KEY, upload_dir
from crm.models import Account, Contact, Lead
from tests.crm.importing_helpers import csv_bytes, read_csv, read_xlsx, xlsx_bytes
from tests.factories import AccountFactory, LeadFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_upload_dir(settings, tmp_path):
    settings.CRM_IMPORT_TMP_DIR = str(tmp_path / "uploads")


def upload(admin_client, content: bytes, name="leads.csv", model="lead"):
    file = SimpleUploadedFile(name, content, content_type="text/csv")
    return admin_client.post(reverse(f"admin:crm_{model}_import"), {"file": file})


@pytest.mark.parametrize("model", ["lead", "contact", "account"])
def test_changelists_have_import_and_export_buttons(admin_client, model):
    content = admin_client.get(reverse(f"admin:crm_{model}_changelist") + "?q=x").content.decode()
    assert f'href="{reverse(f"admin:crm_{model}_import")}"' in content
    assert f"{reverse(f'admin:crm_{model}_export')}?q=x&amp;format=csv" in content
    assert "Export XLSX" in content and "Export JSON" in content


def test_import_page_lists_the_columns(admin_client):
    response = admin_client.get(reverse("admin:crm_lead_import"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "<code>stage</code>" in content and "found by <strong>email</strong>" in content
    assert 'enctype="multipart/form-data"' in content


def test_upload_previews_then_confirm_imports(admin_client, admin_user, stages):
    LeadFactory(email="old@x.test", name="Old", stage=stages["New"])
    content = csv_bytes(
        [
            ["name", "email", "stage", "tags"],
            ["Old renamed", "OLD@x.test", "New", ""],
            ["Fresh", "new@x.test", "Proposal", "VIP"],
        ]
    )
    preview = upload(admin_client, content)
    assert preview.status_code == 200
    result = preview.context["result"]
    assert (result.new, result.updated, result.unchanged, result.error_rows, result.committed) == (
        1,
        1,
        0,
        0,
        False,
    )
    page = preview.content.decode()
    assert "Preview of leads.csv" in page and "Confirm: import 2 rows" in page
    assert "New tags to create: VIP" in page
    assert [(row.row, row.action) for row in result.preview] == [(2, "updated"), (3, "new")]
    assert Lead.objects.count() == 1  # the preview wrote nothing

    token = preview.context["token"]
    assert (upload_dir() / f"{token}.upload").exists()
    confirm = admin_client.post(reverse("admin:crm_lead_import_confirm"), {"token": token}, follow=True)
    assert confirm.redirect_chain[-1][0] == reverse("admin:crm_lead_changelist")
    assert "Imported leads.csv: 1 created, 1 updated, 0 unchanged." in confirm.content.decode()
    assert set(Lead.objects.values_list("name", flat=True)) == {"Old renamed", "Fresh"}
    fresh = Lead.objects.get(name="Fresh")
    assert (fresh.stage, fresh.owner, list(fresh.tags.values_list("name", flat=True))) == (
        stages["Proposal"],
        admin_user,
        ["VIP"],
    )
    assert not (upload_dir() / f"{token}.upload").exists()
    assert token not in admin_client.session.get(SESSION_KEY, {})

    again = admin_client.post(reverse("admin:crm_lead_import_confirm"), {"token": token}, follow=True)
    assert "expired or was already done" in again.content.decode()
    assert Lead.objects.count() == 2


def test_preview_lists_rejected_rows_and_offers_no_confirmation(admin_client, stages):
    content = xlsx_bytes(
        [["name", "email", "stage"], ["Good", "g@x.test", "New"], ["Bad", "b@x.test", "Nowhere"]]
    )
    preview = upload(admin_client, content, name="leads.xlsx")
    page = preview.content.decode()
    assert preview.context["token"] is None
    assert "leads.xlsx cannot be imported" in page
    assert "<td>3</td><td>stage</td><td><code>Nowhere</code></td>" in page
    assert 'id="import-confirm"' not in page
    assert not Lead.objects.exists()
    assert not list(upload_dir().glob("*.upload"))


def test_preview_of_a_bad_file(admin_client, pipeline):
    page = upload(admin_client, "name\nCafé\n".encode("cp1252")).content.decode()
    assert "The file is not UTF-8 text" in page
    assert 'id="import-confirm"' not in page


def test_confirm_reports_rows_that_went_bad_after_the_preview(admin_client, stages):
    AccountFactory(name="Acme")
    content = csv_bytes([["first_name", "email", "account"], ["Ann", "ann@acme.test", "Acme"]])
    preview = upload(admin_client, content, name="contacts.csv", model="contact")
    Account.objects.all().delete()
    response = admin_client.post(
        reverse("admin:crm_contact_import_confirm"), {"token": preview.context["token"]}
    )
    assert response.status_code == 200
    assert "No account has this name." in response.content.decode()
    assert not Contact.objects.exists()


def test_confirm_needs_a_token_of_this_session(admin_client, pipeline):
    response = admin_client.post(
        reverse("admin:crm_account_import_confirm"), {"token": "../../etc/passwd"}, follow=True
    )
    assert "expired or was already done" in response.content.decode()


def test_import_needs_add_and_change_permission(client, pipeline):
    clerk = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_lead"))
    client.force_login(clerk)
    assert client.get(reverse("admin:crm_lead_import")).status_code == 403
    assert client.get(reverse("admin:crm_lead_export") + "?format=csv").status_code == 200
    assert "crm-import-link" not in client.get(reverse("admin:crm_lead_changelist")).content.decode()


def test_export_of_the_filtered_changelist(admin_client, stages):
    LeadFactory(name="=Lost", email="lost@x.test", status="lost", stage=stages["Lost"])
    LeadFactory(name="Open", email="open@x.test", stage=stages["New"])
    url = reverse("admin:crm_lead_export")
    response = admin_client.get(url + "?status__exact=lost&format=csv")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="leads-')
    assert [(r["name"], r["email"]) for r in read_csv(response.content)] == [("'=Lost", "lost@x.test")]

    header, rows = read_xlsx(admin_client.get(url + "?q=open@&format=xlsx").content)
    assert [row[header.index("email")].value for row in rows] == ["open@x.test"]

    records = json.loads(admin_client.get(url + "?format=json&o=1").content)
    assert len(records) == 2


def test_export_of_accounts_opportunities_and_activities(admin_client, stages):
    AccountFactory(name="Acme", account_type="customer")
    AccountFactory(name="Other", account_type="partner")
    rows = read_csv(
        admin_client.get(reverse("admin:crm_account_export") + "?account_type__exact=customer").content
    )
    assert [r["name"] for r in rows] == ["Acme"]
    for name in ("admin:sales_opportunity_export", "admin:activities_activity_export"):
        assert admin_client.get(reverse(name) + "?format=xlsx").status_code == 200


def test_export_with_bad_filters_or_format_goes_back_to_the_list(admin_client, pipeline):
    url = reverse("admin:crm_lead_export")
    response = admin_client.get(url + "?format=pdf", follow=True)
    assert "Unknown export format" in response.content.decode()
    response = admin_client.get(url + "?nonsense__field=1", follow=True)
    assert "nothing was exported" in response.content.decode()


def test_preview_of_a_csv_with_a_field_over_the_csv_limit(admin_client, pipeline):
    """Issue 14 finding 17: the admin preview of such a file answered 500."""
    response = upload(admin_client, b"name,email\n" + b"x" * 140_000 + b",a@x.test\n")
    assert response.status_code == 200
    assert "The CSV file is malformed" in response.content.decode()
    assert 'id="import-confirm"' not in response.content.decode()


def test_preview_lists_the_fields_an_update_would_clear_and_confirm_clears_them(admin_client, stages):
    """Issue 14 finding 12: the preview did not say that an empty cell would clear the field."""
    lead = LeadFactory(email="k@x.test", stage=stages["New"], phone="555")
    content = csv_bytes([["name", "email", "phone"], ["K", "k@x.test", ""]])
    file = SimpleUploadedFile("leads.csv", content, content_type="text/csv")
    preview = admin_client.post(reverse("admin:crm_lead_import"), {"file": file, "clear_empty": "on"})
    page = preview.content.decode()
    assert 'id="import-cleared"' in page and "<td>2</td><td>phone</td>" in page
    lead.refresh_from_db()
    assert lead.phone == "555"
    admin_client.post(reverse("admin:crm_lead_import_confirm"), {"token": preview.context["token"]})
    lead.refresh_from_db()
    assert lead.phone == ""


def test_without_the_choice_empty_cells_keep_the_fields(admin_client, stages):
    lead = LeadFactory(email="k@x.test", stage=stages["New"], phone="555")
    preview = upload(admin_client, csv_bytes([["name", "email", "phone"], ["K", "k@x.test", ""]]))
    assert 'id="import-cleared"' not in preview.content.decode()
    admin_client.post(reverse("admin:crm_lead_import_confirm"), {"token": preview.context["token"]})
    lead.refresh_from_db()
    assert lead.phone == "555"
