"""A user's activities as an iCalendar feed (RFC 5545) that Google, Outlook and Apple calendars subscribe to.

The events are written line by line (escaped and folded as RFC 5545 §3.1 and §3.3.11 say): building
5,000 ``icalendar.Event`` objects costs seconds, this costs milliseconds. The tests read every feed
back with the ``icalendar`` parser.
"""

import datetime
from collections.abc import Iterable

from activities.models import DEFAULT_DURATION_MINUTES, ActivityStatus

STATUS = {
    ActivityStatus.SCHEDULED: "CONFIRMED",
    ActivityStatus.IN_PROGRESS: "CONFIRMED",
    ActivityStatus.COMPLETED: "CONFIRMED",
    ActivityStatus.CANCELLED: "CANCELLED",
}


def _text(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _fold(line: str) -> str:
    """A content line cut into lines of at most 75 octets, each continuation starting with a space."""
    encoded = line.encode()
    if len(encoded) <= 75:
        return line
    parts, start, limit = [], 0, 75
    while start < len(encoded):
        end = min(start + limit, len(encoded))
        while end < len(encoded) and (encoded[end] & 0xC0) == 0x80:
            end -= 1  # never split a UTF-8 character
        parts.append(encoded[start:end].decode())
        start, limit = end, 74
    return "\r\n ".join(parts)


def _utc(moment: datetime.datetime) -> str:
    if moment.tzinfo is not datetime.UTC:
        moment = moment.astimezone(datetime.UTC)
    date = f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
    return f"{date}T{moment.hour:02d}{moment.minute:02d}{moment.second:02d}Z"


def _rrule(value: str) -> str:
    # Stored as typed (validated by dateutil); the feed carries it upper-case, without a prefix.
    return "".join(ch for ch in value.strip().removeprefix("RRULE:") if ch >= " ").upper()


# The columns feed_ics reads, in order (a values_list: no model instance per activity).
FEED_COLUMNS = (
    "pk",
    "subject",
    "activity_type",
    "description",
    "due_date",
    "duration_minutes",
    "recurrence",
    "status",
    "updated_at",
)


def feed_ics(rows: Iterable[tuple], *, name: str, domain: str) -> str:
    """The calendar: one VEVENT per activity row (FEED_COLUMNS), its RRULE when it repeats, UTC times."""
    now = _utc(datetime.datetime.now(datetime.UTC))
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//CRM//Activities feed//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        _fold(f"X-WR-CALNAME:{_text(name)}"),
        "X-PUBLISHED-TTL:PT1H",
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
    ]
    append = lines.append
    for pk, subject, activity_type, description, start, minutes, recurrence, status, updated_at in rows:
        end = start + datetime.timedelta(minutes=minutes or DEFAULT_DURATION_MINUTES)
        append(
            f"BEGIN:VEVENT\r\nUID:activity-{pk}@{domain}\r\nDTSTAMP:{now}\r\n"
            f"LAST-MODIFIED:{_utc(updated_at)}\r\nDTSTART:{_utc(start)}\r\nDTEND:{_utc(end)}"
        )
        append(_fold(f"SUMMARY:{_text(subject)}"))
        if description:
            append(_fold(f"DESCRIPTION:{_text(description)}"))
        append(f"CATEGORIES:{activity_type.upper()}\r\nSTATUS:{STATUS.get(status, 'CONFIRMED')}")
        if recurrence:
            append(_fold(f"RRULE:{_rrule(recurrence)}"))
        append("END:VEVENT")
    append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"
