"""The won deals from leads by the lead's owner and pipeline (sales.rollups.WON_FROM_LEAD_ROLLUP): kept
exact by the triggers on deals and leads, and what a rep's conversion funnel reads."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from crm.actors import SYSTEM
from crm.models import Lead
from crm.rollups import rollup_differences, rollup_rebuild
from sales import services
from sales.models import Opportunity, OpportunityStatus, WonFromLeadRollup
from sales.rollups import WON_FROM_LEAD_ROLLUP
from sales.selectors import conversion_funnel
from tests.factories import LeadFactory, PipelineFactory, StageFactory, UserFactory


def won_step(user, pipeline=None):
    step = conversion_funnel(user=user, pipeline=pipeline)[-1]
    assert step["key"] == "won"
    return step["count"], step["value"]


def kept() -> dict:
    """The rollup's figures by the lead's owner and pipeline (all currencies and close months)."""
    found: dict = {}
    for row in WonFromLeadRollup.objects.all():
        n, cents = found.get((row.lead_owner_id, row.lead_pipeline_id), (0, 0))
        found[row.lead_owner_id, row.lead_pipeline_id] = (n + row.n, cents + row.amount_cents)
    return {key: figures for key, figures in found.items() if any(figures)}


def win(lead, amount: str) -> Opportunity:
    deal = services.lead_convert(lead=lead, user=SYSTEM).opportunity
    Opportunity.objects.filter(pk=deal.pk).update(amount=Decimal(amount))
    deal.refresh_from_db()
    return services.opportunity_mark_won(opportunity=deal, user=SYSTEM)


@pytest.mark.django_db
def test_every_change_of_a_won_deal_or_of_its_lead_keeps_the_rollup_exact(stages, pipeline):
    ann, bob = UserFactory(username="won-ann"), UserFactory(username="won-bob")
    other = PipelineFactory(name="Won other")
    StageFactory(pipeline=other, name="Won other new", sequence=1)
    first = win(LeadFactory(stage=stages["New"], owner=ann), "100.00")
    second = win(LeadFactory(stage=stages["New"], owner=ann), "40.00")
    win(LeadFactory(stage=stages["New"], owner=None), "7.00")
    services.lead_convert(lead=LeadFactory(stage=stages["New"], owner=bob), user=SYSTEM)  # open: not kept
    p = pipeline.pk
    assert kept() == {(ann.pk, p): (2, 14000), (0, p): (1, 700)}
    assert rollup_differences(WON_FROM_LEAD_ROLLUP) == []

    # The deal's own changes: its amount, its close date, reopened, won again, deleted.
    Opportunity.objects.filter(pk=second.pk).update(amount=Decimal("50.00"))
    Opportunity.objects.filter(pk=second.pk).update(close_date=datetime.date(2025, 1, 31))
    assert kept()[ann.pk, p] == (2, 15000)
    Opportunity.objects.filter(pk=first.pk).update(
        status=OpportunityStatus.OPEN, closed_at=None, probability=50
    )
    assert kept()[ann.pk, p] == (1, 5000)
    Opportunity.objects.filter(pk=first.pk).update(
        status=OpportunityStatus.WON, closed_at=first.closed_at, probability=100
    )
    assert kept()[ann.pk, p] == (2, 15000)

    # The lead's changes: another owner, another pipeline, no owner; the rows move with them.
    Lead.objects.filter(pk=first.lead_id).update(owner=bob)
    assert kept() == {(ann.pk, p): (1, 5000), (bob.pk, p): (1, 10000), (0, p): (1, 700)}
    Lead.objects.filter(pk=first.lead_id).update(pipeline=other)
    assert kept()[bob.pk, other.pk] == (1, 10000)
    Lead.objects.filter(pk=second.lead_id).update(owner=None)
    assert kept() == {(bob.pk, other.pk): (1, 10000), (0, p): (2, 5700)}
    assert rollup_differences(WON_FROM_LEAD_ROLLUP) == []

    # The deal leaves its lead (a lead deleted: SET_NULL), then the deal itself is deleted.
    Lead.objects.get(pk=first.lead_id).delete()
    assert (bob.pk, other.pk) not in kept()
    Opportunity.objects.get(pk=second.pk).delete()
    assert kept() == {(0, p): (1, 700)}
    assert rollup_differences(WON_FROM_LEAD_ROLLUP) == []

    # A recount from scratch finds the same.
    before = kept()
    rollup_rebuild(WON_FROM_LEAD_ROLLUP)
    assert kept() == before


@pytest.mark.django_db
def test_a_deal_written_before_its_lead_is_kept_under_the_lead_once_the_lead_is_there(stages, pipeline):
    """A fixture may load a won deal before its lead (the foreign key is checked at commit): the deal
    counts under no lead first, then moves under the lead's owner when the lead arrives."""
    ann = UserFactory(username="won-early")
    lead = LeadFactory(stage=stages["New"], owner=ann)
    deal = win(lead, "30.00")
    values = {field.attname: getattr(lead, field.attname) for field in Lead._meta.concrete_fields}
    Opportunity.objects.filter(pk=deal.pk).update(lead=None)
    Lead.objects.filter(pk=lead.pk).delete()
    with connection.constraint_checks_disabled():
        Opportunity.objects.filter(pk=deal.pk).update(lead_id=lead.pk)
        assert kept() == {(0, 0): (1, 3000)}
        Lead.objects.bulk_create([Lead(**values)])
    assert kept() == {(ann.pk, pipeline.pk): (1, 3000)}
    assert rollup_differences(WON_FROM_LEAD_ROLLUP) == []


@pytest.mark.django_db
def test_a_reps_funnel_reads_the_won_deals_of_the_leads_they_see_from_the_rollup(
    stages, pipeline, owner, personas
):
    outsider = personas.users["outsider"]
    win(LeadFactory(stage=stages["New"], owner=owner), "100.00")
    win(LeadFactory(stage=stages["New"], owner=outsider), "60.00")
    win(LeadFactory(stage=stages["New"], owner=None), "5.00")

    with CaptureQueriesContext(connection) as queries:
        assert won_step(owner) == (2, Decimal("105.00"))
    assert not any('sales_opportunity"' in query["sql"] for query in queries.captured_queries)
    assert won_step(outsider) == (2, Decimal("65.00"))
    assert won_step(owner, pipeline) == (2, Decimal("105.00"))
    assert won_step(owner, PipelineFactory(name="Empty")) == (0, Decimal("0.00"))


@pytest.mark.django_db
def test_a_superusers_funnel_in_one_pipeline_counts_the_won_deals_of_every_lead(stages, pipeline):
    """It counted only those of unowned leads and of the superuser's own (their "team")."""
    boss = UserFactory(username="won-boss", is_superuser=True)
    win(LeadFactory(stage=stages["New"], owner=UserFactory(username="won-rep")), "100.00")
    win(LeadFactory(stage=stages["New"], owner=None), "5.00")

    assert won_step(boss) == (2, Decimal("105.00"))
    assert won_step(boss, pipeline) == (2, Decimal("105.00"))


@pytest.mark.django_db(transaction=True)
def test_a_lead_handed_over_while_its_deal_changes_leaves_the_rollup_exact(stages, pipeline):
    """Ten rounds of a lead's owner changed in one transaction while its won deal's amount changes in
    another: whichever commits first, the figures end under the lead's last owner."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite writes one transaction at a time.")
    ann, bob = UserFactory(username="race-ann"), UserFactory(username="race-bob")
    deal = win(LeadFactory(stage=stages["New"], owner=ann), "10.00")
    errors = []

    def run(work, start):
        try:
            start.wait()
            work()
        except Exception as error:  # the assertion below names it
            errors.append(error)
        finally:
            connections.close_all()

    for round_ in range(10):
        owner = bob if round_ % 2 == 0 else ann
        start = threading.Barrier(2)
        threads = [
            threading.Thread(
                target=run,
                args=(lambda owner=owner: Lead.objects.filter(pk=deal.lead_id).update(owner=owner), start),
            ),
            threading.Thread(
                target=run,
                args=(
                    lambda round_=round_: Opportunity.objects.filter(pk=deal.pk).update(
                        amount=Decimal(11 + round_)
                    ),
                    start,
                ),
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert rollup_differences(WON_FROM_LEAD_ROLLUP) == []
    assert kept() == {(ann.pk, pipeline.pk): (1, 2000)}
