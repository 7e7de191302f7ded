"""Issue 20 item 3: the work queues (mine, unassigned in my teams, breaching soon), the board by
status, and merging duplicate tickets, in the admin and the API, at fixed query counts."""

import datetime

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from activities.models import Ticket, TicketMessage, TicketStatus
from activities.service import services
from crm.actors import SYSTEM

TICKETS = "/api/v1/crm/tickets/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def queue_world(personas, make_ticket):
    owner, west = personas.users["owner"], personas.teams["West"]
    services.sla_policy_create(
        user=SYSTEM, data={"name": "Fast", "priority": "urgent", "resolution_minutes": 60}
    )
    return {
        "mine": make_ticket(subject="mine", assignee=owner, team=west),
        "unassigned": make_ticket(subject="west unassigned", team=west),
        "breaching": make_ticket(
            subject="urgent teammate", assignee=personas.users["teammate"], priority="urgent"
        ),
        "east": make_ticket(subject="east unassigned", team=personas.teams["East"]),
        "done": make_ticket(subject="mine done", assignee=owner, status=TicketStatus.RESOLVED),
    }


def test_admin_queues_list_what_they_say(admin_as, queue_world):
    client = admin_as("manager")
    url = reverse("admin:activities_ticket_changelist")

    def listed(queue):
        page = client.get(url, {"queue": queue}).content.decode()
        return {name for name, ticket in queue_world.items() if f">{ticket.number}<" in page}

    assert listed("unassigned") == {"unassigned"}
    assert listed("breaching") == {"breaching"}
    client = admin_as("owner")
    page = client.get(url, {"queue": "mine"}).content.decode()
    assert queue_world["mine"].number in page and queue_world["done"].number not in page


def test_api_queue_filter(api_as, queue_world):
    numbers = {t["subject"] for t in api_as("owner").get(TICKETS, {"queue": "mine"}).json()["results"]}
    assert numbers == {"mine"}
    numbers = {
        t["subject"] for t in api_as("outsider").get(TICKETS, {"queue": "unassigned"}).json()["results"]
    }
    assert numbers == {"east unassigned"}
    assert api_as("owner").get(TICKETS, {"queue": "nonsense"}).status_code == 400


def test_board_by_status_counts_and_costs_a_fixed_number_of_queries(
    admin_as, personas, make_ticket, django_assert_max_num_queries
):
    client = admin_as("manager")
    url = reverse("admin:activities_ticket_board")
    for size in (2, 12):
        for index in range(size):
            make_ticket(subject=f"t{index}", assignee=personas.users["owner"], status=TicketStatus.OPEN)
        client.get(url)
        # The page (15), the counts by status, and a query per status column (6).
        with django_assert_max_num_queries(22):
            page = client.get(url)
        assert page.status_code == 200
    assert b'Open <span class="help">(14)</span>' in page.content
    assert client.get(url, {"queue": "breaching"}).status_code == 200


def test_merge_through_the_api_moves_the_thread_and_closes_the_duplicate(api_as, personas, make_ticket):
    owner = personas.users["owner"]
    first = make_ticket(subject="Printer jammed", assignee=owner)
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=5)):
        second = make_ticket(subject="Printer still jammed", assignee=owner)
        services.ticket_message_create(ticket=second, user=owner, body="Try turning it off")
    response = api_as("owner").post(f"{TICKETS}merge/", {"ids": [second.pk, first.pk]}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["id"] == first.pk and response.json()["first_response_at"] is not None
    second.refresh_from_db()
    assert second.status == TicketStatus.CLOSED and second.merged_into == first
    assert list(first.messages.order_by("pk").values_list("body", flat=True)) == [
        "Try turning it off",
        f"{second.number} “Printer still jammed” was merged into this ticket.",
    ]
    assert list(second.messages.values_list("body", flat=True)) == [f"Merged into {first.number}."]


def test_merge_refuses_another_teams_ticket_and_a_closed_survivor(api_as, personas, make_ticket):
    own = make_ticket(assignee=personas.users["owner"])
    theirs = make_ticket(assignee=personas.users["outsider"])
    response = api_as("owner").post(f"{TICKETS}merge/", {"ids": [own.pk, theirs.pk]}, format="json")
    assert response.status_code == 400 and "ids" in response.json()
    closed = make_ticket(assignee=personas.users["owner"], status=TicketStatus.CLOSED)
    response = api_as("owner").post(
        f"{TICKETS}merge/", {"ids": [own.pk, closed.pk], "survivor_id": closed.pk}, format="json"
    )
    assert response.status_code == 409
    assert not Ticket.objects.filter(merged_into__isnull=False).exists()
    assert not TicketMessage.objects.exists()


def test_admin_merge_action(admin_as, personas, make_ticket):
    owner = personas.users["owner"]
    first, second = make_ticket(assignee=owner), make_ticket(assignee=owner)
    response = admin_as("owner").post(
        reverse("admin:activities_ticket_changelist"),
        {"action": "merge_selected", "_selected_action": [first.pk, second.pk]},
    )
    assert response.status_code == 302
    second.refresh_from_db()
    assert second.merged_into == first and second.status == TicketStatus.CLOSED


def test_board_done_columns_hold_the_last_30_days_and_empty_columns_cost_no_query(
    admin_as, personas, make_ticket
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from activities.service.queues import ticket_board

    owner = personas.users["owner"]
    make_ticket(subject="open", assignee=owner, status=TicketStatus.OPEN)
    recent = make_ticket(subject="resolved lately", assignee=owner, status=TicketStatus.RESOLVED)
    old = make_ticket(subject="resolved long ago", assignee=owner, status=TicketStatus.RESOLVED)
    Ticket.objects.filter(pk=old.pk).update(resolved_at=timezone.now() - datetime.timedelta(days=45))
    Ticket.objects.filter(pk=recent.pk).update(resolved_at=timezone.now() - datetime.timedelta(days=2))

    columns = {column.status: column for column in ticket_board(user=owner)}
    assert (columns["resolved"].count, [t.pk for t in columns["resolved"].cards]) == (1, [recent.pk])
    assert (columns["open"].count, columns["closed"].count) == (1, 0)

    # "My tickets" are open ones: their done columns are empty, and only the non-empty columns are read.
    with CaptureQueriesContext(connection) as queries:
        columns = ticket_board(
            user=owner, queryset=Ticket.objects.filter(assignee=owner, status=TicketStatus.OPEN)
        )
    assert [c.status for c in columns if c.count] == ["open"]
    assert len(queries) == 2  # the counts, and the one column with cards
