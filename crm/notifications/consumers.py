"""Consumers of domain events that notify people: a record assigned to someone, a stage change on it.

``record_notifier`` serves every app whose records have an owner (and maybe a stage): crm registers
it for leads, sales for opportunities, activities for activities, each from its AppConfig.ready.
"""

from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch, reverse

from crm.events import register_consumer
from crm.models import NotificationKind, OutboxEvent
from crm.notifications.services import notify


def admin_change_url(url_name: str) -> Callable[[int], str]:
    """``pk → path`` of the record's admin change page (``admin:crm_lead_change``)."""

    def url(pk: int) -> str:
        try:
            return reverse(url_name, args=[pk])
        except NoReverseMatch:
            return ""

    return url


def record_title(record: dict, noun: str) -> str:
    return record.get("name") or record.get("subject") or f"{noun} #{record.get('id')}"


def _user(pk):
    if pk is None:
        return None
    return get_user_model().objects.filter(pk=pk, is_active=True).first()


def record_notifier(
    *,
    record_type: str,
    noun: str,
    url: Callable[[int], str],
    parent_owners: Callable[[list[dict]], list[int | None]] | None = None,
) -> Callable[[list[OutboxEvent]], None]:
    """A batch consumer of ``<record_type>.*`` (register it with ``batch=True``): tells the new owner
    of a record assigned to them (by someone else), and the owner of a record whose stage someone
    else changed.

    ``parent_owners(records)``, for records logged on another (activities), gives the owner of that
    one for each record, in one query per kind of parent for the relay's whole batch: what the system
    (a sequence, an automation, a campaign) logs for the owner of the record it is on is the owner's
    own work, not an assignment, and notifies no one."""

    def assigns(event: OutboxEvent) -> bool:
        return event.type.endswith(".created") or "owner_id" in (event.payload.get("changes") or {})

    def consume(events: list[OutboxEvent]) -> None:
        # The system's assignments of owned records: only there does the parent's owner matter.
        asked = [
            event
            for event in events
            if not event.type.endswith(".deleted")
            and assigns(event)
            and event.payload.get("actor", {}).get("id") is None
            and (event.payload.get("record") or {}).get("owner_id") is not None
        ]
        parents: dict[int, int | None] = {}
        if asked and parent_owners is not None:
            owners = parent_owners([event.payload["record"] for event in asked])
            parents = {event.pk: owner for event, owner in zip(asked, owners, strict=True)}
        for event in events:
            _consume_one(event, parents)

    def _consume_one(event: OutboxEvent, parents: dict[int, int | None]) -> None:
        payload = event.payload
        record = payload.get("record") or {}
        if event.type.endswith(".deleted") or not record:
            return
        actor_id = payload.get("actor", {}).get("id")
        changes = payload.get("changes") or {}
        title = record_title(record, noun)
        link = url(event.record_id) if event.record_id else ""
        owner_id = record.get("owner_id")
        common = {
            "event_id": str(event.event_id),
            "url": link,
            "record_type": record_type,
            "record_id": event.record_id,
        }
        assigned = assigns(event)
        if assigned and event.pk in parents and parents[event.pk] == owner_id:
            assigned = False
        if assigned and owner_id and owner_id != actor_id:
            who = payload.get("actor", {}).get("username", "someone")
            notify(
                recipient=_user(owner_id),
                kind=NotificationKind.ASSIGNED,
                title=f"{noun.capitalize()} assigned to you: {title}",
                body=f"{who} assigned the {noun} “{title}” to you.",
                **common,
            )
        if (
            "stage_id" in changes
            and owner_id
            and owner_id != actor_id
            and not event.type.endswith(".created")
        ):
            who = payload.get("actor", {}).get("username", "someone")
            stage = record.get("stage_name") or record.get("stage_id")
            notify(
                recipient=_user(owner_id),
                kind=NotificationKind.STAGE_CHANGED,
                title=f"{title} moved to {stage}",
                body=f"{who} moved your {noun} “{title}” to the stage {stage}.",
                **common,
            )

    return consume


def webhook_disabled(event: OutboxEvent) -> None:
    """Tell a subscription's owner that it was disabled after failing N times in a row, and why."""
    record = event.payload.get("record") or {}
    notify(
        recipient=_user(record.get("owner_id")),
        kind=NotificationKind.WEBHOOK_DISABLED,
        event_id=str(event.event_id),
        title=f"Webhook disabled: {record.get('target_url', '')}",
        body=record.get("disabled_reason", ""),
        url=admin_change_url("admin:crm_webhooksubscription_change")(event.record_id)
        if event.record_id
        else "",
        record_type="webhook",
        record_id=event.record_id,
    )


def register() -> None:
    register_consumer("webhook.disabled", webhook_disabled, name="notifications.webhook_disabled")
    register_consumer(
        "lead.*",
        record_notifier(record_type="lead", noun="lead", url=admin_change_url("admin:crm_lead_change")),
        name="notifications.lead",
        batch=True,
    )
