"""The standard reports' figures against the hand-computed values of tests/reports/conftest.py."""

import datetime
from decimal import Decimal

import pytest

from activities.reports import activity_report
from crm.reports import ReportFilters
from sales.reports import (
    cycle_report,
    funnel_report,
    lead_source_report,
    lifetime_value_report,
    revenue_report,
    velocity_report,
    win_loss_report,
)

Q1 = {"date_from": datetime.date(2026, 1, 1), "date_to": datetime.date(2026, 3, 31)}
pytestmark = pytest.mark.django_db


def summary(result) -> dict:
    return {item["key"]: item["value"] for item in result.summary}


def table(result, *keys) -> list[tuple]:
    return [tuple(row[key] for key in keys) for row in result.rows]


def test_funnel_counts_each_cohort_reaching_each_stage(report_world):
    manager = report_world.users["manager"]
    result = funnel_report(user=manager, filters=ReportFilters(**Q1))
    # D1 reached Won, D2 Qualified (then lost), D3 Won (skipping Qualified), D4 New.
    assert table(result, "cohort", "stage", "reached", "conversion", "drop_off") == [
        ("2026-01", "New", 2, 100.0, 0.0),
        ("2026-01", "Qualified", 2, 50.0, 50.0),
        ("2026-01", "Proposal", 1, 100.0, 0.0),
        ("2026-01", "Won", 1, None, None),
        ("2026-02", "New", 2, 50.0, 50.0),
        ("2026-02", "Qualified", 1, 100.0, 0.0),
        ("2026-02", "Proposal", 1, 100.0, 0.0),
        ("2026-02", "Won", 1, None, None),
        ("All", "New", 4, 75.0, 25.0),
        ("All", "Qualified", 3, 66.67, 33.33),
        ("All", "Proposal", 2, 100.0, 0.0),
        ("All", "Won", 2, None, None),
    ]
    assert summary(result)["records"] == 4
    assert summary(result)["overall"] == 50.0


def test_funnel_of_a_rep_counts_only_their_deals_and_by_quarter(report_world):
    owner = report_world.users["owner"]
    result = funnel_report(user=owner, filters=ReportFilters(**Q1, cohort="quarter"))
    assert table(result, "cohort", "stage", "reached") == [
        ("2026-Q1", "New", 3),
        ("2026-Q1", "Qualified", 2),
        ("2026-Q1", "Proposal", 1),
        ("2026-Q1", "Won", 1),
        ("All", "New", 3),
        ("All", "Qualified", 2),
        ("All", "Proposal", 1),
        ("All", "Won", 1),
    ]


def test_funnel_of_leads_counts_leads_of_the_pipeline(report_world):
    result = funnel_report(user=report_world.users["manager"], filters=ReportFilters(**Q1, kind="lead"))
    # L1-L4 (West) are in New without stage history; L5 is the outsider's.
    assert summary(result)["records"] == 4
    assert [row["reached"] for row in result.rows if row["cohort"] == "All"] == [4, 0, 0, 0]


def test_velocity_per_month_and_now(report_world):
    result = velocity_report(user=report_world.users["manager"], filters=ReportFilters(**Q1))
    assert table(
        result, "period", "open_deals", "won", "lost", "win_rate", "average_won", "cycle_days", "velocity"
    ) == [
        ("2026-01", 2, 0, 0, None, None, None, None),
        # 2 open × 50% × 1000 / 30 days
        ("2026-02", 2, 1, 1, 50.0, Decimal("1000.00"), 30.0, Decimal("33.33")),
        # 1 open × 100% × 6000 (3000 EUR at 2) / 32 days
        ("2026-03", 1, 1, 0, 100.0, Decimal("6000.00"), 32.0, Decimal("187.50")),
    ]
    figures = summary(result)
    # Now: D4 open; over the period 2 won of 3 closed, 3500 average, 31 days: 1 × 66.67% × 3500 / 31.
    assert figures["open_deals"] == 1
    assert figures["win_rate"] == 66.67
    assert figures["average_won"] == Decimal("3500.00")
    assert figures["cycle_days"] == 31.0
    assert figures["velocity"] == Decimal("75.27")


def test_velocity_refuses_a_trend_too_long(report_world):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        velocity_report(
            user=report_world.users["manager"],
            filters=ReportFilters(date_from=datetime.date(2000, 1, 1), date_to=datetime.date(2026, 1, 1)),
        )


def test_cycle_and_time_in_stage(report_world):
    result = cycle_report(user=report_world.users["manager"], filters=ReportFilters(**Q1))
    assert summary(result) == {
        "won": 2,
        "average_cycle_days": 31.0,
        "shortest_cycle_days": 30.0,
        "longest_cycle_days": 32.0,
    }
    # New: 10 days each for D1, D2, D3, and D4 still there; Qualified: 12 (D1) and 10 (D2);
    # Proposal: 8 (D1) and 22 (D3).
    assert table(result, "stage", "completed", "average_days", "ongoing") == [
        ("Sales › New", 3, 10.0, 1),
        ("Sales › Qualified", 2, 11.0, 0),
        ("Sales › Proposal", 2, 15.0, 0),
    ]
    assert result.rows[0]["ongoing_days"] > 200  # since 2026-02-10


def test_revenue_by_month_source_industry_and_customer(report_world):
    manager = report_world.users["manager"]
    by_month = revenue_report(user=manager, filters=ReportFilters(**Q1, group_by="month"))
    assert table(by_month, "key", "won_count", "won_amount", "share") == [
        ("2026-02", 1, Decimal("1000.00"), 14.29),
        ("2026-03", 1, Decimal("6000.00"), 85.71),
    ]
    assert summary(by_month) == {"won_count": 2, "won_amount": Decimal("7000.00")}
    by_source = revenue_report(user=manager, filters=ReportFilters(**Q1, group_by="source"))
    assert table(by_source, "label", "won_amount") == [
        ("Referral", Decimal("6000.00")),
        ("Website", Decimal("1000.00")),
    ]
    by_industry = revenue_report(user=manager, filters=ReportFilters(**Q1, group_by="industry"))
    assert table(by_industry, "label", "won_count", "won_amount") == [("Technology", 2, Decimal("7000.00"))]
    # D1 is Acme's first win in the period but not ever: D6 (2024) came before it.
    by_customer = revenue_report(user=manager, filters=ReportFilters(**Q1, group_by="customer"))
    assert table(by_customer, "label", "won_count") == [("Existing customer", 2)]
    all_time = revenue_report(user=manager, filters=ReportFilters(group_by="customer"))
    assert table(all_time, "label", "won_count", "won_amount") == [
        ("Existing customer", 2, Decimal("7000.00")),
        ("New customer", 1, Decimal("2000.00")),
    ]
    by_owner = revenue_report(user=manager, filters=ReportFilters(**Q1, group_by="owner"))
    assert table(by_owner, "label", "won_amount") == [
        ("teammate", Decimal("6000.00")),
        ("owner", Decimal("1000.00")),
    ]


def test_revenue_by_campaign(report_world):
    from crm.models import Campaign
    from sales.models import Opportunity

    spring = Campaign.objects.create(name="Spring webinar")
    Campaign.objects.create(name="Unused")
    # D1 (owner, 1000 USD) and D5 (outsider, 9999 USD) came from the webinar; D3 (6000) from none.
    Opportunity.objects.filter(name__in=["D1", "D5"]).update(campaign=spring)
    by_manager = revenue_report(
        user=report_world.users["manager"], filters=ReportFilters(**Q1, group_by="campaign")
    )
    # The manager does not see D5: 1000 of 7000 from the webinar.
    assert table(by_manager, "key", "label", "won_count", "won_amount", "share") == [
        (None, "No campaign", 1, Decimal("6000.00"), 85.71),
        (str(spring.pk), "Spring webinar", 1, Decimal("1000.00"), 14.29),
    ]
    by_admin = revenue_report(
        user=report_world.users["crm_admin"], filters=ReportFilters(**Q1, group_by="campaign")
    )
    # 1000 + 9999 = 10999 of 16999; average 5499.50.
    assert table(by_admin, "label", "won_count", "won_amount", "average", "share") == [
        ("Spring webinar", 2, Decimal("10999.00"), Decimal("5499.50"), 64.70),
        ("No campaign", 1, Decimal("6000.00"), Decimal("6000.00"), 35.30),
    ]


def test_revenue_filters_by_team_owner_and_source(report_world):
    admin = report_world.users["crm_admin"]
    east = report_world.teams["East"]
    west = report_world.teams["West"]
    owner = report_world.users["owner"]
    assert summary(revenue_report(user=admin, filters=ReportFilters(**Q1)))["won_amount"] == Decimal(
        "16999.00"
    )
    team_ids = (*east.members.values_list("pk", flat=True), east.manager_id)
    assert summary(revenue_report(user=admin, filters=ReportFilters(**Q1, owner_ids=team_ids)))[
        "won_amount"
    ] == Decimal("9999.00")
    assert summary(revenue_report(user=admin, filters=ReportFilters(**Q1, owner_ids=(owner.pk,))))[
        "won_amount"
    ] == Decimal("1000.00")
    assert summary(revenue_report(user=admin, filters=ReportFilters(**Q1, source="referral")))[
        "won_amount"
    ] == Decimal("6000.00")
    assert west.pk  # the West team is the manager's


def test_win_loss_by_reason_stage_owner_and_size(report_world):
    manager = report_world.users["manager"]
    by_reason = win_loss_report(user=manager, filters=ReportFilters(**Q1, group_by="reason"))
    assert table(by_reason, "label", "lost", "lost_amount", "share_of_losses") == [
        ("Price", 1, Decimal("500.00"), 100.0)
    ]
    by_stage = win_loss_report(user=manager, filters=ReportFilters(**Q1, group_by="stage"))
    assert table(by_stage, "label", "lost") == [("Qualified", 1)]
    by_owner = win_loss_report(user=manager, filters=ReportFilters(**Q1, group_by="owner"))
    assert table(by_owner, "label", "won", "lost", "win_rate", "won_amount", "lost_amount") == [
        ("owner", 1, 1, 50.0, Decimal("1000.00"), Decimal("500.00")),
        ("teammate", 1, 0, 100.0, Decimal("6000.00"), Decimal("0.00")),
    ]
    by_size = win_loss_report(user=manager, filters=ReportFilters(**Q1, group_by="size"))
    assert table(by_size, "label", "won", "lost") == [("under 1,000", 0, 1), ("1,000 – 9,999", 2, 0)]
    assert summary(by_size) == {"won": 2, "lost": 1, "win_rate": 66.67}


def test_activity_by_type_owner_and_per_won_deal(report_world):
    manager = report_world.users["manager"]
    by_type = activity_report(user=manager, filters=ReportFilters(**Q1, group_by="type"))
    assert table(by_type, "key", "count", "completed", "cancelled", "overdue", "share") == [
        ("call", 2, 1, 0, 1, 50.0),
        ("email", 1, 0, 1, 0, 25.0),
        ("meeting", 1, 1, 0, 0, 25.0),
    ]
    # Won in Q1 and seen: D1 (2 activities) and D3 (1).
    assert summary(by_type) == {"activities": 4, "won_deals": 2, "activities_per_won_deal": 1.5}
    by_owner = activity_report(user=manager, filters=ReportFilters(**Q1, group_by="owner"))
    assert table(by_owner, "label", "count") == [("owner", 3), ("teammate", 1)]
    by_outcome = activity_report(user=manager, filters=ReportFilters(**Q1, group_by="outcome"))
    assert table(by_outcome, "key", "count") == [("completed", 2), ("cancelled", 1), ("scheduled", 1)]


def test_lifetime_value_per_account_with_its_projection(report_world, settings):
    settings.CRM_LIFETIME_VALUE_YEARS = 3
    manager = report_world.users["manager"]
    result = lifetime_value_report(user=manager, filters=ReportFilters(date_to=datetime.date(2026, 12, 31)))
    # Acme: D6 2000 (2024-03-09) + D1 1000 + D3 6000 = 9000; 1027 days to 2026-12-31 = 2.8118 years;
    # 9000 × 365.25 / 1027 = 3200.83 a year; projected 9000 + 3 × 3200.83 = 18602.48.
    years = Decimal(1027) / Decimal("365.25")
    yearly = Decimal(9000) / years
    assert table(
        result, "account", "won_deals", "won_to_date", "years_active", "yearly_average", "projected"
    ) == [
        (
            "Acme",
            3,
            Decimal("9000.00"),
            2.8,
            yearly.quantize(Decimal("0.01")),
            (Decimal(9000) + 3 * yearly).quantize(Decimal("0.01")),
        )
    ]
    assert result.rows[0]["yearly_average"] == Decimal("3200.83")
    assert result.rows[0]["projected"] == Decimal("18602.48")
    admin = report_world.users["crm_admin"]
    rows = lifetime_value_report(user=admin, filters=ReportFilters(date_to=datetime.date(2026, 12, 31))).rows
    # Beta: 9999 in less than a year counts as one year.
    assert [(r["account"], r["won_to_date"], r["years_active"]) for r in rows] == [
        ("Beta", Decimal("9999.00"), 1.0),
        ("Acme", Decimal("9000.00"), 2.8),
    ]


def test_lead_source_effectiveness(report_world):
    result = lead_source_report(user=report_world.users["manager"], filters=ReportFilters(**Q1))
    assert table(
        result, "source", "leads", "converted", "conversion", "won_deals", "won_amount", "revenue_per_lead"
    ) == [
        ("referral", 1, 1, 100.0, 1, Decimal("6000.00"), Decimal("6000.00")),
        ("website", 3, 1, 33.33, 1, Decimal("1000.00"), Decimal("333.33")),
    ]
    # The owner does not see the teammate's lead L2 nor its deal D3.
    mine = lead_source_report(user=report_world.users["owner"], filters=ReportFilters(**Q1))
    assert table(mine, "source", "leads", "won_amount") == [("website", 3, Decimal("1000.00"))]
