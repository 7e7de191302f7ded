"""Reads of tickets that carry rules: who sees which ticket, the lists and the thread."""

from django.contrib.auth import get_user_model
from django.db.models import Exists, Q, QuerySet

from activities.service.models import SlaPolicy, Ticket, TicketMessage, WorkingCalendar
from crm.actors import Actor
from crm.filters import filter_queryset
from crm.models import SalesTeam
from crm.selectors import Filters, register_record_access, user_managed_ids, user_sees_everything
from crm.selectors.visibility import CRM_ADMIN_GROUP

# A ticket is seen and worked by its assignee, the members and manager of its queue (team), the
# managers of the assignee's teams, and CRM Admins. One with neither assignee nor queue has not been
# routed yet: every agent sees it, to triage it (like an unowned lead).


def _crm_admin(user: Actor) -> Exists:
    return Exists(get_user_model().groups.through.objects.filter(user=user.pk, group__name=CRM_ADMIN_GROUP))


def user_queue_team_ids(user: Actor) -> QuerySet:
    """The active teams ``user`` is a member or the manager of (a subquery of ids)."""
    return SalesTeam.objects.filter(Q(manager=user) | Q(members=user), is_active=True).values("pk")


def ticket_visible_to(user: Actor) -> QuerySet[Ticket]:
    tickets = Ticket.objects.all()
    if not user.is_authenticated or not user.is_active:
        return tickets.none()
    if user.is_superuser:
        return tickets
    return tickets.filter(
        Q(assignee__isnull=True, team__isnull=True)
        | Q(assignee__in=user_managed_ids(user))
        | Q(team__in=user_queue_team_ids(user))
        | Q(_crm_admin(user))
    )


def ticket_message_visible_to(user: Actor) -> QuerySet[TicketMessage]:
    return TicketMessage.objects.filter(ticket__in=ticket_visible_to(user).values("pk"))


register_record_access(Ticket, visible_to=ticket_visible_to)
register_record_access(TicketMessage, visible_to=ticket_message_visible_to)

LIST_RELATED = ("assignee", "team", "account", "contact")


def ticket_list(*, user: Actor, filters: Filters = None) -> QuerySet[Ticket]:
    from activities.service.filters import TicketFilter

    queryset = ticket_visible_to(user).select_related(*LIST_RELATED, "sla_policy").prefetch_related("tags")
    return filter_queryset(TicketFilter, queryset, filters)


def ticket_messages(*, user: Actor, ticket: Ticket) -> QuerySet[TicketMessage]:
    """The thread of ``ticket`` (one ``user`` sees), oldest first, authors joined."""
    return (
        ticket_message_visible_to(user)
        .filter(ticket=ticket)
        .select_related("author")
        .order_by("created_at", "pk")
    )


def ticket_assignable_to(*, user: Actor, team: SalesTeam | None) -> QuerySet:
    """Who ``user`` may assign a ticket of ``team`` to: anyone for a CRM Admin; else themselves, the
    members of the teams they manage, and the members and manager of the ticket's queue."""
    UserModel = get_user_model()
    if user_sees_everything(user) or getattr(user, "is_system", False):
        return UserModel.objects.filter(is_active=True)
    condition = Q(pk__in=user_managed_ids(user))
    if team is not None:
        condition |= Q(sales_teams=team) | Q(managed_teams=team)
    return UserModel.objects.filter(condition, is_active=True).distinct()


def ticket_message_files(messages) -> dict[int, list]:
    """The files of each of ``messages`` (its id → files, oldest first): one query for a thread."""
    from activities.models import Attachment

    files: dict[int, list] = {}
    ids = [message.pk for message in messages]
    for attachment in Attachment.objects.filter(record_type="ticket_message", record_id__in=ids).order_by(
        "pk"
    ):
        files.setdefault(attachment.record_id, []).append(attachment)
    return files


def working_calendar_list(*, user: Actor, filters: Filters = None) -> QuerySet[WorkingCalendar]:
    """Configuration every signed-in user reads (the SLA of their tickets depends on it)."""
    if not user.is_authenticated or not user.is_active:
        return WorkingCalendar.objects.none()
    return WorkingCalendar.objects.prefetch_related("hours", "holidays").order_by("name")


def sla_policy_list(*, user: Actor, filters: Filters = None) -> QuerySet[SlaPolicy]:
    if not user.is_authenticated or not user.is_active:
        return SlaPolicy.objects.none()
    return SlaPolicy.objects.order_by("name")
