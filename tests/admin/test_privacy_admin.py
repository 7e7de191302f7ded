"""Issue 19 item 5 in the admin: the "Privacy requests" log, the new-request page (export or erasure)
and the export's download, for CRM Admins only."""

import json

import pytest
from django.urls import reverse

from crm.models import Lead, PrivacyRequest, PrivacyRequestKind
from crm.privacy.services import UNKNOWN_EMAIL
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

NEW = "admin:crm_privacyrequest_new"


@pytest.fixture
def ann(stages):
    return LeadFactory(
        name="Enquiry", contact_name="Ann Arbuthnot", email="ann@example.test", stage=stages["New"]
    )


def test_an_export_from_the_admin_is_logged_and_downloadable(admin_as, ann):
    client = admin_as("crm_admin")
    assert client.get(reverse(NEW)).status_code == 200

    response = client.post(reverse(NEW), {"email": "ann@example.test", "kind": "export"}, follow=True)

    done = PrivacyRequest.objects.get()
    assert response.redirect_chain[-1][0] == reverse("admin:crm_privacyrequest_change", args=[done.pk])
    assert "download the JSON file" in response.content.decode()
    download = client.get(reverse("admin:crm_privacyrequest_download", args=[done.pk]))
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="privacy-export-{done.pk}.json"'
    document = json.loads(b"".join(download.streaming_content) if download.streaming else download.content)
    assert [row["id"] for row in document["records"]["leads"]] == [ann.pk]
    assert PrivacyRequest.objects.count() == 1  # a download is not a new request


def test_an_erasure_from_the_admin_needs_the_confirmation_then_anonymises(admin_as, ann):
    client = admin_as("crm_admin")

    unconfirmed = client.post(reverse(NEW), {"email": "ann@example.test", "kind": "erasure"})

    assert unconfirmed.status_code == 200
    assert unconfirmed.context["form"].errors["confirm"]
    assert Lead.objects.get(pk=ann.pk).email == "ann@example.test"

    response = client.post(
        reverse(NEW), {"email": "ann@example.test", "kind": "erasure", "confirm": "on"}, follow=True
    )

    done = PrivacyRequest.objects.get()
    assert (done.kind, done.email, done.records["leads"]) == (PrivacyRequestKind.ERASURE, "", [ann.pk])
    assert "records anonymised" in response.content.decode()
    assert Lead.objects.get(pk=ann.pk).email == ""


def test_an_unknown_address_is_an_error_on_the_form_and_changes_nothing(admin_as, ann):
    response = admin_as("crm_admin").post(
        reverse(NEW), {"email": "nobody@example.test", "kind": "erasure", "confirm": "on"}
    )

    assert response.status_code == 200
    assert response.context["form"].errors["email"] == [UNKNOWN_EMAIL]
    assert not PrivacyRequest.objects.exists()


@pytest.mark.parametrize("persona", ["owner", "manager"])
def test_only_crm_admins_see_or_make_privacy_requests(admin_as, ann, persona):
    client = admin_as(persona)
    export = PrivacyRequest.objects.create(kind=PrivacyRequestKind.EXPORT, email="ann@example.test")

    assert client.get(reverse("admin:crm_privacyrequest_changelist")).status_code == 403
    assert client.get(reverse(NEW)).status_code == 403
    assert (
        client.post(
            reverse(NEW), {"email": "ann@example.test", "kind": "erasure", "confirm": "on"}
        ).status_code
        == 403
    )
    assert client.get(reverse("admin:crm_privacyrequest_download", args=[export.pk])).status_code == 403
    assert Lead.objects.get(pk=ann.pk).email == "ann@example.test"


def test_the_privacy_requests_changelist_costs_a_fixed_number_of_queries(
    admin_as, people, django_assert_max_num_queries
):
    client = admin_as("crm_admin")
    url = reverse("admin:crm_privacyrequest_changelist")

    def add(count):
        PrivacyRequest.objects.bulk_create(
            [
                PrivacyRequest(kind=PrivacyRequestKind.ERASURE, requested_by=people.users["crm_admin"])
                for _ in range(count)
            ]
            + [PrivacyRequest(kind=PrivacyRequestKind.EXPORT, email="x@example.test") for _ in range(count)]
        )

    add(2)
    response = client.get(url)
    assert "New privacy request" in response.content.decode()
    # The sidebar's permission checks of every admin are most of it (the jobs' list costs as much).
    with django_assert_max_num_queries(60) as small:
        client.get(url)
    add(30)
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(url)
