"""A record's stage history: when it entered and left each stage."""

import datetime
from dataclasses import dataclass

from django.db.models import (
    Model,
)
from django.utils import timezone

from crm.actors import Actor

# --- stage history --------------------------------------------------------------------------------


@dataclass
class StageHistory:
    """A lead's or opportunity's moves between stages, oldest first, with the times derived from them.

    Each entry carries ``duration``: how long the record stayed in the stage it entered (until the next
    change; until now for the current stage of an open record; None for the stage a record closed in).
    ``entered_stage_at`` is when it entered its current stage, ``time_in_stage`` how long ago that was;
    ``days_open`` counts whole days from its creation until it closed (or until now while open).
    """

    record: Model
    entries: list
    entered_stage_at: datetime.datetime
    time_in_stage: datetime.timedelta
    days_open: int


def _closed_at(record, entries) -> datetime.datetime:
    when = getattr(record, "closed_at", None) or getattr(record, "converted_at", None)
    if when is not None:
        return when
    closing = [e for e in entries if e.to_stage is not None and e.to_stage.is_closed]
    # A lost lead keeps no date of its own; a pipeline without a lost stage leaves no history line.
    return closing[-1].changed_at if closing else record.updated_at


def stage_history(*, user: Actor, record, now: datetime.datetime | None = None) -> StageHistory:
    """The stage history of a lead or an opportunity the caller has already been allowed to see."""
    now = now or timezone.now()
    entries = list(record.stage_changes.select_related("changed_by", "to_stage").order_by("changed_at", "id"))
    closed = record.is_closed
    for position, entry in enumerate(entries):
        if position + 1 < len(entries):
            entry.duration = entries[position + 1].changed_at - entry.changed_at
        else:
            entry.duration = None if closed else now - entry.changed_at
    current = entries[-1] if entries and entries[-1].to_stage_id == record.stage_id else None
    entered = current.changed_at if current is not None else record.created_at
    # A record loaded without its first stage line (loaddata, an older version) is open since its
    # creation, not since its first recorded move.
    started = min([record.created_at, *(entry.changed_at for entry in entries[:1])])
    ended = _closed_at(record, entries) if closed else now
    return StageHistory(
        record=record,
        entries=entries,
        entered_stage_at=entered,
        time_in_stage=now - entered,
        days_open=max((ended - started).days, 0),
    )
