"""The work queues of tickets (mine, unassigned in my teams, breaching soon) and the board by status:
reads through the ticket visibility rule, at a fixed number of queries."""

import datetime
from dataclasses import dataclass

from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from activities.service.models import DONE_STATUSES, Ticket, TicketStatus
from activities.service.selectors import LIST_RELATED, ticket_visible_to, user_queue_team_ids
from crm.actors import Actor

# "Breaching soon": the next deadline within this much wall-clock time (or already past).
BREACHING_WINDOW = datetime.timedelta(hours=2)
QUEUES = {
    "mine": "My tickets",
    "unassigned": "Unassigned in my teams",
    "breaching": "Breaching soon",
}


def ticket_queue_condition(*, user: Actor, queue: str, now: datetime.datetime | None = None) -> Q:
    """The condition of ``queue`` for ``user`` (open tickets only)."""
    now = now or timezone.now()
    open_tickets = ~Q(status__in=DONE_STATUSES)
    if queue == "mine":
        return open_tickets & Q(assignee=getattr(user, "pk", None))
    if queue == "unassigned":
        return open_tickets & Q(assignee__isnull=True, team__in=user_queue_team_ids(user))
    if queue == "breaching":
        return open_tickets & Q(sla_due_at__lte=now + BREACHING_WINDOW)
    raise ValueError(queue)


def ticket_queue(*, user: Actor, queue: str, now: datetime.datetime | None = None) -> QuerySet[Ticket]:
    """A queue's tickets, the nearest deadline first."""
    tickets = ticket_visible_to(user).filter(ticket_queue_condition(user=user, queue=queue, now=now))
    return tickets.select_related(*LIST_RELATED, "sla_policy").order_by(
        F("sla_due_at").asc(nulls_last=True), "created_at", "pk"
    )


@dataclass
class BoardColumn:
    status: str
    label: str
    count: int
    cards: list[Ticket]


def ticket_board(
    *, user: Actor, queryset: QuerySet[Ticket] | None = None, limit: int = 20
) -> list[BoardColumn]:
    """The tickets by status, each column with its count and its first ``limit`` cards (nearest
    deadline first): two queries whatever the number of tickets."""
    tickets = ticket_visible_to(user) if queryset is None else queryset
    counts = dict(tickets.order_by().values("status").annotate(n=Count("pk")).values_list("status", "n"))
    ranked = (
        tickets.select_related("assignee", "team")
        .annotate(
            board_rank=Window(
                RowNumber(),
                partition_by=[F("status")],
                order_by=[F("sla_due_at").asc(nulls_last=True), F("created_at").asc(), F("pk").asc()],
            )
        )
        .filter(board_rank__lte=limit)
        .order_by("board_rank")
    )
    cards: dict[str, list[Ticket]] = {}
    for ticket in ranked:
        cards.setdefault(ticket.status, []).append(ticket)
    return [
        BoardColumn(status=value, label=label, count=counts.get(value, 0), cards=cards.get(value, []))
        for value, label in TicketStatus.choices
    ]
