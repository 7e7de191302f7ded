"""Issue 20 item 1: tickets numbered without gaps, their thread of replies and notes with files, the
first-response and resolution times, and who sees which ticket."""

import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.urls import reverse

from activities.models import Attachment, Ticket, TicketMessage, TicketStatus
from activities.service import services
from activities.service.selectors import ticket_visible_to
from crm.actors import SYSTEM
from crm.models import Notification, NotificationKind
from tests.factories import AccountFactory, ContactFactory

TICKETS = "/api/v1/crm/tickets/"


# --- numbering ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_tickets_are_numbered_in_order_and_a_rolled_back_ticket_gives_its_number_back(make_ticket):
    first = make_ticket()
    with pytest.raises(RuntimeError), transaction.atomic():
        make_ticket(subject="rolled back")
        raise RuntimeError
    second = make_ticket()
    assert (first.number, second.number) == ("T-000001", "T-000002")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one writer at a time anyway")
def test_concurrent_creations_on_postgresql_get_distinct_numbers_without_gaps():
    numbers, barrier = [], threading.Barrier(6)

    def create():
        try:
            barrier.wait()
            for _ in range(5):
                numbers.append(services.ticket_create(user=SYSTEM, data={"subject": "race"}).number)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(numbers) == [f"T-{n:06d}" for n in range(1, 31)]


# --- thread, first response, resolution -------------------------------------------------------------


@pytest.mark.django_db
def test_the_first_public_reply_is_the_first_response_and_opens_the_ticket(make_ticket, owner):
    ticket = make_ticket(assignee=owner)
    assert ticket.status == TicketStatus.NEW and ticket.first_response_at is None

    services.ticket_message_create(ticket=ticket, user=owner, body="Looking", kind="note")
    ticket.refresh_from_db()
    assert ticket.first_response_at is None and ticket.status == TicketStatus.NEW

    services.ticket_message_create(ticket=ticket, user=owner, body="We are on it")
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN and ticket.first_response_at is not None
    first = ticket.first_response_at
    services.ticket_message_create(ticket=ticket, user=owner, body="Again")
    ticket.refresh_from_db()
    assert ticket.first_response_at == first
    assert list(ticket.messages.values_list("kind", "author__username")) == [
        ("note", "owner"),
        ("reply", "owner"),
        ("reply", "owner"),
    ]


@pytest.mark.django_db
def test_resolving_stamps_the_time_and_a_customer_reply_reopens_it(make_ticket, owner):
    ticket = make_ticket(assignee=owner)
    ticket = services.ticket_set_status(ticket=ticket, user=owner, status=TicketStatus.RESOLVED)
    assert ticket.resolved_at is not None

    services.ticket_message_create(
        ticket=ticket, user=SYSTEM, body="Still broken", from_customer=True, sender_email="c@example.com"
    )
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN and ticket.resolved_at is None


@pytest.mark.django_db
def test_a_closed_ticket_refuses_replies_and_changes(make_ticket, owner):
    ticket = make_ticket(assignee=owner)
    ticket = services.ticket_set_status(ticket=ticket, user=owner, status=TicketStatus.CLOSED)
    assert ticket.closed_at is not None and ticket.resolved_at is not None

    with pytest.raises(ValidationError) as refused:
        services.ticket_message_create(ticket=ticket, user=owner, body="hello")
    assert refused.value.code == "closed"
    with pytest.raises(ValidationError):
        services.ticket_set_status(ticket=ticket, user=owner, status=TicketStatus.OPEN)
    assert not TicketMessage.objects.exists()


@pytest.mark.django_db
def test_a_customer_cannot_write_an_internal_note(make_ticket):
    ticket = make_ticket()
    with pytest.raises(ValidationError):
        services.ticket_message_create(ticket=ticket, user=SYSTEM, body="x", kind="note", from_customer=True)


@pytest.mark.django_db
def test_a_contact_brings_its_account_and_the_assignee_is_notified(make_ticket, owner, manager):
    contact = ContactFactory(account=AccountFactory(name="Acme"))
    ticket = services.ticket_create(
        user=manager, data={"subject": "Help", "contact": contact, "assignee": owner}
    )
    assert ticket.account == contact.account
    notification = Notification.objects.get(recipient=owner)
    assert notification.kind == NotificationKind.ASSIGNED and ticket.number in notification.title


# --- who sees which ticket ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_visibility_follows_assignee_queue_managers_and_crm_admin(make_ticket, personas):
    users, west, east = personas.users, personas.teams["West"], personas.teams["East"]
    assigned = make_ticket(subject="assigned to owner", assignee=users["owner"])
    queued_west = make_ticket(subject="west queue", team=west)
    queued_east = make_ticket(subject="east queue", team=east)
    unrouted = make_ticket(subject="unrouted")

    def seen(persona):
        return set(ticket_visible_to(users[persona]).values_list("subject", flat=True))

    assert seen("owner") == {assigned.subject, queued_west.subject, unrouted.subject}
    assert seen("teammate") == {queued_west.subject, unrouted.subject}
    assert seen("manager") == {assigned.subject, queued_west.subject, unrouted.subject}
    assert seen("outsider") == {queued_east.subject, unrouted.subject}
    assert seen("crm_admin") == {assigned.subject, queued_west.subject, queued_east.subject, unrouted.subject}


@pytest.mark.django_db
def test_another_team_can_neither_change_nor_reply_nor_assign_to_itself(make_ticket, personas):
    users = personas.users
    ticket = make_ticket(assignee=users["owner"])
    with pytest.raises(PermissionDenied):
        services.ticket_update(ticket=ticket, user=users["outsider"], data={"subject": "mine"})
    with pytest.raises(PermissionDenied):
        services.ticket_message_create(ticket=ticket, user=users["outsider"], body="hi")
    with pytest.raises(ValidationError) as refused:
        services.ticket_create(user=users["owner"], data={"subject": "x", "assignee": users["outsider"]})
    assert "assignee" in refused.value.message_dict


# --- the API ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_creates_lists_and_updates_a_ticket(api_as, people):
    api = api_as("owner")
    west = people.teams["West"]
    response = api.post(
        TICKETS,
        {"subject": "Cannot log in", "priority": "high", "channel": "phone", "team_id": west.pk},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"] == "T-000001" and body["status"] == "new" and body["team_name"] == "West"

    assert api.get(TICKETS).json()["count"] == 1
    assert api_as("outsider").get(f"{TICKETS}{body['id']}/").status_code == 404

    response = api.patch(f"{TICKETS}{body['id']}/", {"status": "resolved"}, format="json")
    assert response.status_code == 200 and response.json()["resolved_at"] is not None
    assert Ticket.objects.get().status == "resolved"


@pytest.mark.django_db
def test_api_refuses_bad_input_field_by_field(api_as, people):
    response = api_as("owner").post(
        TICKETS,
        {"subject": "", "priority": "extreme", "assignee_id": people.users["outsider"].pk},
        format="json",
    )
    assert response.status_code == 400
    assert {"subject", "priority"} <= set(response.json())
    response = api_as("owner").post(
        TICKETS, {"subject": "x", "assignee_id": people.users["outsider"].pk}, format="json"
    )
    assert response.status_code == 400 and "assignee_id" in response.json()
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_api_thread_reply_with_a_file_and_a_note_then_closed_is_409(api_as, people, media):
    api = api_as("owner")
    ticket = services.ticket_create(
        user=people.users["owner"], data={"subject": "Crash", "assignee": people.users["owner"]}
    )
    url = f"{TICKETS}{ticket.pk}/messages/"
    response = api.post(
        url,
        {
            "body": "Here is the log",
            "kind": "reply",
            "file": [SimpleUploadedFile("log.txt", b"boom", "text/plain")],
        },
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["files"][0]["name"] == "log.txt"
    assert api.post(url, {"body": "Customer is grumpy", "kind": "note"}, format="json").status_code == 201
    thread = api.get(url).json()
    assert [(m["kind"], m["body"]) for m in thread] == [
        ("reply", "Here is the log"),
        ("note", "Customer is grumpy"),
    ]
    assert Attachment.objects.get().record_type == "ticket_message"

    assert api_as("outsider").get(url).status_code == 404
    assert api.post(url, {"body": ""}, format="json").status_code == 400

    services.ticket_set_status(ticket=ticket, user=people.users["owner"], status="closed")
    response = api.post(url, {"body": "too late"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "closed"
    assert TicketMessage.objects.count() == 2


@pytest.mark.django_db
def test_api_ticket_list_costs_a_fixed_number_of_queries(
    api_as, people, make_ticket, django_assert_max_num_queries
):
    api = api_as("manager")
    for size in (2, 10):
        for index in range(size):
            ticket = make_ticket(
                subject=f"t{index}", assignee=people.users["owner"], team=people.teams["West"]
            )
            ticket.tags.add(*[])
        api.get(TICKETS)
        with django_assert_max_num_queries(7):
            assert api.get(TICKETS).status_code == 200


# --- the admin ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_ticket_page_shows_the_thread_and_replies_through_the_service(admin_as, people, media):
    owner = people.users["owner"]
    ticket = services.ticket_create(user=owner, data={"subject": "Broken", "assignee": owner})
    client = admin_as("owner")
    page = client.get(reverse("admin:activities_ticket_change", args=[ticket.pk]))
    assert page.status_code == 200 and b"Send reply" in page.content

    response = client.post(
        reverse("admin:activities_ticket_reply", args=[ticket.pk]), {"body": "Fixed it", "kind": "reply"}
    )
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.first_response_at is not None
    page = client.get(reverse("admin:activities_ticket_change", args=[ticket.pk]))
    assert b"Fixed it" in page.content

    outsider = admin_as("outsider")
    response = outsider.post(reverse("admin:activities_ticket_reply", args=[ticket.pk]), {"body": "x"})
    assert response.status_code == 404
    assert TicketMessage.objects.count() == 1


@pytest.mark.django_db
def test_admin_changelist_costs_a_fixed_number_of_queries(
    admin_as, people, make_ticket, django_assert_max_num_queries
):
    client = admin_as("manager")
    url = reverse("admin:activities_ticket_changelist")
    for size in (2, 10):
        for index in range(size):
            make_ticket(subject=f"t{index}", assignee=people.users["owner"], team=people.teams["West"])
        client.get(url)
        with django_assert_max_num_queries(21):  # 17, and the saved views' picker
            assert client.get(url).status_code == 200
