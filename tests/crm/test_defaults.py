"""A lead or opportunity created without pipeline or stage lands in the default pipeline's first stage."""

import pytest

from crm import services
from crm.actors import SYSTEM
from crm.models import Lead, Pipeline
from sales.models import Opportunity
from tests.factories import PipelineFactory, StageFactory


@pytest.mark.django_db
def test_lead_created_in_code_gets_default_pipeline_first_stage_and_its_probability(pipeline, stages):
    lead = Lead.objects.create(name="Inbound")
    assert lead.pipeline == pipeline
    assert lead.stage == stages["New"]
    assert lead.probability == 10
    assert lead.status == "open"
    assert lead.priority == "medium"


@pytest.mark.django_db
def test_opportunity_created_in_code_gets_defaults(pipeline, stages):
    opp = Opportunity.objects.create(name="Deal")
    assert (opp.pipeline, opp.stage, opp.probability, opp.status) == (pipeline, stages["New"], 10, "open")
    assert opp.opportunity_type == "new_business"


@pytest.mark.django_db
def test_first_stage_skips_closed_stages_ordered_first(pipeline):
    other = PipelineFactory(name="Odd")
    StageFactory(pipeline=other, name="Lost", sequence=0, is_lost=True)
    open_stage = StageFactory(pipeline=other, name="Open", sequence=1, probability=40)
    lead = Lead.objects.create(name="x", pipeline=other)
    assert lead.stage == open_stage
    assert lead.probability == 40


@pytest.mark.django_db
def test_stage_alone_implies_its_pipeline(pipeline):
    other = PipelineFactory(name="Enterprise")
    stage = StageFactory(pipeline=other, name="Discovery", probability=5)
    lead = Lead.objects.create(name="x", stage=stage)
    assert lead.pipeline == other


@pytest.mark.django_db
def test_explicit_probability_is_kept(pipeline):
    assert Lead.objects.create(name="x", probability=77).probability == 77


@pytest.mark.django_db
def test_no_default_pipeline_gives_a_clear_validation_error():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as excinfo:
        Lead(name="x").full_clean()
    assert excinfo.value.message_dict["pipeline"] == [
        "Choose a pipeline: there is no default pipeline to fall back on."
    ]


@pytest.mark.django_db
def test_first_pipeline_saved_becomes_default():
    pipeline = services.pipeline_save(pipeline=Pipeline(name="Only"), user=SYSTEM)
    assert pipeline.is_default


@pytest.mark.django_db
def test_making_a_pipeline_default_moves_the_flag(pipeline):
    other = services.pipeline_save(pipeline=Pipeline(name="Enterprise", is_default=True), user=SYSTEM)
    pipeline.refresh_from_db()
    assert other.is_default and not pipeline.is_default
    assert Pipeline.objects.filter(is_default=True).count() == 1


@pytest.mark.django_db
def test_deleting_the_default_pipeline_is_refused_while_others_exist(pipeline):
    from django.core.exceptions import ValidationError

    PipelineFactory(name="Other")
    with pytest.raises(ValidationError, match="make another pipeline the default"):
        services.pipeline_delete(pipeline=pipeline, user=SYSTEM)
    assert Pipeline.objects.filter(pk=pipeline.pk).exists()
