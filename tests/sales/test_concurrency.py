"""Concurrent transitions on PostgreSQL: the row locks and the name lock hold under real parallelism."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from crm.actors import SYSTEM
from crm.models import Account
from crm.services import CLOSED
from sales.models import Opportunity
from sales.services import lead_convert, opportunity_mark_won, opportunity_move_stage
from tests.factories import LeadFactory, OpportunityFactory

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one writer at a time anyway"),
]


def run_together(*calls):
    """Run each call in its own thread and database connection, released at the same moment."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            outcomes[index] = call()
        except ValidationError as exc:
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_concurrent_conversions_of_the_same_company_create_one_account(stages):
    first = LeadFactory(company_name="Acme Corp")
    second = LeadFactory(company_name="ACME CORP")

    outcomes = run_together(
        lambda: lead_convert(lead=first, user=SYSTEM), lambda: lead_convert(lead=second, user=SYSTEM)
    )

    assert not any(isinstance(outcome, ValidationError) for outcome in outcomes)
    assert Account.objects.count() == 1
    assert Opportunity.objects.filter(account__name__iexact="acme corp").count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_wins_of_one_opportunity_win_it_once(stages):
    opportunity = OpportunityFactory()

    outcomes = run_together(*[lambda: opportunity_mark_won(opportunity=opportunity, user=SYSTEM)] * 2)

    refused = [outcome for outcome in outcomes if isinstance(outcome, ValidationError)]
    assert len(refused) == 1
    assert refused[0].code == CLOSED
    assert Opportunity.objects.get().status == "won"


def moving(opportunity, stage):
    return lambda: opportunity_move_stage(opportunity=opportunity, stage=stage, user=SYSTEM)


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_closing_moves_of_one_deal_close_it_once(stages):
    opportunity = OpportunityFactory(stage=stages["New"])
    targets = [stages["Won"] if i % 2 else stages["Lost"] for i in range(20)]

    outcomes = run_together(
        *[
            lambda stage=stage: opportunity_move_stage(opportunity=opportunity, stage=stage, user=SYSTEM)
            for stage in targets
        ]
    )

    done = [outcome for outcome in outcomes if isinstance(outcome, Opportunity)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, ValidationError)]
    assert len(done) == 1 and len(refused) == 19
    assert {exc.code for exc in refused} == {CLOSED}
    stored = Opportunity.objects.get()
    assert stored.stage == done[0].stage
    assert stored.status == ("won" if stored.stage.is_won else "lost")
    assert stored.probability == (100 if stored.stage.is_won else 0)
    assert stored.closed_at is not None


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_open_moves_of_one_deal_leave_a_consistent_stage_and_probability(stages):
    opportunity = OpportunityFactory(stage=stages["New"])
    targets = [stages[("New", "Qualified", "Proposal")[i % 3]] for i in range(20)]

    outcomes = run_together(
        *[
            lambda stage=stage: opportunity_move_stage(opportunity=opportunity, stage=stage, user=SYSTEM)
            for stage in targets
        ]
    )

    assert all(isinstance(outcome, Opportunity) for outcome in outcomes), outcomes
    stored = Opportunity.objects.select_related("stage").get()
    # Each move saw the row as the previous one left it: the last writer's stage and its probability.
    assert stored.status == "open"
    assert stored.probability == stored.stage.probability
    assert stored.stage in targets
