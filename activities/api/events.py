"""The activities' domain events, registered into crm's event engine."""

from collections.abc import Mapping
from typing import Any

from activities import selectors
from activities.api.serializers import ActivitySerializer
from activities.models import Activity, ActivityStatus, Ticket, TicketStatus
from crm.events import api_representation, register_source, transition_classifier

# A ticket's status change is one event, named for where it went when that is a milestone.
TICKET_STATUS_EVENTS = {TicketStatus.RESOLVED: "resolved", TicketStatus.CLOSED: "closed"}


def ticket_event_kind(before: Mapping[str, Any], ticket: Ticket) -> str:
    """``resolved`` or ``closed`` on entering those, ``reopened`` on leaving them, ``status_changed``
    for any other new status, else ``updated``."""
    old, new = before.get("status"), ticket.status
    if old == new:
        return "updated"
    if new in TICKET_STATUS_EVENTS:
        return TICKET_STATUS_EVENTS[new]
    if old in TICKET_STATUS_EVENTS:
        return "reopened"
    return "status_changed"


def register() -> None:
    from activities.service import selectors as ticket_selectors
    from activities.service.api import TicketSerializer

    register_source(
        Activity,
        name="activity",
        serialize=api_representation(selectors.activity_list, ActivitySerializer),
        types=("created", "updated", "completed", "deleted"),
        classify=transition_classifier(statuses={ActivityStatus.COMPLETED: "completed"}),
    )
    register_source(
        Ticket,
        name="ticket",
        serialize=api_representation(ticket_selectors.ticket_list, TicketSerializer),
        types=("created", "updated", "status_changed", "resolved", "closed", "reopened", "deleted"),
        classify=ticket_event_kind,
    )
