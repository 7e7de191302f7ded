"""The API entry point: POST {leads,contacts,accounts}/import/ and GET .../export/ on the real viewsets."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from crm.models import Account, Lead, Tag
from tests.crm.importing_helpers import csv_bytes, read_csv, read_xlsx, xlsx_bytes
from tests.factories import AccountFactory, LeadFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/crm/leads/"


@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def upload(content: bytes, name="leads.csv"):
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def test_import_dry_run_answers_counts_and_writes_nothing(api, stages):
    LeadFactory(email="old@x.test", stage=stages["New"])
    content = csv_bytes(
        [["name", "email", "tags"], ["Old", "OLD@x.test", ""], ["New", "new@x.test", "Fresh"]]
    )
    response = api.post(LEADS + "import/", {"file": upload(content), "dry_run": "true"}, format="multipart")
    assert response.status_code == 200, response.data
    body = response.json()
    assert (body["dry_run"], body["committed"], body["new"], body["updated"], body["unchanged"]) == (
        True,
        False,
        1,
        1,
        0,
    )
    assert body["errors"] == 0 and body["row_errors"] == [] and body["new_tags"] == ["Fresh"]
    assert Lead.objects.count() == 1 and not Tag.objects.exists()


def test_import_for_real_writes_and_owns_the_new_records(api, admin_user, stages):
    content = xlsx_bytes([["name", "email", "stage"], ["New", "new@x.test", "Proposal"]])
    response = api.post(LEADS + "import/", {"file": upload(content, "leads.xlsx")}, format="multipart")
    assert response.status_code == 200, response.data
    assert response.json()["committed"] is True
    lead = Lead.objects.get()
    assert (lead.stage, lead.owner) == (stages["Proposal"], admin_user)


def test_import_with_a_bad_row_is_400_with_the_row_report_and_writes_nothing(api, stages):
    content = csv_bytes([["name", "email", "owner"], ["Good", "g@x.test", ""], ["Bad", "b@x.test", "ghost"]])
    response = api.post(LEADS + "import/", {"file": upload(content)}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert body["committed"] is False and body["errors"] == 1
    assert body["row_errors"] == [
        {"row": 3, "column": "owner", "value": "ghost", "message": "No user is named “ghost”."}
    ]
    assert body["detail"].startswith("1 of 2 rows are invalid")
    assert not Lead.objects.exists()


def test_import_of_a_bad_file_is_400_with_the_file_error(api, pipeline):
    response = api.post(LEADS + "import/", {"file": upload(b"name\n\x00\n")}, format="multipart")
    assert response.status_code == 400
    assert response.json()["file_errors"][0].startswith("The file contains NUL bytes")


def test_import_without_a_file_is_400(api, pipeline):
    response = api.post(LEADS + "import/", {"dry_run": "true"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()


def test_import_over_the_size_limit_is_refused_before_reading(api, pipeline, settings):
    settings.CRM_IMPORT_MAX_BYTES = 10
    response = api.post(
        LEADS + "import/", {"file": upload(b"name\nA long enough file\n")}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["file_errors"][0].startswith("The file is too large (24 bytes)")


def test_accounts_import_through_the_api(api):
    content = csv_bytes([["name", "industry"], ["Acme", "Technology"]])
    response = api.post("/api/v1/crm/accounts/import/", {"file": upload(content)}, format="multipart")
    assert response.status_code == 200
    assert Account.objects.get().industry == "technology"


def test_import_needs_authentication(pipeline):
    response = APIClient().post(LEADS + "import/", {"file": upload(b"name\nA\n")}, format="multipart")
    assert response.status_code in (401, 403)
    assert not Lead.objects.exists()


def lost_and_open(stages):
    LeadFactory(name="=Lost", email="lost@x.test", status="lost", stage=stages["Lost"])
    LeadFactory(name="Open", email="open@x.test", stage=stages["New"])


def test_export_csv_applies_the_list_filters(api, stages):
    lost_and_open(stages)
    response = api.get(LEADS + "export/?format=csv&status=lost")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="leads-')
    rows = read_csv(response.content)
    assert [(r["name"], r["status"]) for r in rows] == [("'=Lost", "lost")]


def test_export_xlsx_applies_the_search(api, stages):
    lost_and_open(stages)
    response = api.get(LEADS + "export/?format=xlsx&search=open@")
    assert response.status_code == 200
    header, rows = read_xlsx(response.content)
    assert [row[header.index("email")].value for row in rows] == ["open@x.test"]
    assert rows[0][header.index("probability")].data_type == "n"


def test_export_json_applies_the_filters(api, stages):
    lost_and_open(stages)
    AccountFactory(name="Acme", account_type="customer")
    AccountFactory(name="Other", account_type="partner")
    response = api.get("/api/v1/crm/accounts/export/?format=json&account_type=customer")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert [a["name"] for a in json.loads(response.content)] == ["Acme"]
    leads = json.loads(api.get(LEADS + "export/?format=json&status=open").content)
    assert [lead["email"] for lead in leads] == ["open@x.test"]


def test_export_defaults_to_csv_and_refuses_unknown_formats(api, stages):
    assert api.get(LEADS + "export/")["Content-Type"] == "text/csv; charset=utf-8"
    response = api.get(LEADS + "export/?format=pdf")
    assert response.status_code == 400
    assert response.json() == {"format": ["Choose one of: csv, xlsx, json."]}


def test_export_needs_authentication(stages):
    assert APIClient().get(LEADS + "export/?format=csv").status_code in (401, 403)


def test_schema_documents_both_actions_without_warnings(capsys):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    imported = schema["paths"]["/api/v1/crm/leads/import/"]["post"]
    assert set(imported["requestBody"]["content"]) == {"multipart/form-data"}
    request = imported["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].split("/")[-1]
    assert set(schema["components"]["schemas"][request]["properties"]) == {"file", "dry_run", "clear_empty"}
    # 200, 202 (a large file: the job), the import's 400, and the errors every operation documents
    # (crm.api.schema).
    assert set(imported["responses"]) == {"200", "202", "400", "401", "403", "404", "409", "415", "429"}
    assert imported["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Job"
    }
    assert imported["responses"]["400"]["content"]["application/json"]["schema"] == {
        "oneOf": [
            {"$ref": "#/components/schemas/ImportResult"},
            {"$ref": "#/components/schemas/ValidationError"},
        ]
    }
    exported = schema["paths"]["/api/v1/crm/leads/export/"]["get"]
    names = {p["name"] for p in exported["parameters"]}
    assert {"format", "status", "priority", "search"} <= names
    assert set(exported["responses"]["200"]["content"]) == {
        "text/csv",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/json",
    }
    assert exported["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Job"
    }
    assert "Warning" not in capsys.readouterr().err


def test_import_needs_add_and_change_permission(stages, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("clerk", password="pw-clerk-123!")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_lead", "add_lead"]))
    client = APIClient()
    client.force_authenticate(user)
    content = csv_bytes([["name", "email"], ["New", "new@x.test"]])
    response = client.post(LEADS + "import/", {"file": upload(content)}, format="multipart")
    assert response.status_code == 403
    assert not Lead.objects.exists()

    user.user_permissions.add(Permission.objects.get(codename="change_lead"))
    client.force_authenticate(django_user_model.objects.get(pk=user.pk))
    response = client.post(LEADS + "import/", {"file": upload(content)}, format="multipart")
    assert response.status_code == 200, response.data
    assert Lead.objects.filter(email="new@x.test").exists()


def test_export_needs_view_permission(stages, django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user("nobody", password="pw-nobody-123!"))
    assert client.get(LEADS + "export/?format=csv").status_code == 403


@pytest.mark.parametrize("dry_run", ["true", "false"])
def test_malformed_csv_is_400_in_a_dry_run_as_in_the_real_import(api, stages, dry_run):
    """Issue 14 finding 17: the dry run of a CSV with an unterminated quote answered 500."""
    content = b'name,email\n"Unclosed,a@x.test\nB,b@x.test\n'
    response = api.post(LEADS + "import/", {"file": upload(content), "dry_run": dry_run}, format="multipart")
    assert response.status_code == 400
    assert response.json()["file_errors"][0].startswith("The CSV file is malformed")
    assert not Lead.objects.exists()


def test_empty_cells_keep_fields_unless_clear_empty_and_the_dry_run_lists_them(api, stages):
    """Issue 14 finding 12: an empty cell cleared the phone silently; clear_empty chooses it, and the
    dry run lists each field it would clear."""
    lead = LeadFactory(email="k@x.test", stage=stages["New"], phone="555")
    content = csv_bytes([["name", "email", "phone"], ["K", "k@x.test", ""]])
    response = api.post(LEADS + "import/", {"file": upload(content)}, format="multipart")
    assert response.status_code == 200, response.data
    lead.refresh_from_db()
    assert lead.phone == "555"
    data = {"file": upload(content), "dry_run": "true", "clear_empty": "true"}
    body = api.post(LEADS + "import/", data, format="multipart").json()
    assert (body["clear_empty"], body["cleared"]) == (True, [{"row": 2, "column": "phone"}])
    lead.refresh_from_db()
    assert lead.phone == "555"
    response = api.post(
        LEADS + "import/", {"file": upload(content), "clear_empty": "true"}, format="multipart"
    )
    assert response.status_code == 200
    lead.refresh_from_db()
    assert lead.phone == ""
