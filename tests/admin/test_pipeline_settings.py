"""Pipeline settings: stages ordered by drag or sequence, coloured, weighted, won or lost; the default."""

import pytest
from django.urls import reverse

from crm.models import Pipeline, Stage
from tests.factories import PipelineFactory


def pipeline_form(pipeline, stages, **overrides):
    """The change form's POST data for ``pipeline`` with ``stages`` as (stage or None, fields) rows."""
    data = {
        "name": pipeline.name,
        "description": pipeline.description,
        "is_active": "on",
        "sequence": str(pipeline.sequence),
        "stages-TOTAL_FORMS": str(len(stages)),
        "stages-INITIAL_FORMS": str(sum(1 for stage, _ in stages if stage is not None)),
    }
    if pipeline.is_default:
        data["is_default"] = "on"
    for index, (stage, fields) in enumerate(stages):
        prefix = f"stages-{index}-"
        if stage is not None:
            data[prefix + "id"] = str(stage.pk)
            data[prefix + "pipeline"] = str(pipeline.pk)
            fields = {
                "name": stage.name,
                "sequence": str(stage.sequence),
                "probability": str(stage.probability),
                "color": stage.color,
                "is_won": stage.is_won,
                "is_lost": stage.is_lost,
                **fields,
            }
        for name, value in fields.items():
            if value is True:
                data[prefix + name] = "on"
            elif value is not False:
                data[prefix + name] = value
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_pipeline_page_has_sortable_stages_and_colour_pickers(admin_client, pipeline):
    html = admin_client.get(reverse("admin:crm_pipeline_change", args=[pipeline.pk])).content.decode()
    assert "crm/stage_sort.js" in html
    assert html.count('type="color"') == pipeline.stages.count() + 1  # each stage and the empty row
    assert 'name="stages-0-probability"' in html and 'name="stages-0-is_won"' in html


@pytest.mark.django_db
def test_reordering_stages_saves_their_sequence_and_the_board_follows(admin_client, pipeline, stages):
    order = ["Qualified", "New", "Proposal", "Won", "Lost"]
    rows = [(stages[name], {"sequence": str(index)}) for index, name in enumerate(order)]

    response = admin_client.post(
        reverse("admin:crm_pipeline_change", args=[pipeline.pk]), pipeline_form(pipeline, rows)
    )

    assert response.status_code == 302
    assert list(pipeline.stages.order_by("sequence").values_list("name", flat=True)) == order
    board = admin_client.get(reverse("admin:crm_lead_board"))
    assert [column["stage"].name for column in board.context["columns"]] == order


@pytest.mark.django_db
def test_stage_colour_probability_and_type_are_editable_and_new_stages_added(admin_client, pipeline, stages):
    rows = [(stage, {}) for stage in stages.values()]
    rows[2] = (stages["Proposal"], {"color": "#ff8800", "probability": "65"})
    rows.append((None, {"name": "Contract", "sequence": "3", "probability": "80", "color": "#123abc"}))

    response = admin_client.post(
        reverse("admin:crm_pipeline_change", args=[pipeline.pk]), pipeline_form(pipeline, rows)
    )

    assert response.status_code == 302
    proposal = Stage.objects.get(pk=stages["Proposal"].pk)
    assert (proposal.color, proposal.probability) == ("#ff8800", 65)
    contract = Stage.objects.get(pipeline=pipeline, name="Contract")
    assert (contract.sequence, contract.probability, contract.color) == (3, 80, "#123abc")


@pytest.mark.django_db
def test_a_second_won_stage_is_a_form_error(admin_client, pipeline, stages):
    rows = [(stage, {}) for stage in stages.values()]
    rows[2] = (stages["Proposal"], {"is_won": True})

    response = admin_client.post(
        reverse("admin:crm_pipeline_change", args=[pipeline.pk]), pipeline_form(pipeline, rows)
    )

    assert response.status_code == 200
    assert "already has a won stage" in response.content.decode()
    assert not Stage.objects.get(pk=stages["Proposal"].pk).is_won


@pytest.mark.django_db
def test_a_stage_in_use_cannot_be_deleted_from_the_inline(admin_client, pipeline, stages):
    from tests.factories import LeadFactory

    LeadFactory(stage=stages["New"])
    rows = [(stage, {}) for stage in stages.values()]
    rows[0] = (stages["New"], {"DELETE": True})

    response = admin_client.post(
        reverse("admin:crm_pipeline_change", args=[pipeline.pk]), pipeline_form(pipeline, rows)
    )

    assert response.status_code == 200
    assert Stage.objects.filter(pk=stages["New"].pk).exists()


@pytest.mark.django_db
def test_an_unused_stage_is_deleted(admin_client, pipeline, stages):
    rows = [(stage, {"DELETE": stage.name == "Proposal"}) for stage in stages.values()]
    response = admin_client.post(
        reverse("admin:crm_pipeline_change", args=[pipeline.pk]), pipeline_form(pipeline, rows)
    )
    assert response.status_code == 302
    assert not Stage.objects.filter(pk=stages["Proposal"].pk).exists()


@pytest.mark.django_db
def test_make_default_action_moves_the_flag(admin_client, pipeline):
    other = PipelineFactory(name="Enterprise")
    response = admin_client.post(
        reverse("admin:crm_pipeline_changelist"),
        {"action": "make_default", "_selected_action": [other.pk]},
        follow=True,
    )
    assert "“Enterprise” is now the default pipeline." in response.content.decode()
    assert Pipeline.objects.get(is_default=True) == other


@pytest.mark.django_db
def test_tag_and_stage_forms_use_the_colour_picker(admin_client, stages):
    assert 'type="color"' in admin_client.get(reverse("admin:crm_tag_add")).content.decode()
    stage = stages["New"]
    assert (
        'type="color"'
        in admin_client.get(reverse("admin:crm_stage_change", args=[stage.pk])).content.decode()
    )
