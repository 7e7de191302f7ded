"""Opportunity services: move-stage, mark-won, mark-lost and the closed-record rule."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm.actors import SYSTEM
from crm.services import CLOSED, NO_WON_STAGE
from sales import services
from sales.models import Opportunity
from tests.factories import (
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    StageFactory,
    UserFactory,
)


@pytest.mark.django_db
def test_opportunity_create_applies_defaults_and_owner(stages):
    user = UserFactory()
    opportunity = services.opportunity_create(user=user, data={"name": "Deal", "amount": 100})
    assert (opportunity.stage, opportunity.probability, opportunity.owner) == (stages["New"], 10, user)


@pytest.mark.django_db
def test_opportunity_created_in_the_won_stage_is_won(stages):
    opportunity = services.opportunity_create(
        data={"name": "Closed elsewhere", "stage": stages["Won"]}, user=SYSTEM
    )
    assert (opportunity.status, opportunity.probability) == ("won", 100)
    assert opportunity.closed_at is not None


@pytest.mark.django_db
def test_opportunity_move_stage_takes_the_stage_probability(stages):
    opportunity = OpportunityFactory()

    services.opportunity_move_stage(opportunity=opportunity, stage=stages["Proposal"], user=SYSTEM)

    opportunity.refresh_from_db()
    assert (opportunity.stage, opportunity.probability, opportunity.status) == (
        stages["Proposal"],
        60,
        "open",
    )


@pytest.mark.django_db
def test_opportunity_move_into_the_won_stage_wins_it(stages):
    opportunity = services.opportunity_move_stage(
        opportunity=OpportunityFactory(), stage=stages["Won"], user=SYSTEM
    )
    assert (opportunity.status, opportunity.probability, opportunity.stage) == ("won", 100, stages["Won"])
    assert opportunity.closed_at is not None


@pytest.mark.django_db
def test_opportunity_move_into_the_lost_stage_loses_it(stages):
    opportunity = services.opportunity_move_stage(
        opportunity=OpportunityFactory(), stage=stages["Lost"], user=SYSTEM
    )
    assert (opportunity.status, opportunity.probability, opportunity.stage) == ("lost", 0, stages["Lost"])


@pytest.mark.django_db
def test_opportunity_move_refuses_a_stage_of_another_pipeline(stages):
    foreign = StageFactory(pipeline=PipelineFactory(name="Enterprise"))
    with pytest.raises(ValidationError) as excinfo:
        services.opportunity_move_stage(opportunity=OpportunityFactory(), stage=foreign, user=SYSTEM)
    assert "stage" in excinfo.value.message_dict


@pytest.mark.django_db
def test_mark_won_moves_to_the_won_stage_and_dates_an_undated_deal_today(stages):
    opportunity = OpportunityFactory()

    services.opportunity_mark_won(opportunity=opportunity, user=SYSTEM)

    opportunity.refresh_from_db()
    assert (opportunity.status, opportunity.stage, opportunity.probability) == ("won", stages["Won"], 100)
    assert opportunity.closed_at is not None
    assert opportunity.close_date == timezone.localdate()


@pytest.mark.django_db
def test_mark_won_keeps_an_existing_close_date(stages):
    opportunity = services.opportunity_mark_won(
        opportunity=OpportunityFactory(close_date="2026-03-01"), user=SYSTEM
    )
    assert str(opportunity.close_date) == "2026-03-01"


@pytest.mark.django_db
def test_mark_won_without_a_won_stage_is_a_clear_conflict(db):
    pipeline = PipelineFactory(name="No finish line", is_default=True)
    StageFactory(pipeline=pipeline, name="Open")
    opportunity = OpportunityFactory()

    with pytest.raises(ValidationError) as excinfo:
        services.opportunity_mark_won(opportunity=opportunity, user=SYSTEM)

    assert excinfo.value.code == NO_WON_STAGE
    assert "has no won stage" in excinfo.value.messages[0]
    assert Opportunity.objects.get().status == "open"


@pytest.mark.django_db
def test_mark_lost_records_reason_and_note(stages):
    reason = LostReasonFactory()

    opportunity = services.opportunity_mark_lost(
        opportunity=OpportunityFactory(), lost_reason=reason, lost_note="No budget", user=SYSTEM
    )

    opportunity.refresh_from_db()
    assert (opportunity.status, opportunity.stage, opportunity.lost_reason, opportunity.lost_note) == (
        "lost",
        stages["Lost"],
        reason,
        "No budget",
    )
    assert opportunity.closed_at is not None


@pytest.mark.django_db
def test_mark_lost_refuses_an_inactive_reason(stages):
    with pytest.raises(ValidationError) as excinfo:
        services.opportunity_mark_lost(
            opportunity=OpportunityFactory(), lost_reason=LostReasonFactory(is_active=False), user=SYSTEM
        )
    assert "lost_reason" in excinfo.value.message_dict


@pytest.mark.django_db
@pytest.mark.parametrize("close", ["won", "lost"])
def test_a_closed_opportunity_cannot_be_moved_won_or_lost_again(stages, close):
    opportunity = OpportunityFactory()
    if close == "won":
        services.opportunity_mark_won(opportunity=opportunity, user=SYSTEM)
    else:
        services.opportunity_mark_lost(opportunity=opportunity, user=SYSTEM)

    for attempt in (
        lambda: services.opportunity_move_stage(opportunity=opportunity, stage=stages["New"], user=SYSTEM),
        lambda: services.opportunity_mark_won(opportunity=opportunity, user=SYSTEM),
        lambda: services.opportunity_mark_lost(opportunity=opportunity, user=SYSTEM),
        lambda: services.opportunity_update(
            opportunity=opportunity, data={"stage": stages["New"]}, user=SYSTEM
        ),
    ):
        with pytest.raises(ValidationError) as excinfo:
            attempt()
        assert excinfo.value.code == CLOSED
    assert Opportunity.objects.get().status == close


@pytest.mark.django_db
def test_opportunity_update_into_the_won_stage_wins_it(stages):
    opportunity = services.opportunity_update(
        opportunity=OpportunityFactory(), data={"stage": stages["Won"]}, user=SYSTEM
    )
    assert opportunity.status == "won"
