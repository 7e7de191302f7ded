"""A small data set for the reports, every figure of which the tests compute by hand.

Team West (manager: west_manager; members: owner, teammate) and East (outsider). Pipeline Sales:
New(0) → Qualified(1) → Proposal(2) → Won(3) / Lost(4). EUR is worth 2 USD from 2026-01-01.

deal owner    created    stages entered                                status close      amount   account lead
D1   owner    2026-01-10 New, Qualified 01-20, Proposal 02-01, Won 02-09 won    2026-02-09 1000 USD A       L1
D2   owner    2026-01-15 New, Qualified 01-25, Lost 02-04 (Price)        lost   2026-02-04 500 USD  -       -
D3   teammate 2026-02-05 New, Proposal 02-15, Won 03-09                  won    2026-03-09 3000 EUR A       L2
D4   owner    2026-02-10 New                                            open   2026-06-30 2000 USD -       -
D5   outsider 2026-01-05 New, Won 02-20                                 won    2026-02-20 9999 USD B       -
D6   owner    2024-02-01 New, Won 2024-03-09                            won    2024-03-09 2000 USD A       -

Leads: L1 owner website 2026-01-05 converted (D1); L2 teammate referral 2026-01-20 converted (D3);
L3 owner website 2026-02-01 open; L4 owner website 2026-03-01 lost; L5 outsider website 2026-01-07 open.
Activities (created): A1 call on D1 owner 01-12 completed; A2 call on D1 owner 01-20 scheduled, due
2026-01-25 (overdue); A3 meeting on D3 teammate 02-20 completed; A4 email on L3 owner 03-01 cancelled;
A5 call on D5 outsider 02-01 completed.
Times are noon UTC.
"""

import datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from activities.models import Activity
from crm.models import Lead
from sales.models import ExchangeRate, Opportunity, OpportunityStageChange
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    LeadFactory,
    LostReasonFactory,
    OpportunityFactory,
)

UTC = datetime.UTC


def at(day: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)


def _history(deal, stages, moves):
    previous = None
    for stage_name, day in moves:
        OpportunityStageChange.objects.create(
            record=deal,
            from_stage=stages[previous] if previous else None,
            from_stage_name=previous or "",
            to_stage=stages[stage_name],
            to_stage_name=stage_name,
            changed_at=at(day),
        )
        previous = stage_name


@pytest.fixture
def report_world(personas, stages):
    users = personas.users
    owner, teammate, outsider = users["owner"], users["teammate"], users["outsider"]
    ExchangeRate.objects.create(currency="EUR", date=datetime.date(2026, 1, 1), rate=Decimal("2"))
    account_a = AccountFactory(name="Acme", industry="technology", owner=owner)
    account_b = AccountFactory(name="Beta", industry="finance", owner=outsider)
    price = LostReasonFactory(name="Price")

    def lead(name, who, source, created, status="open"):
        record = LeadFactory(name=name, owner=who, source=source, stage=stages["New"])
        converted = {"converted_at": at(created)} if status == "converted" else {}
        Lead.objects.filter(pk=record.pk).update(created_at=at(created), status=status, **converted)
        return record

    l1 = lead("L1", owner, "website", "2026-01-05", "converted")
    l2 = lead("L2", teammate, "referral", "2026-01-20", "converted")
    l3 = lead("L3", owner, "website", "2026-02-01")
    l4 = lead("L4", owner, "website", "2026-03-01", "lost")
    lead("L5", outsider, "website", "2026-01-07")

    specs = [
        (
            "D1",
            owner,
            [
                ("New", "2026-01-10"),
                ("Qualified", "2026-01-20"),
                ("Proposal", "2026-02-01"),
                ("Won", "2026-02-09"),
            ],
            "won",
            "2026-02-09",
            "1000",
            "USD",
            account_a,
            l1,
            None,
        ),
        (
            "D2",
            owner,
            [("New", "2026-01-15"), ("Qualified", "2026-01-25"), ("Lost", "2026-02-04")],
            "lost",
            "2026-02-04",
            "500",
            "USD",
            None,
            None,
            price,
        ),
        (
            "D3",
            teammate,
            [("New", "2026-02-05"), ("Proposal", "2026-02-15"), ("Won", "2026-03-09")],
            "won",
            "2026-03-09",
            "3000",
            "EUR",
            account_a,
            l2,
            None,
        ),
        ("D4", owner, [("New", "2026-02-10")], "open", "2026-06-30", "2000", "USD", None, None, None),
        (
            "D5",
            outsider,
            [("New", "2026-01-05"), ("Won", "2026-02-20")],
            "won",
            "2026-02-20",
            "9999",
            "USD",
            account_b,
            None,
            None,
        ),
        (
            "D6",
            owner,
            [("New", "2024-02-01"), ("Won", "2024-03-09")],
            "won",
            "2024-03-09",
            "2000",
            "USD",
            account_a,
            None,
            None,
        ),
    ]
    deals = {}
    for name, who, moves, status, close, amount, currency, account, from_lead, reason in specs:
        stage = stages[moves[-1][0]]
        deal = OpportunityFactory(
            name=name,
            owner=who,
            pipeline=stage.pipeline,
            stage=stage,
            amount=Decimal(amount),
            currency=currency,
            close_date=datetime.date.fromisoformat(close),
            account=account,
            lead=from_lead,
            lost_reason=reason,
        )
        closed = at(moves[-1][1]) if status != "open" else None
        Opportunity.objects.filter(pk=deal.pk).update(
            created_at=at(moves[0][1]), status=status, closed_at=closed
        )
        _history(deal, stages, moves)
        deals[name] = deal

    def activity(kind, record, who, created, status, due=None):
        link = {"opportunity": record} if isinstance(record, Opportunity) else {"lead": record}
        item = ActivityFactory(
            activity_type=kind,
            owner=who,
            status=status,
            due_date=at(due) if due else None,
            completed_at=at(created) if status == "completed" else None,
            **link,
        )
        Activity.objects.filter(pk=item.pk).update(created_at=at(created))
        return item

    activity("call", deals["D1"], owner, "2026-01-12", "completed")
    activity("call", deals["D1"], owner, "2026-01-20", "scheduled", due="2026-01-25")
    activity("meeting", deals["D3"], teammate, "2026-02-20", "completed")
    activity("email", l3, owner, "2026-03-01", "cancelled")
    activity("call", deals["D5"], outsider, "2026-02-01", "completed")
    return SimpleNamespace(
        users=users,
        deals=deals,
        leads={"L1": l1, "L2": l2, "L3": l3, "L4": l4},
        accounts={"A": account_a, "B": account_b},
        teams=personas.teams,
        stages=stages,
    )


def add_more_data(world) -> None:
    """As many deals, leads and activities again (for the query-count tests)."""
    stages, owner = world.stages, world.users["owner"]
    for index in range(6):
        lead = LeadFactory(name=f"More {index}", owner=owner, source="partner", stage=stages["New"])
        Lead.objects.filter(pk=lead.pk).update(created_at=at("2026-04-02"))
        deal = OpportunityFactory(
            name=f"More {index}",
            owner=owner,
            pipeline=stages["New"].pipeline,
            stage=stages["Won"],
            amount=Decimal(100 * index),
            close_date=datetime.date(2026, 5, 1),
            account=world.accounts["A"],
            lead=lead,
        )
        Opportunity.objects.filter(pk=deal.pk).update(
            created_at=at("2026-04-01"), status="won", closed_at=at("2026-05-01")
        )
        _history(deal, stages, [("New", "2026-04-01"), ("Proposal", "2026-04-10"), ("Won", "2026-05-01")])
        ActivityFactory(activity_type="task", owner=owner, opportunity=deal)
