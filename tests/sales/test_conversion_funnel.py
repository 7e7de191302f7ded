"""conversion_funnel(): leads → qualified → converted → won, counted by the database."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.actors import SYSTEM
from crm.services import lead_mark_lost
from sales import services
from sales.selectors import conversion_funnel
from tests.factories import LeadFactory, PipelineFactory, StageFactory, UserFactory


def counts(steps):
    return [
        (step["key"], step["count"], step["percent_of_total"], step["percent_of_previous"]) for step in steps
    ]


@pytest.mark.django_db
def test_funnel_counts_each_step_in_a_fixed_number_of_queries(stages):
    LeadFactory(stage=stages["New"])
    LeadFactory(stage=stages["New"])
    LeadFactory(stage=stages["Qualified"])
    lead_mark_lost(lead=LeadFactory(stage=stages["Proposal"]), user=SYSTEM)
    services.lead_convert(lead=LeadFactory(stage=stages["Qualified"]), create_opportunity=False, user=SYSTEM)
    won = services.lead_convert(
        lead=LeadFactory(stage=stages["New"], expected_revenue=Decimal("10")), user=SYSTEM
    )
    services.opportunity_mark_won(opportunity=won.opportunity, user=SYSTEM)

    user = UserFactory()
    with CaptureQueriesContext(connection) as queries:
        steps = conversion_funnel(user=user)

    # Whether the reader is a CRM Admin and the owners they see, in one statement (once per user
    # object); the won deals from those owners' leads and from unowned leads, from their rollup (by the
    # lead's owner); the leads' groups from the lead rollup.
    assert len(queries) == 3
    # 6 leads; qualified: the one in Qualified and the two converted; won: one converted lead's deal.
    assert counts(steps) == [
        ("leads", 6, 100.0, 100.0),
        ("qualified", 3, 50.0, 50.0),
        ("converted", 2, 33.33, 66.67),
        ("won", 1, 16.67, 50.0),
    ]
    assert steps[-1]["value"] == Decimal("10.00")


@pytest.mark.django_db
def test_funnel_for_one_pipeline_and_first_stage_by_sequence(stages, pipeline):
    other = PipelineFactory(name="Other")
    # The other pipeline's first open stage has a high sequence number: only later stages qualify.
    first = StageFactory(pipeline=other, name="Intro", sequence=10)
    later = StageFactory(pipeline=other, name="Demo", sequence=20)
    LeadFactory(pipeline=other, stage=first)
    LeadFactory(pipeline=other, stage=later)
    LeadFactory(stage=stages["New"])

    assert counts(conversion_funnel(user=UserFactory(), pipeline=other))[:2] == [
        ("leads", 2, 100.0, 100.0),
        ("qualified", 1, 50.0, 50.0),
    ]
    assert counts(conversion_funnel(user=UserFactory(), pipeline=pipeline))[1] == ("qualified", 0, 0.0, 0.0)


@pytest.mark.django_db
def test_funnel_of_nothing_is_zero(pipeline):
    assert [step["count"] for step in conversion_funnel(user=UserFactory())] == [0, 0, 0, 0]
