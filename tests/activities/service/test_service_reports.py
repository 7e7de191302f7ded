"""Issue 20 item 6: the customer-service reports (CSAT by agent and team, SLA attainment, backlog by age,
median first-response and resolution times), figures checked by hand, in the reports registry's admin
pages (with their chart) and API, counting only the tickets the reader sees."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from activities.models import SatisfactionSurvey, SlaPolicy, TicketStatus
from activities.service import services
from activities.service.satisfaction import survey_answer, survey_token
from crm.models import Priority
from tests.factories import ContactFactory

REPORTS = "/api/v1/crm/reports/"


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def run(user, key: str, **params) -> dict:
    response = api(user).get(f"{REPORTS}{key}/", params)
    assert response.status_code == 200, response.content
    return response.json()


def summary(body: dict) -> dict:
    return {item["key"]: item["value"] for item in body["summary"]}


@pytest.fixture
def west(personas):
    return personas.teams["West"]


@pytest.fixture
def at():
    """Create or change things at ``hours`` after a fixed start, a day and a half ago."""
    start = timezone.now().replace(microsecond=0) - timedelta(hours=36)

    def travel(hours: float):
        return time_machine.travel(start + timedelta(hours=hours), tick=False)

    return travel


# --- CSAT -------------------------------------------------------------------------------------------


@pytest.fixture
def rated(make_ticket, owner, teammate, west):
    """owner's tickets rated 5, 4 and 2; teammate's rated 1; one survey of owner's left unanswered."""
    for agent, rating in ((owner, 5), (owner, 4), (owner, 2), (teammate, 1), (owner, None)):
        ticket = make_ticket(contact=ContactFactory(email="c@example.com"), assignee=agent, team=west)
        services.ticket_set_status(ticket=ticket, user=agent, status=TicketStatus.RESOLVED)
        if rating is not None:
            survey_answer(token=survey_token(ticket.survey), rating=rating, comment="")


@pytest.mark.django_db
def test_csat_by_agent_by_hand(rated, manager, owner, teammate):
    body = run(manager, "service-csat")

    rows = {row["label"]: row for row in body["rows"]}
    assert rows["owner"] | {"key": None} == {
        "key": None,
        "label": "owner",
        "responses": 3,
        "satisfied": 2,
        "average": 3.67,  # (5 + 4 + 2) / 3
        "csat": 66.67,  # 2 of 3 rated 4 or 5
    }
    assert (rows["teammate"]["csat"], rows["teammate"]["average"]) == (0.0, 1.0)
    assert summary(body) == {"responses": 4, "csat": 50.0, "average": 3.0, "sent": 5}


@pytest.mark.django_db
def test_csat_by_team_and_for_one_agent(rated, manager, owner):
    by_team = run(manager, "service-csat", group_by="team")
    owner_only = run(manager, "service-csat", owner=owner.pk)

    assert [(row["label"], row["responses"], row["csat"]) for row in by_team["rows"]] == [("West", 4, 50.0)]
    assert summary(owner_only)["responses"] == 3 and summary(owner_only)["csat"] == 66.67


# --- SLA attainment ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sla_attainment_by_hand(make_ticket, owner, west, manager, at):
    SlaPolicy.objects.create(name="All", first_response_minutes=60, resolution_minutes=240)
    with at(0):
        on_time = make_ticket(assignee=owner, team=west)
        late = make_ticket(assignee=owner, team=west)
    with at(0.5):
        services.ticket_message_create(ticket=on_time, user=owner, body="On it")
    with at(2):
        services.ticket_message_create(ticket=late, user=owner, body="Sorry")
    with at(3):
        services.ticket_set_status(ticket=on_time, user=owner, status=TicketStatus.RESOLVED)
    with at(5):
        services.ticket_set_status(ticket=late, user=owner, status=TicketStatus.RESOLVED)
    with time_machine.travel(timezone.now() - timedelta(hours=2), tick=False):
        make_ticket(assignee=owner, team=west)  # unanswered for 2 h: first response missed already

    body = run(manager, "service-sla")

    [row] = body["rows"]
    assert (row["label"], row["tickets"]) == ("Medium", 3)
    # First response: met 1, missed 2 (one late, one past due); resolution: met 1, missed 1, one running.
    assert (row["first_response_met"], row["first_response_missed"], row["first_response_attainment"]) == (
        1,
        2,
        33.33,
    )
    assert (row["resolution_met"], row["resolution_missed"], row["resolution_attainment"]) == (1, 1, 50.0)
    assert row["attainment"] == 40.0  # 2 met of 5 decided
    assert summary(body)["attainment"] == 40.0


# --- backlog ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_backlog_by_age_by_hand(make_ticket, owner, west, manager, outsider):
    now = timezone.now()
    for hours, priority in (
        (2, Priority.MEDIUM),
        (50, Priority.HIGH),
        (120, Priority.LOW),
        (130, Priority.URGENT),
        (960, Priority.MEDIUM),
    ):
        with time_machine.travel(now - timedelta(hours=hours), tick=False):
            make_ticket(assignee=owner, team=west, priority=priority)
    done = make_ticket(assignee=owner, team=west)
    services.ticket_set_status(ticket=done, user=owner, status=TicketStatus.RESOLVED)

    body = run(manager, "service-backlog")
    hidden = run(outsider, "service-backlog")

    counts = {
        row["key"]: (row["count"], row["low"], row["medium"], row["high"], row["urgent"])
        for row in body["rows"]
    }
    assert counts == {
        "0-1d": (1, 0, 1, 0, 0),
        "1-3d": (1, 0, 0, 1, 0),
        "3-7d": (2, 1, 0, 0, 1),
        "7-30d": (0, 0, 0, 0, 0),
        "30d+": (1, 0, 1, 0, 0),
    }
    assert summary(body) == {"open": 5, "unassigned": 0, "older_than_week": 1}
    # Another team's rep sees none of West's tickets, so none of their figures.
    assert summary(hidden)["open"] == 0


# --- median times -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_median_first_response_and_resolution_times_by_hand(make_ticket, owner, west, manager, at):
    with at(0):
        tickets = [make_ticket(assignee=owner, team=west) for _ in range(3)]
    for ticket, hours in zip(tickets, (1, 3, 5), strict=True):
        with at(hours):
            services.ticket_message_create(ticket=ticket, user=owner, body="Hello")
    for ticket, hours in zip(tickets[:2], (2, 10), strict=True):
        with at(hours):
            services.ticket_set_status(ticket=ticket, user=owner, status=TicketStatus.RESOLVED)

    body = run(manager, "service-times", group_by="agent")

    [row] = body["rows"]
    assert row == {
        "key": str(owner.pk),
        "label": "owner",
        "tickets": 3,
        "responded": 3,
        "median_first_response_hours": 3.0,  # 1, 3, 5
        "resolved": 2,
        "median_resolution_hours": 6.0,  # (2 + 10) / 2
    }
    assert summary(body)["median_first_response_hours"] == 3.0


# --- pages, access, query counts --------------------------------------------------------------------


@pytest.mark.django_db
def test_the_reports_are_listed_and_drawn_in_the_admin(rated, client, manager):
    client.force_login(manager)

    index = client.get("/admin/reports/").content.decode()
    page = client.get("/admin/reports/service-csat/")

    for title in ("Customer satisfaction (CSAT)", "SLA attainment", "Ticket backlog by age"):
        assert title in index
    assert page.status_code == 200 and "<svg" in page.content.decode()
    assert client.get("/admin/reports/service-backlog/", {"export": "csv"}).status_code == 200


@pytest.mark.django_db
def test_a_bad_filter_is_a_400(manager):
    response = api(manager).get(f"{REPORTS}service-sla/", {"group_by": "planet", "date_from": "soon"})

    assert response.status_code == 400
    assert {"group_by", "date_from"} <= set(response.json())


@pytest.mark.django_db
def test_the_service_reports_cost_a_fixed_number_of_queries(
    make_ticket, owner, west, manager, django_assert_max_num_queries
):
    client = api(manager)

    def add(count: int):
        for _ in range(count):
            ticket = make_ticket(contact=ContactFactory(email="c@example.com"), assignee=owner, team=west)
            services.ticket_set_status(ticket=ticket, user=owner, status=TicketStatus.RESOLVED)
            survey_answer(token=survey_token(ticket.survey), rating=4)

    add(2)
    keys = ("service-csat", "service-sla", "service-backlog", "service-times")
    for key in keys:
        client.get(f"{REPORTS}{key}/")
    for size in (3, 12):
        for key in keys:
            with django_assert_max_num_queries(8):
                assert client.get(f"{REPORTS}{key}/").status_code == 200
        add(size)
    assert SatisfactionSurvey.objects.count() == 17
