"""Concurrent edits: ETag on reads, If-Match on PUT/PATCH/DELETE (412 when stale) in the API, and the
admin change form refusing to save over a version newer than the one it was loaded with."""

import pytest
from django.urls import reverse

from crm.admin.base import STALE_EDIT_MESSAGE
from tests.api.conftest import url
from tests.factories import AccountFactory, ActivityFactory, ContactFactory, LeadFactory, OpportunityFactory

FACTORIES = {
    "leads": (LeadFactory, {"description": "mine"}),
    "opportunities": (OpportunityFactory, {"description": "mine"}),
    "accounts": (AccountFactory, {"phone": "555-0101"}),
    "contacts": (ContactFactory, {"job_title": "mine"}),
    "activities": (ActivityFactory, {"description": "mine"}),
}
STALE = "This record was changed by someone else since you read it; read it again and redo your change."


def make(resource, stages):
    factory, _ = FACTORIES[resource]
    if resource in ("leads", "opportunities"):
        return factory(stage=stages["New"])
    if resource == "activities":
        return factory(account=AccountFactory())
    return factory()


@pytest.mark.django_db
@pytest.mark.parametrize("resource", FACTORIES)
def test_a_read_names_its_version_and_a_write_with_it_succeeds(api, stages, resource):
    record = make(resource, stages)
    read = api.get(url(f"{resource}/{record.pk}/"))
    etag = read["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert api.get(url(f"{resource}/{record.pk}/"))["ETag"] == etag  # stable while unchanged

    change = FACTORIES[resource][1]
    response = api.patch(url(f"{resource}/{record.pk}/"), change, format="json", HTTP_IF_MATCH=etag)

    assert response.status_code == 200, response.content
    assert response["ETag"] != etag
    assert response["ETag"] == api.get(url(f"{resource}/{record.pk}/"))["ETag"]


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize("resource", FACTORIES)
def test_a_stale_if_match_is_412_and_changes_nothing(api, stages, resource, method):
    record = make(resource, stages)
    stale = api.get(url(f"{resource}/{record.pk}/"))["ETag"]
    # Someone else saves in between.
    field, value = next(iter(FACTORIES[resource][1].items()))
    assert api.patch(url(f"{resource}/{record.pk}/"), {field: "theirs"}, format="json").status_code == 200
    body = api.get(url(f"{resource}/{record.pk}/")).json()
    body[field] = value

    response = getattr(api, method)(
        url(f"{resource}/{record.pk}/"),
        body if method != "delete" else None,
        format="json",
        HTTP_IF_MATCH=stale,
    )

    assert response.status_code == 412, response.content
    assert response.json() == {"detail": STALE}
    record.refresh_from_db()
    assert getattr(record, field) == "theirs"


@pytest.mark.django_db
def test_if_match_accepts_star_weak_tags_and_lists(api, stages):
    lead = LeadFactory(stage=stages["New"])
    etag = api.get(url(f"leads/{lead.pk}/"))["ETag"]
    detail = url(f"leads/{lead.pk}/")
    assert api.patch(detail, {"phone": "1"}, format="json", HTTP_IF_MATCH="*").status_code == 200
    etag = api.get(detail)["ETag"]
    assert api.patch(detail, {"phone": "2"}, format="json", HTTP_IF_MATCH=f"W/{etag}").status_code == 200
    etag = api.get(detail)["ETag"]
    assert (
        api.patch(detail, {"phone": "3"}, format="json", HTTP_IF_MATCH=f'"other", {etag}').status_code == 200
    )
    # Without If-Match a write is allowed (428 is not required).
    assert api.patch(detail, {"phone": "4"}, format="json").status_code == 200
    etag = api.get(detail)["ETag"]
    assert api.delete(detail, HTTP_IF_MATCH=etag).status_code == 204


@pytest.mark.django_db
def test_the_admin_refuses_to_save_a_form_loaded_before_someone_elses_save(admin_client, stages):
    lead = LeadFactory(stage=stages["New"], name="Original")
    change_url = reverse("admin:crm_lead_change", args=[lead.pk])
    page = admin_client.get(change_url)
    form = page.context["adminform"].form
    assert 'name="loaded_version"' in page.content.decode()
    data = {key: value for key, value in form.initial.items() if value is not None and key != "tags"}
    data["loaded_version"] = form["loaded_version"].value()
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data[f"{management.prefix}-TOTAL_FORMS"] = data[f"{management.prefix}-INITIAL_FORMS"] = 0
    # Someone else saves the lead meanwhile.
    admin_client.get(change_url)
    type(lead).objects.get(pk=lead.pk).save()

    response = admin_client.post(change_url, {**data, "name": "Mine"})

    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [STALE_EDIT_MESSAGE]
    lead.refresh_from_db()
    assert lead.name == "Original"

    # Reloaded, the same change saves.
    page = admin_client.get(change_url)
    data["loaded_version"] = page.context["adminform"].form["loaded_version"].value()
    response = admin_client.post(change_url, {**data, "name": "Mine"})
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.name == "Mine"
