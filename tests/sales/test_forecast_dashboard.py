"""forecast() and dashboard() against figures computed by hand on a small data set."""

import datetime
from decimal import Decimal

import pytest

from crm.actors import SYSTEM
from sales import selectors, services
from sales.currencies import conversion_note
from sales.services import lead_convert
from tests.factories import (
    LeadFactory,
    OpportunityFactory,
    PipelineFactory,
    SalesTeam,
    StageFactory,
    UserFactory,
)

D = Decimal


@pytest.fixture
def book(stages):
    """Opportunities A–H; see each line for what the forecast must make of it."""
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    # Alice manages Bob, so she sees both their deals (visibility is tested in tests/security).
    SalesTeam.objects.create(name="Alice's", manager=alice).members.add(bob)
    enterprise = PipelineFactory(name="Enterprise")
    big = StageFactory(pipeline=enterprise, name="Scoping", probability=50)

    def opp(name, amount, stage, close_date, owner):
        return OpportunityFactory(
            name=name, amount=D(amount), stage=stage, close_date=close_date, owner=owner
        )

    opps = {
        # open, weighted 1000 × 10% = 100.00
        "A": opp("A", "1000", stages["New"], datetime.date(2026, 1, 15), alice),
        # open, weighted 2000 × 30% = 600.00
        "B": opp("B", "2000", stages["Qualified"], datetime.date(2026, 1, 31), bob),
        # open, weighted 333.33 × 60% = 199.998
        "C": opp("C", "333.33", stages["Proposal"], datetime.date(2026, 2, 10), alice),
        # open without a close date, weighted 50.00
        "D": opp("D", "500", stages["New"], None, None),
        "E": opp("E", "4000", stages["New"], datetime.date(2026, 2, 20), bob),  # won below
        "F": opp("F", "700", stages["New"], datetime.date(2025, 12, 5), None),  # won below
        "G": opp("G", "9999", stages["New"], datetime.date(2026, 1, 10), alice),  # lost below
        # open in another pipeline, weighted 10000 × 50% = 5000.00
        "H": opp("H", "10000", big, datetime.date(2026, 3, 1), None),
    }
    services.opportunity_mark_won(opportunity=opps["E"], user=SYSTEM)
    services.opportunity_mark_won(opportunity=opps["F"], user=SYSTEM)
    services.opportunity_mark_lost(opportunity=opps["G"], user=SYSTEM)
    return {"alice": alice, "bob": bob, "enterprise": enterprise, "big": big, **opps}


def figures(count, amount, weighted, won_count, won_amount):
    return {
        "count": count,
        "amount": D(amount),
        "weighted_amount": D(weighted),
        "won_count": won_count,
        "won_amount": D(won_amount),
        "target_amount": None,  # no quotas here: tests/sales/test_quotas_performance.py
    }


@pytest.mark.django_db
def test_forecast_by_month_over_everything(book):
    result = selectors.forecast(user=book["alice"])

    assert result["totals"] == figures(5, "13833.33", "5950.00", 2, "4700.00")
    assert result["groups"] == [
        {"key": "2025-12", "label": "December 2025", **figures(0, "0.00", "0.00", 1, "700.00")},
        {"key": "2026-01", "label": "January 2026", **figures(2, "3000.00", "700.00", 0, "0.00")},
        {"key": "2026-02", "label": "February 2026", **figures(1, "333.33", "200.00", 1, "4000.00")},
        {"key": "2026-03", "label": "March 2026", **figures(1, "10000.00", "5000.00", 0, "0.00")},
        {"key": None, "label": "No close date", **figures(1, "500.00", "50.00", 0, "0.00")},
    ]


@pytest.mark.django_db
def test_forecast_by_quarter_for_a_pipeline_and_date_range(book, pipeline):
    result = selectors.forecast(
        user=book["alice"],
        pipeline=pipeline,
        date_from=datetime.date(2026, 1, 1),
        date_to=datetime.date(2026, 2, 28),
        group_by="quarter",
    )

    # A, B, C open in range (D has no close date, H is in another pipeline); E won in range, F before it.
    assert result["totals"] == figures(3, "3333.33", "900.00", 1, "4000.00")
    assert result["groups"] == [
        {"key": "2026-Q1", "label": "Q1 2026", **figures(3, "3333.33", "900.00", 1, "4000.00")}
    ]


@pytest.mark.django_db
def test_forecast_by_stage(book, pipeline, stages):
    result = selectors.forecast(user=book["alice"], pipeline=pipeline, group_by="stage")

    assert result["groups"] == [
        {"key": stages["New"].pk, "label": "New", **figures(2, "1500.00", "150.00", 0, "0.00")},
        {"key": stages["Qualified"].pk, "label": "Qualified", **figures(1, "2000.00", "600.00", 0, "0.00")},
        {"key": stages["Proposal"].pk, "label": "Proposal", **figures(1, "333.33", "200.00", 0, "0.00")},
        {"key": stages["Won"].pk, "label": "Won", **figures(0, "0.00", "0.00", 2, "4700.00")},
    ]


@pytest.mark.django_db
def test_forecast_by_owner_puts_unassigned_last(book):
    result = selectors.forecast(user=book["alice"], group_by="owner")

    assert result["groups"] == [
        {"key": book["alice"].pk, "label": "alice", **figures(2, "1333.33", "300.00", 0, "0.00")},
        {"key": book["bob"].pk, "label": "bob", **figures(1, "2000.00", "600.00", 1, "4000.00")},
        {"key": None, "label": "Unassigned", **figures(2, "10500.00", "5050.00", 1, "700.00")},
    ]


@pytest.mark.django_db
def test_forecast_for_one_owner(book):
    result = selectors.forecast(user=book["alice"], owner=book["bob"])
    assert result["totals"] == figures(1, "2000.00", "600.00", 1, "4000.00")


@pytest.mark.django_db
def test_forecast_of_nothing_is_zero(pipeline):
    result = selectors.forecast(user=UserFactory())
    assert result == {
        "currency": "USD",
        "conversion": conversion_note(),
        "totals": figures(0, "0.00", "0.00", 0, "0.00"),
        "groups": [],
    }


@pytest.mark.django_db
def test_dashboard_figures(book, stages, pipeline):
    for _ in range(2):
        LeadFactory()
    lead_convert(lead=LeadFactory(), create_opportunity=False, user=SYSTEM)

    result = selectors.dashboard(user=book["alice"], pipeline=pipeline)

    assert result["total_leads"] == 3
    assert result["conversion_rate"] == 33.33
    assert result["open_opportunities"] == {"count": 4, "value": D("3833.33")}  # A, B, C, D
    assert result["won_opportunities"] == {"count": 2, "value": D("4700.00")}  # E, F
    assert [(row["stage_name"], row["count"], row["value"]) for row in result["pipeline_distribution"]] == [
        ("New", 2, D("1500.00")),
        ("Qualified", 1, D("2000.00")),
        ("Proposal", 1, D("333.33")),
        ("Won", 2, D("4700.00")),
        ("Lost", 1, D("9999.00")),
    ]


@pytest.mark.django_db
def test_dashboard_over_all_pipelines(book):
    result = selectors.dashboard(user=book["alice"])

    assert result["open_opportunities"] == {"count": 5, "value": D("13833.33")}
    assert result["total_leads"] == 0 and result["conversion_rate"] == 0.0
    # Pipelines in their order (same sequence: by name), stages in theirs.
    assert [
        (row["pipeline_name"], row["stage_name"], row["count"]) for row in result["pipeline_distribution"]
    ] == [
        ("Enterprise", "Scoping", 1),
        ("Sales", "New", 2),
        ("Sales", "Qualified", 1),
        ("Sales", "Proposal", 1),
        ("Sales", "Won", 2),
        ("Sales", "Lost", 1),
    ]
