"""The leads and deals boards in the admin: columns, cards, more cards, and moves through the services."""

import datetime
import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm import services as crm_services
from crm.actors import SYSTEM
from crm.models import Lead, LeadStatus
from sales import services
from sales.models import Opportunity, OpportunityStatus
from tests.factories import (
    ActivityFactory,
    LeadFactory,
    OpportunityFactory,
    PipelineFactory,
    StageFactory,
    UserFactory,
)

D = Decimal
LEAD_BOARD = "admin:crm_lead_board"
LEAD_CARDS = "admin:crm_lead_board_cards"
LEAD_MOVE = "admin:crm_lead_board_move"


def board(client, name=LEAD_BOARD, query=""):
    response = client.get(reverse(name) + query)
    assert response.status_code == 200
    return response


def columns(response):
    return {
        c["stage"].name: (c["count"], c["total"], [card.title for card in c["cards"]])
        for c in response.context["columns"]
    }


def move(client, record, stage, name=LEAD_MOVE, query=""):
    return client.post(reverse(name) + query, {"record": record.pk, "stage": stage.pk})


@pytest.mark.django_db
def test_lead_board_has_a_column_per_stage_with_count_total_and_cards(admin_client, stages, admin_user):
    LeadFactory(name="Small", stage=stages["New"], expected_revenue=D("100.50"), owner=admin_user)
    LeadFactory(name="Big", stage=stages["New"], expected_revenue=D("2000"), priority="urgent")
    LeadFactory(name="Q", stage=stages["Qualified"], expected_revenue=None)
    crm_services.lead_mark_lost(
        lead=LeadFactory(name="Gone", stage=stages["New"], expected_revenue=D("7")), user=SYSTEM
    )
    LeadFactory(name="Elsewhere", pipeline=StageFactory(pipeline=PipelineFactory()).pipeline)

    response = board(admin_client)

    assert columns(response) == {
        "New": (2, D("2100.50"), ["Big", "Small"]),
        "Qualified": (1, D("0.00"), ["Q"]),
        "Proposal": (0, D("0.00"), []),
        "Won": (0, D("0.00"), []),
        "Lost": (1, D("7.00"), ["Gone"]),
    }
    html = response.content.decode()
    assert "$2.1K" in html and "Expected revenue: $100.50" in html and ">$2K<" in html  # total, cards
    assert "Urgent" in html and admin_user.username in html
    # A closed lead is shown but cannot be dragged.
    gone = Lead.objects.get(name="Gone")
    assert (
        f'data-id="{gone.pk}" data-origin-stage="{stages["Lost"].pk}" data-locked="true" draggable="false"'
        in html
    )
    assert f'data-move-url="{reverse(LEAD_MOVE)}?pipeline=' in html


@pytest.mark.django_db
def test_cards_show_the_next_open_activity(admin_client, stages):
    lead = LeadFactory(name="Busy", stage=stages["New"])
    now = timezone.now()
    ActivityFactory(lead=lead, subject="Later", due_date=now + datetime.timedelta(days=5))
    ActivityFactory(lead=lead, subject="Sooner", due_date=now + datetime.timedelta(days=1))
    ActivityFactory(
        lead=lead,
        subject="Done",
        status="completed",
        completed_at=now,
        due_date=now - datetime.timedelta(days=1),
    )
    LeadFactory(name="Idle", stage=stages["New"])

    response = board(admin_client)

    cards = {card.title: card for card in response.context["columns"][0]["cards"]}
    assert cards["Busy"].next_activity.subject == "Sooner"
    assert cards["Idle"].next_activity is None
    assert "Call: Sooner" in response.content.decode()


@pytest.mark.django_db
def test_board_filters_and_pipeline_switch(admin_client, stages):
    LeadFactory(name="Hot one", stage=stages["New"], priority="high", expected_revenue=10)
    LeadFactory(name="Cold one", stage=stages["New"], priority="low", expected_revenue=20)
    other = PipelineFactory(name="Partners")
    intro = StageFactory(pipeline=other, name="Intro", sequence=0)
    LeadFactory(name="Partner lead", pipeline=other, stage=intro, expected_revenue=30)

    filtered = board(admin_client, query="?priority=high")
    assert columns(filtered)["New"] == (1, D("10.00"), ["Hot one"])
    assert board(admin_client, query="?search=cold").context["columns"][0]["count"] == 1

    switched = board(admin_client, query=f"?pipeline={other.pk}")
    assert columns(switched) == {"Intro": (1, D("30.00"), ["Partner lead"])}
    assert "Partners" in switched.content.decode()


@pytest.mark.django_db
def test_a_bad_filter_value_is_reported_not_a_crash(admin_client, stages):
    LeadFactory(stage=stages["New"])
    response = board(admin_client, query="?priority=enormous")
    assert response.context["filter_form"].errors["priority"]
    assert response.context["columns"][0]["count"] == 1


@pytest.mark.django_db
def test_lead_changelist_links_to_the_board_with_its_filters(admin_client, stages):
    response = admin_client.get(reverse("admin:crm_lead_changelist") + "?priority__exact=high&q=acme")
    assert response.context["kanban_board_url"] == reverse(LEAD_BOARD) + "?priority=high&search=acme"
    assert "Board view" in response.content.decode()


@pytest.mark.django_db
def test_columns_show_the_first_cards_and_load_more_on_demand(admin_client, stages):
    made = [LeadFactory(name=f"Lead {i:02}", stage=stages["New"]) for i in range(25)]

    response = board(admin_client)
    first = response.context["columns"][0]
    assert (first["count"], len(first["cards"]), first["has_more"]) == (25, 20, True)

    more = admin_client.get(reverse(LEAD_CARDS), {"stage": stages["New"].pk, "offset": 20})
    assert more.status_code == 200 and more["X-Has-More"] == "false"
    html = more.content.decode()
    # Newest first, like the board: the five oldest follow.
    assert [lead.name in html for lead in made[:5]] == [True] * 5
    assert made[5].name not in html

    page = admin_client.get(reverse(LEAD_CARDS), {"stage": stages["New"].pk, "offset": 0})
    assert page["X-Has-More"] == "true"
    assert admin_client.get(reverse(LEAD_CARDS), {"stage": "x"}).status_code == 400


def make_leads(stages, n: int):
    owner = UserFactory()
    for i in range(n):
        for stage in ("New", "Qualified", "Proposal"):
            lead = LeadFactory(stage=stages[stage], owner=owner, expected_revenue=100, priority="high")
            ActivityFactory(lead=lead, owner=owner, due_date=timezone.now() + datetime.timedelta(days=i))


def query_count(client, url, params=None) -> int:
    client.get(url, params)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(ctx)


@pytest.mark.django_db
@pytest.mark.parametrize("name", [LEAD_BOARD, LEAD_CARDS])
def test_board_and_cards_cost_a_fixed_number_of_queries(admin_client, stages, name):
    params = {"stage": stages["New"].pk, "offset": 0} if name == LEAD_CARDS else {"owner": ""}
    make_leads(stages, 2)
    small = query_count(admin_client, reverse(name), params)
    make_leads(stages, 30)
    large = query_count(admin_client, reverse(name), params)
    assert large == small
    assert large <= 15


@pytest.mark.django_db
def test_opportunity_board_costs_a_fixed_number_of_queries(admin_client, stages):
    owners = [UserFactory() for _ in range(3)]

    def make(n):
        for i in range(n):
            opp = OpportunityFactory(stage=stages["Proposal"], owner=owners[i % 3], amount=10)
            ActivityFactory(opportunity=opp, due_date=timezone.now())

    make(2)
    small = query_count(admin_client, reverse("admin:sales_opportunity_board"))
    make(30)
    assert query_count(admin_client, reverse("admin:sales_opportunity_board")) == small


# --- moves ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_moving_a_lead_calls_the_service_and_answers_fresh_columns(admin_client, stages):
    lead = LeadFactory(name="Mover", stage=stages["New"], expected_revenue=D("1500"))
    LeadFactory(stage=stages["New"], expected_revenue=D("10"))

    response = move(admin_client, lead, stages["Qualified"], query="?pipeline=")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["message"] == "“Mover” moved to Qualified."
    summary = {column["stage_id"]: (column["count"], column["total_display"]) for column in body["columns"]}
    assert summary[stages["New"].pk] == (1, "$10")
    assert summary[stages["Qualified"].pk] == (1, "$1.5K")
    assert f'data-id="{lead.pk}"' in body["card_html"]
    lead.refresh_from_db()
    assert (lead.stage, lead.probability) == (stages["Qualified"], 30)


@pytest.mark.django_db
def test_move_answers_counts_for_the_boards_filters(admin_client, stages):
    lead = LeadFactory(stage=stages["New"], priority="high", expected_revenue=5)
    LeadFactory(stage=stages["Qualified"], priority="low", expected_revenue=7)

    body = move(admin_client, lead, stages["Qualified"], query="?priority=high").json()

    summary = {column["stage_id"]: column["count"] for column in body["columns"]}
    assert summary[stages["Qualified"].pk] == 1  # the low-priority lead is filtered out


@pytest.mark.django_db
def test_moving_a_lead_into_the_won_stage_converts_it(admin_client, stages):
    lead = LeadFactory(
        name="Winner", stage=stages["Proposal"], company_name="Winner Inc", expected_revenue=900
    )

    body = move(admin_client, lead, stages["Won"]).json()

    assert body["ok"] is True and "converted" in body["message"]
    lead.refresh_from_db()
    assert lead.status == LeadStatus.CONVERTED
    assert Opportunity.objects.get(lead=lead).amount == 900
    assert 'data-locked="true"' in body["card_html"]


@pytest.mark.django_db
def test_a_refused_move_answers_400_with_the_service_message_and_changes_nothing(admin_client, stages):
    lead = crm_services.lead_mark_lost(lead=LeadFactory(stage=stages["New"]), user=SYSTEM)
    before = Lead.objects.values().get(pk=lead.pk)

    response = move(admin_client, lead, stages["Qualified"])

    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error": "This lead is already lost: a closed lead cannot be moved, converted, won or lost again "
        "until it is reopened.",
    }
    assert Lead.objects.values().get(pk=lead.pk) == before


@pytest.mark.django_db
def test_a_stage_of_another_pipeline_is_refused(admin_client, stages):
    lead = LeadFactory(stage=stages["New"])
    foreign = StageFactory(pipeline=PipelineFactory(name="Other"), name="Elsewhere")

    response = move(admin_client, lead, foreign)

    assert response.status_code == 400
    assert "belongs to the pipeline “Other”" in response.json()["error"]
    lead.refresh_from_db()
    assert lead.stage == stages["New"]


@pytest.mark.django_db
def test_move_needs_post_a_known_record_and_stage(admin_client, stages):
    lead = LeadFactory(stage=stages["New"])
    assert admin_client.get(reverse(LEAD_MOVE)).status_code == 405
    assert admin_client.post(reverse(LEAD_MOVE), {"record": 0, "stage": stages["New"].pk}).status_code == 404
    assert admin_client.post(reverse(LEAD_MOVE), {"record": lead.pk, "stage": 0}).status_code == 400
    assert admin_client.post(reverse(LEAD_MOVE), {"record": "x"}).status_code == 400


@pytest.mark.django_db
def test_move_is_csrf_protected(admin_user, stages):
    lead = LeadFactory(stage=stages["New"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    refused = client.post(reverse(LEAD_MOVE), {"record": lead.pk, "stage": stages["Qualified"].pk})
    assert refused.status_code == 403
    lead.refresh_from_db()
    assert lead.stage == stages["New"]

    page = client.get(reverse(LEAD_BOARD))
    token = page.context["csrf_token"]
    accepted = client.post(
        reverse(LEAD_MOVE),
        {"record": lead.pk, "stage": stages["Qualified"].pk},
        headers={"X-CSRFToken": str(token)},
    )
    assert accepted.status_code == 200
    lead.refresh_from_db()
    assert lead.stage == stages["Qualified"]


@pytest.mark.django_db
def test_a_user_who_may_only_view_sees_the_board_but_cannot_move(client, stages):
    viewer = UserFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_lead"))
    client.force_login(viewer)
    lead = LeadFactory(stage=stages["New"])

    page = board(client)
    assert 'data-can-move="false"' in page.content.decode()
    response = move(client, lead, stages["Qualified"])
    assert response.status_code == 403
    lead.refresh_from_db()
    assert lead.stage == stages["New"]


@pytest.mark.django_db
def test_moving_a_deal_into_won_wins_it(admin_client, stages):
    opp = OpportunityFactory(name="Deal", stage=stages["Proposal"], amount=D("4000"))
    OpportunityFactory(stage=stages["Won"], amount=D("1"))  # already in the column

    body = move(admin_client, opp, stages["Won"], name="admin:sales_opportunity_board_move").json()

    assert body["ok"] is True
    summary = {column["stage_id"]: column["total_display"] for column in body["columns"]}
    assert summary[stages["Won"].pk] == "$4K"
    opp.refresh_from_db()
    assert (opp.status, opp.probability) == (OpportunityStatus.WON, 100)


@pytest.mark.django_db
def test_a_closed_deal_cannot_be_moved(admin_client, stages):
    opp = services.opportunity_mark_won(opportunity=OpportunityFactory(stage=stages["New"]), user=SYSTEM)
    response = move(admin_client, opp, stages["New"], name="admin:sales_opportunity_board_move")
    assert response.status_code == 400
    assert "already won" in response.json()["error"]


@pytest.mark.django_db
def test_deal_board_shows_account_and_links_to_forecast(admin_client, stages):
    OpportunityFactory(name="Deal", stage=stages["New"], account=None, amount=D("12.5"))
    response = board(admin_client, name="admin:sales_opportunity_board")
    assert columns(response)["New"] == (1, D("12.50"), ["Deal"])
    changelist = admin_client.get(reverse("admin:sales_opportunity_changelist")).content.decode()
    assert reverse("admin:sales_opportunity_forecast") in changelist
    assert reverse("admin:sales_opportunity_board") in changelist


@pytest.mark.django_db
def test_move_json_is_valid_for_every_column(admin_client, stages):
    lead = LeadFactory(stage=stages["New"])
    body = json.loads(move(admin_client, lead, stages["Proposal"]).content)
    assert [column["stage_id"] for column in body["columns"]] == [s.pk for s in stages.values()]
