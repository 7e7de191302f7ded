"""Issue 20: a ticket's audit trail (django-simple-history, written by the services) and its domain
events in the outbox (ticket.created, updated, status_changed, resolved, closed, reopened, deleted),
which webhooks subscribe to; a privacy erasure clears the ticket's history and events too."""

import json

import pytest
from django.db import connection
from rest_framework.test import APIClient

from activities.models import Ticket, TicketStatus
from activities.service.services import ticket_create, ticket_message_create, ticket_set_status, ticket_update
from crm.events.registry import event_types
from crm.events.relay import outbox_relay
from crm.models import DeliveryStatus, OutboxEvent, Priority
from crm.privacy import services as privacy
from crm.services import contact_create
from crm.webhooks import services as webhook_services
from crm.webhooks.delivery import webhook_deliver

pytestmark = pytest.mark.django_db

EMAIL = "Ottilie.Vanderbrook@example.test"
NAME = "Ottilie Vanderbrook"


def ticket_events(ticket: Ticket) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(record_type="ticket", record_id=ticket.pk).order_by("id"))


# --- history ------------------------------------------------------------------------------------------


def test_a_new_ticket_has_one_first_version_as_it_was_created(owner):
    ticket = ticket_create(user=owner, data={"subject": "Printer on fire", "status": TicketStatus.RESOLVED})

    (version,) = ticket.history.all()
    # One version although the service saves twice (numbered, then its clock and status set).
    assert version.history_type == "+"
    assert (version.number, version.subject, version.status) == (ticket.number, "Printer on fire", "resolved")
    assert version.resolved_at == ticket.resolved_at is not None


def test_each_change_through_the_services_adds_a_version_with_who_and_what(owner, make_ticket):
    ticket = make_ticket()

    ticket_update(ticket=ticket, user=owner, data={"priority": Priority.URGENT, "assignee": owner})
    ticket_set_status(ticket=ticket, user=owner, status=TicketStatus.PENDING_CUSTOMER)

    versions = list(ticket.history.order_by("history_date", "history_id"))
    assert [v.history_type for v in versions] == ["+", "~", "~"]
    assert [(v.priority, v.status, v.assignee_id) for v in versions] == [
        ("medium", "new", None),
        ("urgent", "new", owner.pk),
        ("urgent", "pending_customer", owner.pk),
    ]
    # The running clock is derived: the trail leaves it out.
    assert not hasattr(versions[-1], "sla_paused_at")


def test_a_change_through_the_api_names_its_author_in_the_history(owner, make_ticket):
    ticket = make_ticket(assignee=owner)
    client = APIClient()
    client.force_authenticate(owner)

    response = client.patch(f"/api/v1/crm/tickets/{ticket.pk}/", {"priority": "high"}, format="json")

    assert response.status_code == 200, response.content
    latest = ticket.history.order_by("-history_date", "-history_id").first()
    assert (latest.priority, latest.history_user_id) == ("high", owner.pk)
    history = client.get(f"/api/v1/crm/tickets/{ticket.pk}/history/")
    assert history.status_code == 200
    newest = history.json()["results"][0]
    assert (newest["type"], newest["user_id"]) == ("changed", owner.pk)
    assert {"field": "priority", "old": "medium", "new": "high"} in newest["changes"]


def test_the_ticket_admin_shows_its_history(client, crm_admin, make_ticket):
    ticket = make_ticket()
    ticket_update(ticket=ticket, user=crm_admin, data={"subject": "Printer still on fire"})
    client.force_login(crm_admin)

    response = client.get(f"/admin/activities/ticket/{ticket.pk}/history/")

    assert response.status_code == 200
    assert "Printer still on fire" in response.content.decode()


# --- events -------------------------------------------------------------------------------------------


def test_ticket_event_types_are_published_for_subscribers():
    types = set(event_types())

    assert {
        "ticket.created",
        "ticket.updated",
        "ticket.status_changed",
        "ticket.resolved",
        "ticket.closed",
        "ticket.reopened",
        "ticket.deleted",
    } <= types


def test_each_write_of_a_ticket_puts_one_event_in_the_outbox(owner, make_ticket):
    ticket = make_ticket()
    (created,) = ticket_events(ticket)
    assert created.type == "ticket.created"
    assert created.payload["record"]["number"] == ticket.number
    assert created.payload["record"]["status"] == "new"

    ticket_update(ticket=ticket, user=owner, data={"priority": Priority.HIGH})
    ticket_set_status(ticket=ticket, user=owner, status=TicketStatus.ON_HOLD)
    ticket_set_status(ticket=ticket, user=owner, status=TicketStatus.RESOLVED)
    ticket_message_create(ticket=ticket, user=owner, body="Still broken", from_customer=True)
    ticket_set_status(ticket=ticket, user=owner, status=TicketStatus.CLOSED)

    events = ticket_events(ticket)
    assert [event.type for event in events] == [
        "ticket.created",
        "ticket.updated",
        "ticket.status_changed",
        "ticket.resolved",
        "ticket.reopened",
        "ticket.closed",
    ]
    assert events[1].payload["changes"]["priority"] == {"old": "medium", "new": "high"}
    assert events[3].payload["changes"]["status"] == {"old": "on_hold", "new": "resolved"}
    assert events[3].payload["actor"]["id"] == owner.pk


def test_a_deleted_ticket_publishes_ticket_deleted(crm_admin, make_ticket):
    ticket = make_ticket()
    client = APIClient()
    client.force_authenticate(crm_admin)

    response = client.delete(f"/api/v1/crm/tickets/{ticket.pk}/")

    assert response.status_code == 204, response.content
    assert [event.type for event in ticket_events(ticket)] == ["ticket.created", "ticket.deleted"]


def test_a_webhook_subscribed_to_resolved_tickets_receives_them_only(
    admin_user, owner, make_ticket, receiver, webhook_settings
):
    subscription = webhook_services.webhook_subscription_create(
        user=admin_user, data={"target_url": receiver.url("/ok"), "event_types": ["ticket.resolved"]}
    )
    ticket = make_ticket()
    ticket_update(ticket=ticket, user=owner, data={"priority": Priority.LOW})
    ticket_set_status(ticket=ticket, user=owner, status=TicketStatus.RESOLVED)
    outbox_relay()

    (delivery,) = subscription.deliveries.all()
    assert webhook_deliver(delivery.pk) == DeliveryStatus.SUCCEEDED
    (request,) = receiver.requests
    body = json.loads(request.body)
    assert (body["type"], body["record"]["id"], body["record"]["status"]) == (
        "ticket.resolved",
        ticket.pk,
        "resolved",
    )


# --- erasure ------------------------------------------------------------------------------------------


def test_an_erasure_clears_the_tickets_history_and_events(admin_user, owner):
    contact = contact_create(
        user=admin_user, data={"first_name": "Ottilie", "last_name": "Vanderbrook", "email": EMAIL}
    )
    ticket = ticket_create(
        user=owner,
        data={"subject": f"{NAME} cannot print", "requester_email": EMAIL, "contact": contact},
    )
    ticket_update(ticket=ticket, user=owner, data={"description": f"Call {NAME} back at {EMAIL}"})
    assert ticket.history.count() == 2 and len(ticket_events(ticket)) == 2

    done = privacy.privacy_erase(user=admin_user, email=EMAIL)

    assert set(done.records["tickets"]) == {ticket.pk}
    assert set(done.records["ticket_events"]) == {e.pk for e in ticket_events(ticket)}
    history_table = Ticket.history.model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT subject, description, requester_email FROM {history_table} WHERE id = %s", [ticket.pk]
        )
        rows = cursor.fetchall()
    assert len(rows) >= 2
    for row in rows:
        text = " ".join(row)
        assert "Vanderbrook" not in text and EMAIL.lower() not in text.lower()
    for event in ticket_events(ticket):
        assert "Vanderbrook" not in json.dumps(event.payload)
