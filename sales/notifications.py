"""The notifications about opportunities: assigned to me, a stage change on mine, and a deal won or
lost in my team (told to the team's manager). Registered with crm's event engine from SalesConfig.ready."""

from django.contrib.auth import get_user_model

from crm.events import register_consumer
from crm.models import NotificationKind, OutboxEvent
from crm.notifications.consumers import admin_change_url, record_notifier, record_title
from crm.notifications.services import notify

opportunity_url = admin_change_url("admin:sales_opportunity_change")


def team_managers(owner_id: int) -> list:
    """The active managers of the active teams ``owner_id`` is a member of."""
    return list(
        get_user_model()
        .objects.filter(
            is_active=True,
            managed_teams__is_active=True,
            managed_teams__members__pk=owner_id,
        )
        .distinct()
    )


def deal_closed_notify(event: OutboxEvent) -> None:
    """``opportunity.won`` / ``.lost``: the owner's team managers are told (not the one who closed it)."""
    payload = event.payload
    record = payload.get("record") or {}
    owner_id = record.get("owner_id")
    if not owner_id:
        return
    outcome = "won" if event.type.endswith(".won") else "lost"
    actor = payload.get("actor") or {}
    title = record_title(record, "deal")
    amount = record.get("amount")
    for manager in team_managers(owner_id):
        if manager.pk == actor.get("id"):
            continue
        notify(
            recipient=manager,
            kind=NotificationKind.TEAM_DEAL_CLOSED,
            event_id=str(event.event_id),
            title=f"Deal {outcome}: {title}",
            body=f"{record.get('owner_username') or 'Your team'} {outcome} the deal “{title}”"
            + (f" ({amount})." if amount is not None else "."),
            url=opportunity_url(event.record_id) if event.record_id else "",
            record_type="opportunity",
            record_id=event.record_id,
        )


def register() -> None:
    register_consumer(
        "opportunity.*",
        record_notifier(record_type="opportunity", noun="deal", url=opportunity_url),
        name="notifications.opportunity",
        batch=True,
    )
    register_consumer("opportunity.won", deal_closed_notify, name="notifications.opportunity.won")
    register_consumer("opportunity.lost", deal_closed_notify, name="notifications.opportunity.lost")
