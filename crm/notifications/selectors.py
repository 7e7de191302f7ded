"""Reads of notifications: a user's own list, the unread count, their preferences and time zone."""

import zoneinfo

from django.conf import settings
from django.db.models import QuerySet

from crm.models import (
    DEFAULT_CHANNELS,
    Notification,
    NotificationChannel,
    NotificationKind,
    NotificationPreference,
    UserProfile,
)


def notification_list(*, user, filters=None) -> QuerySet[Notification]:
    """The notifications ``user`` sees in the app (only ever their own), newest first."""
    queryset = Notification.objects.filter(recipient=user, in_app=True).order_by("-id")
    filters = filters or {}
    if filters.get("unread"):
        queryset = queryset.filter(read_at__isnull=True)
    return queryset


def notification_unread_count(*, user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return notification_list(user=user).filter(read_at__isnull=True).count()


def notification_channels(*, user) -> dict[str, str]:
    """``{kind: channel}`` for every kind: the user's choice, else the default."""
    chosen = dict(NotificationPreference.objects.filter(user=user).values_list("kind", "channel"))
    return {kind.value: chosen.get(kind.value, DEFAULT_CHANNELS[kind].value) for kind in NotificationKind}


def notification_channel(*, user, kind: str) -> str:
    chosen = (
        NotificationPreference.objects.filter(user=user, kind=kind).values_list("channel", flat=True).first()
    )
    return chosen or DEFAULT_CHANNELS.get(kind, NotificationChannel.IN_APP)


def user_time_zone(user) -> zoneinfo.ZoneInfo:
    """The user's time zone (their profile), else the server's TIME_ZONE."""
    name = UserProfile.objects.filter(user=user).values_list("time_zone", flat=True).first()
    return zoneinfo.ZoneInfo(name or settings.TIME_ZONE)


def user_time_zones(users) -> dict[int, zoneinfo.ZoneInfo]:
    """``{user id: time zone}`` for many users in one query."""
    ids = [user.pk for user in users]
    names = dict(UserProfile.objects.filter(user_id__in=ids).values_list("user_id", "time_zone"))
    return {pk: zoneinfo.ZoneInfo(names.get(pk) or settings.TIME_ZONE) for pk in ids}
