"""The writes of notifications: notify someone, mark read, set preferences and the time zone."""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.actors import Actor
from crm.models import (
    DEFAULT_CHANNELS,
    Notification,
    NotificationChannel,
    NotificationKind,
    NotificationPreference,
    UserProfile,
)
from crm.notifications.selectors import notification_channel

logger = logging.getLogger("crm.notifications")


def notify(
    *,
    recipient,
    kind: str,
    event_id: str,
    title: str,
    body: str = "",
    url: str = "",
    record_type: str = "",
    record_id: int | None = None,
) -> Notification | None:
    """Tell ``recipient`` of something, as they chose for ``kind`` (in the app, by email, both, not at
    all). Once per (recipient, kind, event_id): a cause handed over twice notifies once. Returns the
    new notification, or None (not wanted, inactive user, or already notified). The email goes out
    after the caller's transaction commits."""
    if recipient is None or not recipient.is_active:
        return None
    channel = notification_channel(user=recipient, kind=kind)
    if channel == NotificationChannel.NONE:
        return None
    email = channel in (NotificationChannel.EMAIL, NotificationChannel.BOTH) and bool(recipient.email)
    in_app = channel in (NotificationChannel.IN_APP, NotificationChannel.BOTH)
    if not (email or in_app):
        return None
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                recipient=recipient,
                kind=kind,
                event_id=str(event_id)[:100],
                title=title[:255],
                body=body,
                url=url[:500],
                record_type=record_type,
                record_id=record_id,
                in_app=in_app,
                email=email,
            )
    except IntegrityError:
        return None  # notified already (the unique constraint): at least once becomes exactly once
    if email:
        from crm.events.dispatch import send_after_commit
        from crm.notifications.tasks import notification_email_send

        send_after_commit(notification_email_send, notification.pk)
    return notification


def notify_many(*, kind: str, notices: list[dict[str, Any]]) -> list[Notification]:
    """``notify`` for many at once (a scan's findings): each of ``notices`` holds ``recipient``,
    ``event_id``, ``title`` and optionally ``body``, ``url``, ``record_type``, ``record_id``. The
    recipients' choices are read in one query, those notified already of their event in another, and
    the new notifications written in one INSERT; their emails go out after the commit."""
    notices = [n for n in notices if n["recipient"] is not None and n["recipient"].is_active]
    if not notices:
        return []
    recipients = {n["recipient"].pk for n in notices}
    chosen = dict(
        NotificationPreference.objects.filter(user__in=recipients, kind=kind).values_list("user", "channel")
    )
    default = DEFAULT_CHANNELS.get(kind, NotificationChannel.IN_APP)
    done = set(
        Notification.objects.filter(
            kind=kind, recipient__in=recipients, event_id__in={str(n["event_id"])[:100] for n in notices}
        ).values_list("recipient", "event_id")
    )
    rows, seen = [], set()
    for notice in notices:
        recipient, event_id = notice["recipient"], str(notice["event_id"])[:100]
        channel = chosen.get(recipient.pk, default)
        email = channel in (NotificationChannel.EMAIL, NotificationChannel.BOTH) and bool(recipient.email)
        in_app = channel in (NotificationChannel.IN_APP, NotificationChannel.BOTH)
        key = (recipient.pk, event_id)
        if not (email or in_app) or key in done or key in seen:
            continue
        seen.add(key)
        rows.append(
            Notification(
                recipient=recipient,
                kind=kind,
                event_id=event_id,
                title=notice["title"][:255],
                body=notice.get("body", ""),
                url=notice.get("url", "")[:500],
                record_type=notice.get("record_type", ""),
                record_id=notice.get("record_id"),
                in_app=in_app,
                email=email,
            )
        )
    try:
        with transaction.atomic():
            created = Notification.objects.bulk_create(rows)
    except IntegrityError:
        # Another process told some of them meanwhile: one by one, each once.
        created = [
            n
            for n in (
                notify(
                    recipient=row.recipient,
                    kind=kind,
                    event_id=row.event_id,
                    title=row.title,
                    body=row.body,
                    url=row.url,
                    record_type=row.record_type,
                    record_id=row.record_id,
                )
                for row in rows
            )
            if n is not None
        ]
    from crm.events.dispatch import send_after_commit
    from crm.notifications.tasks import notification_email_send as email_task

    for notification in created:
        if notification.email:
            send_after_commit(email_task, notification.pk)
    return created


def notification_email_send(*, notification_id: int) -> bool:
    """Send a notification's email once: the row is claimed (emailed_at set) before sending and put
    back if sending fails, so two workers handed the same task send it once."""
    now = timezone.now()
    claimed = Notification.objects.filter(pk=notification_id, email=True, emailed_at__isnull=True).update(
        emailed_at=now
    )
    if not claimed:
        return False
    notification = Notification.objects.select_related("recipient").get(pk=notification_id)
    body = notification.body
    if notification.url:
        body = f"{body}\n\n{settings.CRM_BASE_URL.rstrip('/')}{notification.url}".strip()
    try:
        send_mail(
            subject=notification.title,
            message=body,
            from_email=None,
            recipient_list=[notification.recipient.email],
        )
    except Exception:
        Notification.objects.filter(pk=notification_id, emailed_at=now).update(emailed_at=None)
        raise
    return True


def _own(user: Actor, notifications) -> Any:
    return Notification.objects.filter(recipient=user, pk__in=[n.pk for n in notifications])


@transaction.atomic
def notification_mark_read(*, user: Actor, notifications) -> int:
    """Mark ``user``'s own notifications among ``notifications`` read; returns how many changed."""
    return _own(user, notifications).filter(read_at__isnull=True).update(read_at=timezone.now())


@transaction.atomic
def notification_mark_all_read(*, user: Actor) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).update(read_at=timezone.now())


@transaction.atomic
def notification_preference_set(*, user: Actor, kind: str, channel: str) -> NotificationPreference:
    """Choose how ``user`` hears of ``kind``."""
    if kind not in NotificationKind.values:
        raise ValidationError({"kind": f"“{kind}” is not a kind of notification."})
    if channel not in NotificationChannel.values:
        raise ValidationError(
            {"channel": f"“{channel}” is not a channel: use one of {NotificationChannel.values}."}
        )
    preference, _ = NotificationPreference.objects.update_or_create(
        user=user, kind=kind, defaults={"channel": channel}
    )
    return preference


@transaction.atomic
def user_time_zone_set(*, user: Actor, time_zone: str) -> UserProfile:
    profile = UserProfile.objects.select_for_update().filter(user=user).first() or UserProfile(user=user)
    profile.time_zone = time_zone
    profile.full_clean()
    profile.save()
    return profile
