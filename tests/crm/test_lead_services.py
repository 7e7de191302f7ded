"""Lead services: create/update defaults, move-stage, mark-lost and the closed-record rule."""

import pytest
from django.core.exceptions import ValidationError

from crm import services
from crm.actors import SYSTEM
from crm.models import Account, Lead, Stage
from sales.models import Opportunity
from tests.factories import (
    LeadFactory,
    LostReasonFactory,
    PipelineFactory,
    StageFactory,
    TagFactory,
    UserFactory,
)


@pytest.mark.django_db
def test_lead_create_applies_pipeline_defaults_and_the_creator_as_owner(stages):
    user = UserFactory()
    tag = TagFactory()

    lead = services.lead_create(user=user, data={"name": "Inbound", "tags": [tag]})

    assert (lead.pipeline, lead.stage, lead.probability, lead.status) == (
        stages["New"].pipeline,
        stages["New"],
        10,
        "open",
    )
    assert lead.owner == user
    assert list(lead.tags.all()) == [tag]


@pytest.mark.django_db
def test_lead_create_keeps_an_explicit_empty_owner(stages):
    lead = services.lead_create(user=UserFactory(), data={"name": "Inbound", "owner": None})
    assert lead.owner is None


@pytest.mark.django_db
def test_lead_create_rejects_a_stage_of_another_pipeline(pipeline):
    foreign = StageFactory(pipeline=PipelineFactory(name="Enterprise"))

    with pytest.raises(ValidationError) as excinfo:
        services.lead_create(data={"name": "x", "pipeline": pipeline, "stage": foreign}, user=SYSTEM)

    assert "stage" in excinfo.value.message_dict
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_lead_create_rejects_probability_150(pipeline):
    with pytest.raises(ValidationError) as excinfo:
        services.lead_create(data={"name": "x", "probability": 150}, user=SYSTEM)
    assert "probability" in excinfo.value.message_dict


@pytest.mark.django_db
def test_lead_create_in_the_lost_stage_is_lost(stages):
    lead = services.lead_create(data={"name": "x", "stage": stages["Lost"]}, user=SYSTEM)
    assert lead.status == "lost"


@pytest.mark.django_db
def test_lead_update_to_a_new_stage_takes_its_probability(stages):
    lead = LeadFactory()

    lead = services.lead_update(lead=lead, data={"stage": stages["Proposal"], "name": "Renamed"}, user=SYSTEM)

    lead.refresh_from_db()
    assert (lead.stage, lead.probability, lead.name) == (stages["Proposal"], 60, "Renamed")


@pytest.mark.django_db
def test_lead_update_keeps_an_explicit_probability_with_a_new_stage(stages):
    lead = LeadFactory()
    lead = services.lead_update(lead=lead, data={"stage": stages["Proposal"], "probability": 45}, user=SYSTEM)
    assert lead.probability == 45


@pytest.mark.django_db
def test_lead_update_to_another_pipeline_starts_at_its_first_stage(stages):
    other = PipelineFactory(name="Enterprise")
    first = StageFactory(pipeline=other, name="Discovery", sequence=0, probability=5)
    StageFactory(pipeline=other, name="Later", sequence=1)
    lead = LeadFactory()

    lead = services.lead_update(lead=lead, data={"pipeline": other}, user=SYSTEM)

    assert (lead.pipeline, lead.stage, lead.probability) == (other, first, 5)


@pytest.mark.django_db
def test_lead_update_of_a_closed_lead_cannot_change_its_stage(stages):
    lead = services.lead_mark_lost(lead=LeadFactory(), user=SYSTEM)

    with pytest.raises(ValidationError) as excinfo:
        services.lead_update(lead=lead, data={"stage": stages["New"]}, user=SYSTEM)

    assert excinfo.value.code == services.CLOSED


@pytest.mark.django_db
def test_lead_update_of_a_closed_lead_can_still_change_its_notes(stages):
    lead = services.lead_mark_lost(lead=LeadFactory(), user=SYSTEM)
    lead = services.lead_update(lead=lead, data={"description": "Budget frozen until next year"}, user=SYSTEM)
    assert lead.description == "Budget frozen until next year"


@pytest.mark.django_db
def test_lead_move_stage_sets_the_stage_and_its_probability(stages):
    lead = LeadFactory()

    moved = services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=SYSTEM)

    lead.refresh_from_db()
    assert (lead.stage, lead.probability) == (stages["Qualified"], 30)
    assert moved == lead


@pytest.mark.django_db
def test_lead_move_stage_refuses_a_stage_of_another_pipeline(stages):
    lead = LeadFactory()
    foreign = StageFactory(pipeline=PipelineFactory(name="Enterprise"), name="Discovery")

    with pytest.raises(ValidationError) as excinfo:
        services.lead_move_stage(lead=lead, stage=foreign, user=SYSTEM)

    assert "belongs to the pipeline “Enterprise”" in excinfo.value.message_dict["stage"][0]
    lead.refresh_from_db()
    assert lead.stage == stages["New"]


@pytest.mark.django_db
def test_lead_move_to_the_lost_stage_marks_it_lost(stages):
    lead = services.lead_move_stage(lead=LeadFactory(), stage=stages["Lost"], user=SYSTEM)
    assert (lead.status, lead.stage, lead.probability) == ("lost", stages["Lost"], 0)


@pytest.mark.django_db
def test_lead_move_to_the_won_stage_converts_it_with_the_defaults(stages):
    lead = LeadFactory(
        company_name="Acme", contact_name="Ann Lee", email="ann@acme.test", expected_revenue=500
    )

    lead = services.lead_move_stage(lead=lead, stage=stages["Won"], user=SYSTEM)

    assert (lead.status, lead.stage, lead.probability) == ("converted", stages["Won"], 100)
    assert lead.converted_at is not None
    assert lead.converted_account.name == "Acme"
    assert lead.converted_contact.email == "ann@acme.test"
    opportunity = Opportunity.objects.get(lead=lead)
    assert (opportunity.amount, opportunity.account) == (500, lead.converted_account)


@pytest.mark.django_db
def test_closed_lead_cannot_be_moved(stages):
    lead = services.lead_mark_lost(lead=LeadFactory(), user=SYSTEM)

    with pytest.raises(ValidationError) as excinfo:
        services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=SYSTEM)

    assert excinfo.value.code == services.CLOSED
    assert "already lost" in excinfo.value.messages[0]


@pytest.mark.django_db
def test_lead_mark_lost_records_reason_note_and_lost_stage(stages):
    reason = LostReasonFactory(name="Too expensive")

    lead = services.lead_mark_lost(
        lead=LeadFactory(), lost_reason=reason, lost_note="Chose a rival", user=SYSTEM
    )

    lead.refresh_from_db()
    assert (lead.status, lead.stage, lead.lost_reason, lead.lost_note) == (
        "lost",
        stages["Lost"],
        reason,
        "Chose a rival",
    )


@pytest.mark.django_db
def test_lead_mark_lost_without_a_lost_stage_keeps_the_stage(db):
    pipeline = PipelineFactory(name="Simple", is_default=True)
    only = StageFactory(pipeline=pipeline, name="Only")
    lead = services.lead_mark_lost(lead=LeadFactory(), user=SYSTEM)
    assert (lead.status, lead.stage) == ("lost", only)


@pytest.mark.django_db
def test_lead_mark_lost_refuses_an_inactive_reason(stages):
    lead = LeadFactory()
    retired = LostReasonFactory(is_active=False)

    with pytest.raises(ValidationError) as excinfo:
        services.lead_mark_lost(lead=lead, lost_reason=retired, user=SYSTEM)

    assert "lost_reason" in excinfo.value.message_dict
    lead.refresh_from_db()
    assert lead.status == "open"


@pytest.mark.django_db
def test_lead_mark_lost_twice_is_a_conflict(stages):
    lead = services.lead_mark_lost(lead=LeadFactory(), user=SYSTEM)
    with pytest.raises(ValidationError) as excinfo:
        services.lead_mark_lost(lead=lead, user=SYSTEM)
    assert excinfo.value.code == services.CLOSED


@pytest.mark.django_db
def test_record_delete_names_what_still_uses_a_stage(stages):
    LeadFactory.create_batch(2)

    with pytest.raises(ValidationError) as excinfo:
        services.record_delete(instance=stages["New"], user=SYSTEM)

    assert excinfo.value.code == services.PROTECTED
    assert "still used by 2 leads" in excinfo.value.messages[0]
    assert Stage.objects.filter(pk=stages["New"].pk).exists()


@pytest.mark.django_db
def test_stage_update_cannot_move_a_stage_to_another_pipeline(stages):
    other = PipelineFactory(name="Other")
    with pytest.raises(ValidationError) as excinfo:
        services.stage_update(stage=stages["New"], data={"pipeline": other}, user=SYSTEM)
    assert "pipeline" in excinfo.value.message_dict


@pytest.mark.django_db
def test_account_create_owner_defaults_to_the_creator(db):
    user = UserFactory()
    account = services.account_create(user=user, data={"name": "Acme"})
    assert Account.objects.get().owner == user == account.owner
