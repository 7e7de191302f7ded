"""Publishing domain events: the services' hooks that write the outbox in their own transaction."""

import datetime
import logging
import uuid
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.utils import timezone

from crm.actors import person
from crm.automation.context import current_chain
from crm.db.backends.hooks import in_own_transaction
from crm.events.registry import EventSource, source_for
from crm.models import OutboxEvent

logger = logging.getLogger("crm.events")

_CREATED = "__created__"
# Fields every save touches: a change of them alone is not an event.
_IGNORED = frozenset({"created_at", "updated_at"})


def _source(instance: models.Model) -> EventSource | None:
    if not settings.CRM_EVENTS_ENABLED:
        return None
    return source_for(instance)


def record_snapshot(instance: models.Model, data: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """What ``instance`` holds before a save, to tell the changes afterwards (None: publishes nothing)."""
    if _source(instance) is None:
        return None
    if instance._state.adding:
        return {_CREATED: True}
    before = {
        f.attname: instance.__dict__[f.attname]
        for f in instance._meta.concrete_fields
        if f.attname in instance.__dict__ and f.attname not in _IGNORED
    }
    for m2m in instance._meta.many_to_many:
        if data is not None and m2m.name in data:
            before[m2m.name] = sorted(getattr(instance, m2m.name).values_list("pk", flat=True))
    return before


def record_published(instance: models.Model, *, before: dict[str, Any] | None, user) -> OutboxEvent | None:
    """Write ``<record>.created`` or the event of what changed since ``before`` (record_snapshot)."""
    if before is None:
        return None
    source = _source(instance)
    if source is None:
        return None
    record = source.represent(instance)
    if before.get(_CREATED):
        return _publish(source, instance, kind="created", user=user, record=record)
    changes = _changes(instance, before, record)
    if not changes:
        return None
    kind = source.classify(before, instance)
    return _publish(source, instance, kind=kind, user=user, record=record, changes=changes)


@contextmanager
def record_deleting(instance: models.Model, *, user):
    """Around a delete: the record as it was, published as ``<record>.deleted`` once it is gone."""
    source = _source(instance)
    record = source.serialize(instance.pk) if source is not None else None
    pk, pipeline_id = instance.pk, source.pipeline_of(instance) if source is not None else None
    yield
    if source is not None:
        _publish(
            source, instance, kind="deleted", user=user, record=record, record_id=pk, pipeline_id=pipeline_id
        )


def event_publish(
    *,
    type: str,
    user,
    record: dict[str, Any] | None,
    record_type: str = "",
    record_id: int | None = None,
    pipeline_id: int | None = None,
    changes: dict[str, Any] | None = None,
) -> OutboxEvent:
    """Write one event to the outbox, in the caller's transaction; the relay runs after it commits.

    The payload: ``id`` (consumers deduplicate by it), ``type``, ``occurred_at``, ``actor``
    (``{"id", "username"}``; id null for the system), ``record`` (as the API represents it) and,
    for a change of an existing record, ``changes``: ``{field: {"old", "new"}}`` in the API's names.
    """
    event_id = uuid.uuid4()
    occurred_at = timezone.now()
    actor = person(user)
    payload: dict[str, Any] = {
        "id": str(event_id),
        "type": type,
        "occurred_at": _api_datetime(occurred_at),
        "actor": {"id": actor.pk, "username": actor.get_username()}
        if actor
        else {"id": None, "username": "system"},
        "record": record,
    }
    if changes is not None:
        payload["changes"] = changes
    chain = current_chain()
    if chain:  # caused by automation rules' actions: they are not triggered again by it
        payload["automation"] = {"chain": list(chain)}
    event = OutboxEvent(
        event_id=event_id,
        type=type,
        occurred_at=occurred_at,
        actor=actor,
        record_type=record_type,
        record_id=record_id,
        pipeline_id=pipeline_id,
        payload=payload,
    )
    if in_own_transaction(connection):
        # Kept with the transaction's on-commit callbacks, so a savepoint rolled back drops it with
        # them; written, with the transaction's other events, just before it commits.
        transaction.on_commit(_Pending(event))
    else:
        event.save()
    relay_after_commit()
    return event


class _Pending:
    """An event waiting in ``connection.run_on_commit`` for its transaction's commit (a no-op there:
    ``outbox_flush`` has written it before the commit)."""

    __slots__ = ("event", "written")

    def __init__(self, event: OutboxEvent):
        self.event, self.written = event, False

    def __call__(self) -> None:
        pass


def outbox_flush(conn) -> None:
    """Write the transaction's pending events, in the order published, in one INSERT (the pre-commit
    hook of crm.db.backends; the events of rolled-back savepoints are gone from the list already)."""
    if conn.alias != DEFAULT_DB_ALIAS or not conn.run_on_commit or conn is not connections[conn.alias]:
        return
    pending = [func for _, func, _ in conn.run_on_commit if isinstance(func, _Pending) and not func.written]
    if not pending:
        return
    OutboxEvent.objects.using(conn.alias).bulk_create([func.event for func in pending])
    for func in pending:
        func.written = True


def records_created_publish(instances: Iterable[models.Model], *, user) -> list[OutboxEvent]:
    """``<record>.created`` for each of ``instances`` (just written in bulk, around their save): one
    event per record, as ``record_published`` writes it, the records read together and the events
    written with the transaction's other events in one ``INSERT`` before it commits."""
    instances = list(instances)
    if not instances:
        return []
    source = _source(instances[0])
    if source is None:
        return []
    records = source.represent_many(instances)
    actor = person(user)
    who = {"id": actor.pk, "username": actor.get_username()} if actor else {"id": None, "username": "system"}
    chain = current_chain()
    occurred_at = timezone.now()
    events = []
    for instance in instances:
        event_id = uuid.uuid4()
        payload: dict[str, Any] = {
            "id": str(event_id),
            "type": f"{source.name}.created",
            "occurred_at": _api_datetime(occurred_at),
            "actor": who,
            "record": records.get(instance.pk),
        }
        if chain:
            payload["automation"] = {"chain": list(chain)}
        events.append(
            OutboxEvent(
                event_id=event_id,
                type=payload["type"],
                occurred_at=occurred_at,
                actor=actor,
                record_type=source.name,
                record_id=instance.pk,
                pipeline_id=source.pipeline_of(instance),
                payload=payload,
            )
        )
    if in_own_transaction(connection):
        # As event_publish: kept with the transaction, written with its other events, in order.
        for event in events:
            transaction.on_commit(_Pending(event))
    else:
        OutboxEvent.objects.bulk_create(events, batch_size=1000)
    relay_after_commit()
    return events


def relay_after_commit() -> None:
    """Kick the relay once when the current transaction commits (not at all if it rolls back)."""
    from crm.events.dispatch import kick_relay

    sid = _own_transaction_sid(connection)
    if not any(
        func is kick_relay and (sid is None or sid in sids) for sids, func, _ in connection.run_on_commit
    ):
        transaction.on_commit(kick_relay)


def _own_transaction_sid(conn) -> str | None:
    """The savepoint that stands for the transaction in a test case (the outermost block of the code
    itself); None for a real transaction, whose callbacks all belong to it."""
    for n, block in enumerate(conn.atomic_blocks):
        if not getattr(block, "_from_testcase", False):
            return conn.savepoint_ids[n - 1] if n > 0 else None
    return None


def _publish(
    source: EventSource, instance, *, kind, user, record, changes=None, record_id=None, pipeline_id=None
):
    return event_publish(
        type=f"{source.name}.{kind}",
        user=user,
        record=record,
        record_type=source.name,
        record_id=record_id if record_id is not None else instance.pk,
        pipeline_id=pipeline_id if pipeline_id is not None else source.pipeline_of(instance),
        changes=changes,
    )


def _changes(instance: models.Model, before: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the API shows whose value changed: ``{name: {"old": ..., "new": ...}}``."""
    changes = {}
    opts = instance._meta
    many_to_many = {m2m.name for m2m in opts.many_to_many}
    for name, old in before.items():
        if name not in record:
            continue
        if name in many_to_many:
            if sorted(record[name]) != old:
                changes[name] = {"old": old, "new": record[name]}
            continue
        if getattr(instance, name) != old:
            field = next(f for f in opts.concrete_fields if f.attname == name)
            changes[name] = {"old": _api_value(field, old), "new": record[name]}
    return changes


def _api_datetime(value: datetime.datetime) -> str:
    # As DRF writes it: ISO 8601 in the current time zone, UTC as "Z".
    text = timezone.localtime(value).isoformat() if timezone.is_aware(value) else value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _api_value(field: models.Field, value: Any) -> Any:
    """A model value as the API writes it (decimals as strings with the field's places, ISO dates)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        places = getattr(field, "decimal_places", None)
        return str(value.quantize(Decimal(1).scaleb(-places)) if places is not None else value)
    if isinstance(value, datetime.datetime):
        return _api_datetime(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
