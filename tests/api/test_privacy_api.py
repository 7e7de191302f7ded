"""Issue 19 item 5 through the API: privacy/export/, privacy/erase/ and the requests' log, for CRM Admins
only; bad input is a 400 on the field and changes nothing."""

import pytest
from django.urls import reverse

from crm.models import Lead, PrivacyRequest, PrivacyRequestKind
from crm.privacy.services import UNKNOWN_EMAIL, email_hash
from tests.factories import ActivityFactory, LeadFactory

pytestmark = pytest.mark.django_db

EXPORT, ERASE, LIST = "/api/v1/crm/privacy/export/", "/api/v1/crm/privacy/erase/", "/api/v1/crm/privacy/"


@pytest.fixture
def ann(stages):
    lead = LeadFactory(
        name="Ann's enquiry", contact_name="Ann Arbuthnot", email="ann@example.test", stage=stages["New"]
    )
    ActivityFactory(subject="Call Ann Arbuthnot", lead=lead)
    return lead


def test_a_crm_admin_exports_a_person_as_one_json_file(api_as, ann):
    response = api_as("crm_admin").post(EXPORT, {"email": "ANN@example.test"}, format="json")

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="privacy-export-')
    body = response.json()
    assert body["email"] == "ann@example.test"
    assert [row["id"] for row in body["records"]["leads"]] == [ann.pk]
    assert len(body["records"]["activities"]) == 1
    done = PrivacyRequest.objects.get(pk=body["request_id"])
    assert (done.kind, done.email) == (PrivacyRequestKind.EXPORT, "ann@example.test")
    assert (done.counts["leads"], done.counts["activities"]) == (1, 1)


def test_a_crm_admin_erases_a_person_and_is_told_which_records(api_as, people, ann):
    response = api_as("crm_admin").post(ERASE, {"email": "ann@example.test"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (
        body["kind"] == "erasure"
        and body["email"] == ""
        and body["email_hash"] == email_hash("ann@example.test")
    )
    assert body["records"]["leads"] == [ann.pk] and body["counts"]["activities"] == 1
    assert body["requested_by_username"] == "crm_admin"
    ann.refresh_from_db()
    assert (ann.contact_name, ann.email) == ("", "")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"email": "nobody@example.test"}, UNKNOWN_EMAIL),
        ({"email": "not an address"}, "Enter a valid email address."),
        ({}, "This field is required."),
    ],
)
def test_bad_input_is_a_400_on_the_email_and_changes_nothing(api_as, ann, payload, message):
    for url in (ERASE, EXPORT):
        response = api_as("crm_admin").post(url, payload, format="json")

        assert response.status_code == 400
        assert response.json()["email"] == [message]
    assert not PrivacyRequest.objects.exists()
    assert Lead.objects.get(pk=ann.pk).email == "ann@example.test"


@pytest.mark.parametrize(
    "junk", [None, "", -1, 1.5, [1], {"a": 1}, True, "x\x00y@example.test", "a" * 250 + "@example.test"]
)
def test_junk_in_the_email_is_a_400_never_a_500(api_as, junk):
    for url in (ERASE, EXPORT):
        response = api_as("crm_admin").post(url, {"email": junk}, format="json")

        assert response.status_code == 400, (url, junk)
        assert "email" in response.json()


@pytest.mark.parametrize("persona", ["owner", "manager"])
def test_only_crm_admins_may_use_the_privacy_api(api_as, ann, persona):
    client = api_as(persona)

    assert client.post(ERASE, {"email": "ann@example.test"}, format="json").status_code == 403
    assert client.post(EXPORT, {"email": "ann@example.test"}, format="json").status_code == 403
    assert client.get(LIST).status_code == 403
    assert Lead.objects.get(pk=ann.pk).email == "ann@example.test"
    assert not PrivacyRequest.objects.exists()


def test_the_requests_log_lists_exports_and_erasures_at_a_fixed_cost(
    api_as, ann, django_assert_max_num_queries
):
    client = api_as("crm_admin")
    client.post(EXPORT, {"email": "ann@example.test"}, format="json")
    client.post(ERASE, {"email": "ann@example.test"}, format="json")

    response = client.get(LIST)

    assert response.status_code == 200
    kinds = [row["kind"] for row in response.json()["results"]]
    assert kinds == ["erasure", "export"]
    # The erasure cleared the address the export kept.
    assert [row["email"] for row in response.json()["results"]] == ["", ""]
    assert (
        client.get(reverse("privacy-request-detail", args=[PrivacyRequest.objects.first().pk])).status_code
        == 200
    )
    with django_assert_max_num_queries(10) as small:
        client.get(LIST)
    PrivacyRequest.objects.bulk_create(
        [PrivacyRequest(kind=PrivacyRequestKind.RETENTION, requested_by=ann.owner) for _ in range(20)]
    )
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(LIST)
