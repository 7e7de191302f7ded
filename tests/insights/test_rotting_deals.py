"""Rotting deals: each stage's usual time from stage history, and the open deals in a stage for longer
than CRM_ROTTING_FACTOR × that flagged in the API, on the board and in the list."""

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from crm.actors import SYSTEM
from crm.models import StageTiming
from sales.insights import stage_timings_refresh
from sales.models import Opportunity, OpportunityStageChange
from tests.factories import OpportunityFactory

pytestmark = pytest.mark.django_db


def _deal(stages, name, moves, status="open"):
    """``moves``: (stage name, days ago it was entered)."""
    now = timezone.now()
    deal = OpportunityFactory(name=name, stage=stages[moves[-1][0]], close_date=datetime.date(2027, 1, 31))
    if status != "open":
        Opportunity.objects.filter(pk=deal.pk).update(status=status, closed_at=now)
    previous = None
    for stage, days_ago in moves:
        OpportunityStageChange.objects.create(
            record=deal,
            from_stage=stages[previous] if previous else None,
            from_stage_name=previous or "",
            to_stage=stages[stage],
            to_stage_name=stage,
            changed_at=now - datetime.timedelta(days=days_ago),
        )
        previous = stage
    return deal


@pytest.fixture
def deals(stages, settings):
    settings.CRM_ROTTING_FACTOR = 1.5
    settings.CRM_ROTTING_MIN_STAYS = 5
    # Five won deals stayed 10 days in Qualified (and 2 in New): Qualified usually takes 10 days.
    for index in range(5):
        _deal(
            stages, f"History {index}", [("New", 60), ("Qualified", 58), ("Proposal", 48), ("Won", 40)], "won"
        )
    # Only four stays in Proposal (one per deal above... plus none): under the minimum, no usual time.
    stale = _deal(stages, "Stale", [("Qualified", 20)])  # 20 > 1.5 × 10
    fresh = _deal(stages, "Fresh", [("Qualified", 5)])
    stage_timings_refresh(user=SYSTEM)
    return {"stale": stale, "fresh": fresh}


def test_usual_time_per_stage_from_stage_history(deals, stages):
    timings = {
        t.stage.name: (round(t.usual_days, 1), t.stays) for t in StageTiming.objects.select_related("stage")
    }
    # New: 5 stays of 2 days; Qualified: 5 of 10; Proposal: 5 of 8. Won is not a stay.
    assert timings == {"New": (2.0, 5), "Qualified": (10.0, 5), "Proposal": (8.0, 5)}


def test_rotting_deals_in_the_api_list_and_board(deals, crm_admin):
    client = APIClient()
    client.force_authenticate(crm_admin)
    rows = {d["name"]: d for d in client.get("/api/v1/crm/opportunities/?status=open").json()["results"]}
    assert rows["Stale"]["is_rotting"] is True
    assert rows["Stale"]["days_in_stage"] == pytest.approx(20.0, abs=0.1)
    assert rows["Stale"]["stage_usual_time"] == 10.0
    assert rows["Fresh"]["is_rotting"] is False
    board = client.get("/api/v1/crm/opportunities/kanban/").json()
    cards = {c["name"]: c["is_rotting"] for column in board["columns"] for c in column["results"]}
    assert cards["Stale"] is True and cards["Fresh"] is False
    # A closed deal is never rotting.
    assert all(
        not d["is_rotting"] for d in client.get("/api/v1/crm/opportunities/?status=won").json()["results"]
    )


def test_rotting_deals_flagged_on_the_admin_board_and_list(deals, crm_admin, client):
    client.force_login(crm_admin)
    board = client.get("/admin/sales/opportunity/board/").content.decode()
    assert board.count("Rotting ·") == 1
    listing = client.get("/admin/sales/opportunity/?status__exact=open").content.decode()
    assert "Rotting · 20 d" in listing and "5 d" in listing


def test_a_stage_with_too_few_stays_has_no_usual_time(stages, settings):
    settings.CRM_ROTTING_MIN_STAYS = 5
    _deal(stages, "One", [("New", 30), ("Qualified", 20)])
    _deal(stages, "Two", [("Qualified", 90)])
    stage_timings_refresh(user=SYSTEM)
    assert StageTiming.objects.count() == 0
    assert not Opportunity.objects.get(name="Two").is_rotting
