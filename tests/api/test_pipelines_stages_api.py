"""/pipelines/ (read with stages, one default), /stages/, /tags/, /lost-reasons/."""

import pytest

from crm.models import LostReason, Pipeline, Stage, Tag
from tests.api.conftest import url
from tests.factories import LeadFactory, LostReasonFactory, PipelineFactory, StageFactory, TagFactory

# --- pipelines ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_pipelines_with_their_stages_in_order(api, pipeline):
    response = api.get(url("pipelines/"))

    assert response.status_code == 200
    [body] = response.json()["results"]
    assert set(body) == {
        "id",
        "name",
        "description",
        "is_default",
        "is_active",
        "sequence",
        "lost_reason_required",
        "stages",
        "created_at",
        "updated_at",
    }
    assert (body["name"], body["is_default"]) == ("Sales", True)
    assert [stage["name"] for stage in body["stages"]] == ["New", "Qualified", "Proposal", "Won", "Lost"]
    assert body["stages"][3] == {
        "id": Stage.objects.get(name="Won").pk,
        "name": "Won",
        "sequence": 3,
        "probability": 100,
        "color": "#6c757d",
        "is_won": True,
        "is_lost": False,
    }


@pytest.mark.django_db
def test_create_pipeline_and_make_it_the_default(api, pipeline):
    response = api.post(url("pipelines/"), {"name": "Enterprise", "is_default": True})

    assert response.status_code == 201
    assert (response.json()["is_default"], response.json()["stages"]) == (True, [])
    pipeline.refresh_from_db()
    assert not pipeline.is_default
    assert Pipeline.objects.filter(is_default=True).get().name == "Enterprise"


@pytest.mark.django_db
def test_first_pipeline_becomes_the_default(api, db):
    assert api.post(url("pipelines/"), {"name": "Only"}).json()["is_default"] is True


@pytest.mark.django_db
def test_pipeline_name_is_unique_ignoring_case(api, pipeline):
    response = api.post(url("pipelines/"), {"name": "SALES"})
    assert response.status_code == 400
    assert response.json() == {"name": ["A pipeline with this name already exists."]}


@pytest.mark.django_db
def test_the_default_pipeline_cannot_be_unset_or_deactivated(api, pipeline):
    response = api.patch(url(f"pipelines/{pipeline.pk}/"), {"is_default": False})
    assert response.status_code == 400
    assert list(response.json()) == ["is_default"]
    response = api.patch(url(f"pipelines/{pipeline.pk}/"), {"is_active": False})
    assert response.status_code == 400
    assert list(response.json()) == ["is_active"]


@pytest.mark.django_db
def test_update_pipeline(api, pipeline):
    response = api.patch(url(f"pipelines/{pipeline.pk}/"), {"description": "Main", "sequence": 4})
    assert response.status_code == 200
    pipeline.refresh_from_db()
    assert (pipeline.description, pipeline.sequence) == ("Main", 4)


@pytest.mark.django_db
def test_deleting_the_default_pipeline_while_others_exist_is_409(api, pipeline):
    PipelineFactory(name="Other")

    response = api.delete(url(f"pipelines/{pipeline.pk}/"))

    assert response.status_code == 409
    assert response.json()["code"] == "default_pipeline"
    assert "make another pipeline the default" in response.json()["detail"]
    assert Pipeline.objects.filter(pk=pipeline.pk).exists()


@pytest.mark.django_db
def test_deleting_a_pipeline_in_use_is_409(api, pipeline):
    other = PipelineFactory(name="Other")
    stage = StageFactory(pipeline=other)
    LeadFactory(pipeline=other, stage=stage)

    response = api.delete(url(f"pipelines/{other.pk}/"))

    assert response.status_code == 409
    assert response.json()["code"] == "protected"
    assert "still used by 2 leads" not in response.json()["detail"]
    assert "lead" in response.json()["detail"]


@pytest.mark.django_db
def test_deleting_an_unused_pipeline_removes_its_stages(api, pipeline):
    other = PipelineFactory(name="Other")
    StageFactory(pipeline=other)

    assert api.delete(url(f"pipelines/{other.pk}/")).status_code == 204
    assert not Pipeline.objects.filter(pk=other.pk).exists()
    assert not Stage.objects.filter(pipeline_id=other.pk).exists()


# --- stages ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_and_list_stages(api, pipeline):
    response = api.post(
        url("stages/"),
        {"pipeline_id": pipeline.pk, "name": "Demo", "sequence": 2, "probability": 45, "color": "#123abc"},
    )

    assert response.status_code == 201, response.json()
    assert (response.json()["pipeline_name"], response.json()["probability"]) == ("Sales", 45)
    listed = api.get(url("stages/"), {"pipeline": pipeline.pk, "ordering": "-probability"}).json()["results"]
    assert listed[0]["name"] == "Won"
    assert "Demo" in [stage["name"] for stage in listed]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x"}, "pipeline_id"),
        ({"name": "x", "pipeline_id": 999999}, "pipeline_id"),
        ({"name": "x", "probability": 150}, "probability"),
        ({"name": "x", "color": "red"}, "color"),
        ({"name": "new"}, "name"),
        ({"name": "Second win", "is_won": True}, "is_won"),
        ({"name": "Both", "is_won": True, "is_lost": True}, "is_lost"),
    ],
)
def test_create_stage_bad_input(api, pipeline, payload, field):
    payload = (
        {"pipeline_id": pipeline.pk, **payload}
        if "pipeline_id" not in payload and field != "pipeline_id"
        else payload
    )
    response = api.post(url("stages/"), payload)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.django_db
def test_update_stage_but_not_its_pipeline(api, stages):
    response = api.patch(url(f"stages/{stages['New'].pk}/"), {"probability": 15, "color": "#000000"})
    assert response.status_code == 200
    assert Stage.objects.get(pk=stages["New"].pk).probability == 15

    other = PipelineFactory(name="Other")
    response = api.patch(url(f"stages/{stages['New'].pk}/"), {"pipeline_id": other.pk})
    assert response.status_code == 400
    assert list(response.json()) == ["pipeline_id"]


@pytest.mark.django_db
def test_deleting_a_stage_in_use_is_409_and_an_unused_one_goes(api, stages):
    LeadFactory()

    response = api.delete(url(f"stages/{stages['New'].pk}/"))
    assert response.status_code == 409
    assert "still used by 1 lead" in response.json()["detail"]

    assert api.delete(url(f"stages/{stages['Proposal'].pk}/")).status_code == 204
    assert not Stage.objects.filter(pk=stages["Proposal"].pk).exists()


# --- tags and lost reasons ------------------------------------------------------------------------


@pytest.mark.django_db
def test_tags_crud_and_case_insensitive_names(api):
    response = api.post(url("tags/"), {"name": "Enterprise", "color": "#ff0000"})
    assert response.status_code == 201
    tag_id = response.json()["id"]

    assert api.post(url("tags/"), {"name": "enterprise"}).json() == {
        "name": ["A tag with this name already exists (names ignore case)."]
    }
    assert api.get(url("tags/"), {"search": "enter"}).json()["count"] == 1
    assert api.patch(url(f"tags/{tag_id}/"), {"name": "Big"}).json()["name"] == "Big"
    assert api.delete(url(f"tags/{tag_id}/")).status_code == 204
    assert not Tag.objects.exists()


@pytest.mark.django_db
def test_lost_reasons_crud(api):
    response = api.post(url("lost-reasons/"), {"name": "Price"})
    assert response.status_code == 201
    reason_id = response.json()["id"]
    LostReasonFactory(name="Timing", is_active=False)

    assert [r["name"] for r in api.get(url("lost-reasons/"), {"is_active": "true"}).json()["results"]] == [
        "Price"
    ]
    assert api.patch(url(f"lost-reasons/{reason_id}/"), {"is_active": False}).json()["is_active"] is False
    assert api.delete(url(f"lost-reasons/{reason_id}/")).status_code == 204
    assert LostReason.objects.count() == 1


@pytest.mark.django_db
def test_tag_in_use_can_still_be_deleted(api, stages):
    tag = TagFactory()
    LeadFactory().tags.add(tag)
    assert api.delete(url(f"tags/{tag.pk}/")).status_code == 204
