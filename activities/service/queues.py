"""The work queues of tickets (mine, unassigned in my teams, breaching soon) and the board by status:
reads through the ticket visibility rule, at a fixed number of queries."""

import datetime
from dataclasses import dataclass

from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from activities.service.models import DONE_STATUSES, OPEN_TICKET, Ticket, TicketStatus
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
    open_tickets = OPEN_TICKET
    if queue == "mine":
        return open_tickets & Q(assignee=getattr(user, "pk", None))
    if queue == "unassigned":
        # The teams read first (a short list): the planner then knows how many tickets they hold, and
        # reads the newest unassigned ones from their partial index instead of sorting them all.
        teams = list(user_queue_team_ids(user).values_list("pk", flat=True))
        return open_tickets & Q(assignee__isnull=True, team__in=teams)
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


# The board's resolved and closed columns hold the tickets done within this many days: the columns of
# work in hand stay whole, and a year's closed tickets would tell nothing there (the list has them).
BOARD_DONE_DAYS = 30


def ticket_board(
    *,
    user: Actor,
    queryset: QuerySet[Ticket] | None = None,
    limit: int = 20,
    now: datetime.datetime | None = None,
) -> list[BoardColumn]:
    """The tickets by status, each column with its count and its first ``limit`` cards: the open
    columns nearest deadline first, the done ones (done within BOARD_DONE_DAYS) latest first. A query
    for the counts and one per column, each read from a partial index of its status, whatever the
    number of tickets."""
    now = now or timezone.now()
    tickets = ticket_visible_to(user) if queryset is None else queryset
    done_since = Q(status__in=DONE_STATUSES, resolved_at__gte=now - datetime.timedelta(days=BOARD_DONE_DAYS))

    # Counted in two halves, each through its partial index (which holds the assignee and the queue the
    # visibility rule reads): the open tickets, and those done lately. One condition "open or done
    # lately" would read every ticket of the table instead (a parallel scan of 1,000,000: 300 ms).
    # COUNT(*), not of the id: the index holds no id, and counting one would read each row's heap.
    def by_status(half: Q):
        return (
            tickets.filter(half).order_by().values("status").annotate(n=Count("*")).values_list("status", "n")
        )

    counts: dict[str, int] = {}
    for status, n in by_status(OPEN_TICKET).union(by_status(done_since), all=True):
        counts[status] = counts.get(status, 0) + n
    columns = []
    for value, label in TicketStatus.choices:
        if value in DONE_STATUSES:
            cards = tickets.filter(done_since, status=value).order_by(F("resolved_at").desc(), "-pk")
            label = f"{label} (last {BOARD_DONE_DAYS} days)"
        else:
            cards = tickets.filter(OPEN_TICKET, status=value).order_by(
                F("sla_due_at").asc(nulls_last=True), "created_at", "pk"
            )
        count = counts.get(value, 0)
        # An empty column costs no query (my tickets have no done ones when the queue is open tickets).
        shown = list(cards.select_related("assignee", "team")[:limit]) if count else []
        columns.append(BoardColumn(status=value, label=label, count=count, cards=shown))
    return columns
