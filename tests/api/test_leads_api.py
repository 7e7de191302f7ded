"""/leads/: list, create, retrieve, update, delete; filters, search, ordering; field-level errors."""

from decimal import Decimal

import pytest

from activities.models import Activity
from crm.models import Lead
from tests.api.conftest import url
from tests.factories import (
    ActivityFactory,
    LeadFactory,
    LostReasonFactory,
    PipelineFactory,
    StageFactory,
    TagFactory,
    UserFactory,
)

LEAD_FIELDS = {
    "id",
    "name",
    "contact_name",
    "email",
    "phone",
    "company_name",
    "job_title",
    "pipeline_id",
    "pipeline_name",
    "stage_id",
    "stage_name",
    "priority",
    "rating",
    "source",
    "expected_revenue",
    "probability",
    "automated_probability",
    "automated_probability_note",
    "description",
    "status",
    "lost_reason_id",
    "lost_reason_name",
    "lost_note",
    "converted_at",
    "converted_account_id",
    "converted_contact_id",
    "converted_opportunity_id",
    "owner_id",
    "owner_username",
    "tags",
    "created_at",
    "updated_at",
    "score",
    "score_breakdown",
    "campaign_id",
}


@pytest.mark.django_db
def test_create_lead_with_defaults(api, crm_admin, stages, pipeline):
    tag = TagFactory(name="Hot")

    response = api.post(
        url("leads/"),
        {"name": "Acme — 50 seats", "company_name": "Acme", "expected_revenue": "1500.5", "tags": [tag.pk]},
    )

    assert response.status_code == 201, response.data
    body = response.json()
    assert set(body) == LEAD_FIELDS
    lead = Lead.objects.get()
    assert body["id"] == lead.pk
    assert (body["pipeline_id"], body["pipeline_name"]) == (pipeline.pk, "Sales")
    assert (body["stage_id"], body["stage_name"], body["probability"]) == (stages["New"].pk, "New", 10)
    assert (body["status"], body["priority"], body["expected_revenue"]) == ("open", "medium", "1500.50")
    assert (body["owner_id"], body["owner_username"], body["tags"]) == (crm_admin.pk, "crm_admin", [tag.pk])
    assert body["converted_opportunity_id"] is None
    assert (lead.owner, lead.expected_revenue, list(lead.tags.all())) == (
        crm_admin,
        Decimal("1500.50"),
        [tag],
    )


@pytest.mark.django_db
def test_create_lead_in_a_given_stage_and_owner(api, stages):
    rep = UserFactory(username="rep")

    response = api.post(url("leads/"), {"name": "x", "stage_id": stages["Proposal"].pk, "owner_id": rep.pk})

    assert response.status_code == 201
    assert (response.json()["stage_name"], response.json()["probability"]) == ("Proposal", 60)
    assert Lead.objects.get().owner == rep


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({}, "name", "This field is required."),
        ({"name": "x", "probability": 150}, "probability", "Ensure this value is less than or equal to 100."),
        ({"name": "x", "probability": "lots"}, "probability", "A valid integer is required."),
        ({"name": "x", "priority": "extreme"}, "priority", '"extreme" is not a valid choice.'),
        ({"name": "x", "source": "pigeon"}, "source", '"pigeon" is not a valid choice.'),
        ({"name": "x", "stage_id": 999999}, "stage_id", 'Invalid pk "999999" - object does not exist.'),
        ({"name": "x", "stage_id": "abc"}, "stage_id", "Incorrect type. Expected pk value, received str."),
        ({"name": "x", "pipeline_id": 999999}, "pipeline_id", 'Invalid pk "999999" - object does not exist.'),
        ({"name": "x", "owner_id": 999999}, "owner_id", 'Invalid pk "999999" - object does not exist.'),
        ({"name": "x", "tags": [999999]}, "tags", 'Invalid pk "999999" - object does not exist.'),
        ({"name": "x", "tags": "7"}, "tags", 'Expected a list of items but got type "str".'),
        ({"name": "x", "expected_revenue": "-5"}, "expected_revenue", "This amount cannot be negative."),
        ({"name": "x", "expected_revenue": "ten"}, "expected_revenue", "A valid number is required."),
        ({"name": "x", "email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"name": "x" * 201}, "name", "Ensure this field has no more than 200 characters."),
    ],
)
def test_create_lead_bad_input_is_a_field_error(api, pipeline, payload, field, message):
    response = api.post(url("leads/"), payload)

    assert response.status_code == 400
    assert response.json()[field] == [message]
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_create_lead_with_a_stage_of_another_pipeline_is_a_stage_error(api, pipeline):
    foreign = StageFactory(pipeline=PipelineFactory(name="Enterprise"), name="Discovery")

    response = api.post(url("leads/"), {"name": "x", "pipeline_id": pipeline.pk, "stage_id": foreign.pk})

    assert response.status_code == 400
    assert list(response.json()) == ["stage_id"]
    assert "belongs to the pipeline “Enterprise”" in response.json()["stage_id"][0]
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_read_only_fields_are_ignored_on_create(api, pipeline):
    response = api.post(
        url("leads/"), {"name": "x", "status": "converted", "converted_at": "2026-01-01T00:00:00Z"}
    )
    assert response.status_code == 201
    assert Lead.objects.get().status == "open"


@pytest.mark.django_db
def test_retrieve_lead(api, stages):
    lead = LeadFactory(name="Found")

    response = api.get(url(f"leads/{lead.pk}/"))

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["name"], response.json()["stage_name"]) == (
        lead.pk,
        "Found",
        "New",
    )


@pytest.mark.django_db
def test_retrieve_missing_lead_is_404(api, pipeline):
    response = api.get(url("leads/999999/"))
    assert response.status_code == 404
    assert response.json() == {"detail": "No Lead matches the given query."}


@pytest.mark.django_db
def test_the_url_without_trailing_slash_answers_too(api, stages):
    lead = LeadFactory()
    assert api.get(url(f"leads/{lead.pk}")).status_code == 200


@pytest.mark.django_db
def test_patch_lead_fields(api, stages):
    lead = LeadFactory(rating="")
    tag = TagFactory()

    response = api.patch(url(f"leads/{lead.pk}/"), {"rating": "hot", "tags": [tag.pk]})

    assert response.status_code == 200
    assert (response.json()["rating"], response.json()["tags"]) == ("hot", [tag.pk])
    lead.refresh_from_db()
    assert (lead.rating, list(lead.tags.all())) == ("hot", [tag])


@pytest.mark.django_db
def test_patch_stage_takes_the_stage_probability(api, stages):
    lead = LeadFactory()

    response = api.patch(url(f"leads/{lead.pk}/"), {"stage_id": stages["Qualified"].pk})

    assert response.status_code == 200
    assert (response.json()["stage_name"], response.json()["probability"]) == ("Qualified", 30)


@pytest.mark.django_db
def test_put_replaces_the_lead(api, stages):
    lead = LeadFactory(name="Old", description="old text")

    response = api.put(url(f"leads/{lead.pk}/"), {"name": "New name", "description": ""})

    assert response.status_code == 200
    lead.refresh_from_db()
    assert (lead.name, lead.description) == ("New name", "")


@pytest.mark.django_db
def test_put_without_the_required_name_is_a_field_error(api, stages):
    lead = LeadFactory(name="Kept")
    response = api.put(url(f"leads/{lead.pk}/"), {"description": "x"})
    assert response.status_code == 400
    assert response.json() == {"name": ["This field is required."]}
    lead.refresh_from_db()
    assert lead.name == "Kept"


@pytest.mark.django_db
def test_patch_probability_150_is_a_field_error(api, stages):
    lead = LeadFactory()
    response = api.patch(url(f"leads/{lead.pk}/"), {"probability": 150})
    assert response.status_code == 400
    assert "probability" in response.json()


@pytest.mark.django_db
def test_patch_the_stage_of_a_closed_lead_is_a_conflict(api, stages):
    lead = LeadFactory(status="lost")

    response = api.patch(url(f"leads/{lead.pk}/"), {"stage_id": stages["Qualified"].pk})

    assert response.status_code == 409
    assert response.json()["code"] == "closed"
    assert "already lost" in response.json()["detail"]
    lead.refresh_from_db()
    assert lead.stage == stages["New"]


@pytest.mark.django_db
def test_delete_lead_removes_it_and_its_activities(api, stages):
    lead = LeadFactory()
    ActivityFactory(lead=lead)

    response = api.delete(url(f"leads/{lead.pk}/"))

    assert response.status_code == 204
    assert not Lead.objects.exists()
    assert not Activity.objects.exists()


@pytest.mark.django_db
def test_delete_missing_lead_is_404(api, pipeline):
    assert api.delete(url("leads/999999/")).status_code == 404


@pytest.mark.django_db
def test_list_is_paginated(api, stages):
    LeadFactory.create_batch(3)

    response = api.get(url("leads/"), {"page_size": 2})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3 and len(body["results"]) == 2 and body["previous"] is None
    assert "page=2" in body["next"]
    assert set(body["results"][0]) == LEAD_FIELDS
    second = api.get(url("leads/"), {"page_size": 2, "page": 2}).json()
    assert len(second["results"]) == 1 and second["next"] is None


@pytest.mark.django_db
def test_page_size_is_capped_at_200(api, stages):
    LeadFactory.create_batch(3)
    response = api.get(url("leads/"), {"page_size": 5000})
    assert response.status_code == 200 and len(response.json()["results"]) == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("page", "abc"),
        ("page", "0"),
        ("page", "²"),
        ("page_size", "abc"),
        ("page_size", "-1"),
        ("page_size", "1.5"),
    ],
)
def test_malformed_paging_is_a_400(api, pipeline, param, value):
    response = api.get(url("leads/"), {param: value})
    assert response.status_code == 400
    assert list(response.json()) == [param]


@pytest.mark.django_db
def test_a_page_past_the_end_is_404(api, pipeline):
    assert api.get(url("leads/"), {"page": 5}).status_code == 404


def names(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["name"] for row in response.json()["results"]]


@pytest.mark.django_db
def test_lead_filters(api, stages, pipeline):
    owner = UserFactory()
    tag = TagFactory()
    other = StageFactory(pipeline=PipelineFactory(name="Other"), name="Elsewhere")
    LeadFactory(name="plain")
    target = LeadFactory(
        name="target",
        stage=stages["Qualified"],
        priority="urgent",
        rating="hot",
        source="referral",
        owner=owner,
    )
    target.tags.add(tag)
    LeadFactory(name="lost", status="lost")
    LeadFactory(name="other pipeline", pipeline=other.pipeline, stage=other)

    assert names(api.get(url("leads/"), {"stage": stages["Qualified"].pk})) == ["target"]
    assert names(api.get(url("leads/"), {"pipeline": other.pipeline.pk})) == ["other pipeline"]
    assert names(api.get(url("leads/"), {"priority": "urgent"})) == ["target"]
    assert names(api.get(url("leads/"), {"rating": "hot"})) == ["target"]
    assert names(api.get(url("leads/"), {"source": "referral"})) == ["target"]
    assert names(api.get(url("leads/"), {"status": "lost"})) == ["lost"]
    assert names(api.get(url("leads/"), {"owner": owner.pk})) == ["target"]
    assert names(api.get(url("leads/"), {"tag": tag.pk})) == ["target"]
    assert len(names(api.get(url("leads/"), {"pipeline": pipeline.pk}))) == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("pipeline", "abc"),
        ("stage", "999999"),
        ("priority", "extreme"),
        ("owner", "x"),
        ("tag", "1.5"),
        ("status", ""),
    ],
)
def test_bad_filter_values_are_a_400_naming_the_filter(api, pipeline, param, value):
    response = api.get(url("leads/"), {param: value})
    if value == "":
        assert response.status_code == 200  # an empty filter is no filter
    else:
        assert response.status_code == 400
        assert list(response.json()) == [param]


@pytest.mark.django_db
def test_lead_search_matches_every_word_across_the_text_fields(api, stages):
    LeadFactory(name="Website inquiry", company_name="Acme", contact_name="Ann Lee")
    LeadFactory(name="Trade show", company_name="Globex", email="bob@globex.test")
    LeadFactory(name="Other", phone="+1 555 0199")

    assert names(api.get(url("leads/"), {"search": "acme"})) == ["Website inquiry"]
    assert names(api.get(url("leads/"), {"search": "ann acme"})) == ["Website inquiry"]
    assert names(api.get(url("leads/"), {"search": "GLOBEX.test"})) == ["Trade show"]
    assert names(api.get(url("leads/"), {"search": "0199"})) == ["Other"]
    assert names(api.get(url("leads/"), {"search": "ann globex"})) == []


@pytest.mark.django_db
def test_lead_ordering(api, stages):
    LeadFactory(name="b", expected_revenue=10, priority="low", stage=stages["Proposal"])
    LeadFactory(name="a", expected_revenue=30, priority="urgent", stage=stages["New"])
    LeadFactory(name="c", expected_revenue=20, priority="high", stage=stages["Qualified"])

    assert names(api.get(url("leads/"))) == ["c", "a", "b"]  # newest first by default
    assert names(api.get(url("leads/"), {"ordering": "name"})) == ["a", "b", "c"]
    assert names(api.get(url("leads/"), {"ordering": "-expected_revenue"})) == ["a", "c", "b"]
    assert names(api.get(url("leads/"), {"ordering": "-priority"})) == ["a", "c", "b"]
    assert names(api.get(url("leads/"), {"ordering": "stage"})) == ["a", "c", "b"]
    assert names(api.get(url("leads/"), {"ordering": "status,-name"})) == ["c", "b", "a"]


@pytest.mark.django_db
def test_ordering_by_an_unknown_field_is_a_400(api, pipeline):
    response = api.get(url("leads/"), {"ordering": "password"})
    assert response.status_code == 400
    assert list(response.json()) == ["ordering"]


@pytest.mark.django_db
def test_lost_lead_shows_its_reason(api, stages):
    reason = LostReasonFactory(name="Budget")
    lead = LeadFactory(status="lost", lost_reason=reason)
    body = api.get(url(f"leads/{lead.pk}/")).json()
    assert (body["lost_reason_id"], body["lost_reason_name"]) == (reason.pk, "Budget")
