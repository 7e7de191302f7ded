"""What the apps register into the event engine: the records that publish events, and the consumers.

``crm`` never imports ``sales`` or ``activities``: each app registers its own records (from its
``AppConfig.ready``) with the function that represents one as its API does, and anything that
reacts to events in process (webhooks, later notifications and automations) registers a consumer.
"""

import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from django.db import connections, models
from django.db.models.expressions import Combinable

Classifier = Callable[[Mapping[str, Any], models.Model], str]


def transition_classifier(
    *, statuses: Mapping[str, str] | None = None, reopen_from: Iterable[str] = (), stage: bool = False
) -> Classifier:
    """The event type of an update, from what changed: a new ``status`` listed in ``statuses`` (e.g.
    ``{"won": "won"}``), leaving one of ``reopen_from`` (``reopened``), a new stage
    (``stage_changed``, when ``stage``), else ``updated``. One event per change: the most specific."""
    statuses = dict(statuses or {})
    reopen_from = frozenset(reopen_from)

    def classify(before: Mapping[str, Any], instance: models.Model) -> str:
        old, new = before.get("status"), getattr(instance, "status", None)
        if old != new:
            if new in statuses:
                return statuses[new]
            if old in reopen_from:
                return "reopened"
        if stage and before.get("stage_id") != instance.stage_id:
            return "stage_changed"
        return "updated"

    return classify


def _plain_update(before: Mapping[str, Any], instance: models.Model) -> str:
    return "updated"


@dataclass(frozen=True)
class EventSource:
    """A kind of record that publishes ``<name>.<type>`` events."""

    model: type[models.Model]
    name: str
    serialize: Callable[[Any], dict[str, Any]]  # pk → the record as the API represents it
    types: tuple[str, ...]
    classify: Classifier = _plain_update
    pipeline_of: Callable[[models.Model], int | None] = field(
        default=lambda instance: getattr(instance, "pipeline_id", None)
    )

    def represent(self, instance: models.Model) -> dict[str, Any]:
        """The record as the API represents it, from ``instance`` just saved: what ``serialize``
        builds from ``pk``, without reading again what the instance already holds. Kept on the
        instance with the values it was built from (``represented`` gives it again while they hold)."""
        from_instance = getattr(self.serialize, "from_instance", None)
        if from_instance is None:
            return self.serialize(instance.pk)
        record = from_instance(instance)
        held = _held_values(instance)
        if held is not None:
            instance.__dict__[_REPRESENTED] = (self.serialize, held, record)
        return record

    def represent_many(self, instances: Iterable[models.Model]) -> dict[Any, dict[str, Any]]:
        """``{pk: dict}``: each of ``instances`` as the API represents it, read together when the
        source can (``api_representation``), else one by one."""
        instances = list(instances)
        many = getattr(self.serialize, "many", None)
        if many is not None:
            return many(instance.pk for instance in instances)
        return {instance.pk: self.represent(instance) for instance in instances}

    @property
    def event_types(self) -> list[str]:
        return [f"{self.name}.{suffix}" for suffix in self.types]


_sources: dict[str, EventSource] = {}
_consumers: list[tuple[str, str, Callable, bool]] = []
_other_types: list[str] = []


def register_source(
    model: type[models.Model],
    *,
    name: str,
    serialize: Callable[[Any], dict[str, Any]],
    types: Iterable[str] = ("created", "updated", "deleted"),
    classify: Classifier = _plain_update,
) -> EventSource:
    source = EventSource(model=model, name=name, serialize=serialize, types=tuple(types), classify=classify)
    _sources[model._meta.label] = source
    return source


def register_event_types(*types: str) -> None:
    """Event types published by other means than a record's save (``activity.due`` from reminders)."""
    _other_types.extend(t for t in types if t not in _other_types)


def register_consumer(
    pattern: str, consumer: Callable, *, name: str | None = None, batch: bool = False
) -> None:
    """Call ``consumer(event)`` (an OutboxEvent) in the relay for each event whose type matches
    ``pattern`` (``*`` wildcards), or ``consumer(events)`` once per relayed batch when ``batch``.
    It runs in a savepoint: raising leaves its events pending for the next relay. It may see an
    event twice (at least once): it deduplicates by ``event.event_id``."""
    name = name or f"{consumer.__module__}.{consumer.__qualname__}"
    if any(existing == name for existing, _, _, _ in _consumers):
        return
    _consumers.append((name, pattern, consumer, batch))


def source_for(instance_or_model) -> EventSource | None:
    return _sources.get(instance_or_model._meta.label)


def sources() -> list[EventSource]:
    return list(_sources.values())


def consumers() -> list[tuple[str, str, Callable, bool]]:
    """(name, pattern, consumer, batch) for every registered consumer."""
    return list(_consumers)


def event_types() -> list[str]:
    """Every event type the registered apps publish, for validating subscriptions and documenting."""
    types = [t for source in _sources.values() for t in source.event_types]
    return sorted({*types, *_other_types})


def type_matches(pattern: str, event_type: str) -> bool:
    return fnmatchcase(event_type, pattern)


def api_representation(selector: Callable, serializer_class: type) -> Callable[[Any], dict[str, Any]]:
    """``pk → dict``: the record read through its API selector and serializer, as a GET answers it.

    Its ``from_instance(instance)`` gives the same dict from an instance a service just saved, reading
    only what the instance lacks: the selector's annotations and the relations it joins that the
    instance has not loaded (one statement), and what it prefetches (one each, in the selector's
    order), each compiled once (``crm.prepared``): a write's event costs their round
    trips, not the ORM's building of them. ``serializer_class.representation_context(record)``, when
    defined, gives the serializer's context (what its fields would read once per page). An instance
    with deferred fields or expressions pending is read again.
    """
    local = threading.local()

    def serializer(context: dict | None = None):
        # The serializer's fields are built once a thread; each call gets a context of its own.
        if not hasattr(local, "serializer"):
            local.serializer = serializer_class(context={})
        local.serializer._context = context or {}
        return local.serializer

    def serialize(pk) -> dict[str, Any]:
        from crm.actors import SYSTEM

        return dict(serializer().to_representation(selector(user=SYSTEM).get(pk=pk)))

    def from_instance(instance: models.Model) -> dict[str, Any]:
        from crm.actors import SYSTEM

        if instance.get_deferred_fields() or any(
            isinstance(instance.__dict__.get(f.attname), Combinable) for f in instance._meta.concrete_fields
        ):
            return serialize(instance.pk)
        record = copy.copy(instance)
        record._prefetched_objects_cache = {}
        from crm.prepared import NotPreparable

        try:
            read = _read_prepared(record, selector)
        except NotPreparable:
            read = False
        if not read:
            _read_orm(record, selector(user=SYSTEM))
        context_for = getattr(serializer_class, "representation_context", None)
        return dict(serializer(context_for(record) if context_for else None).to_representation(record))

    def many(pks: Iterable[Any]) -> dict[Any, dict[str, Any]]:
        """``{pk: dict}`` for many records in one read (and a query per prefetch): a bulk write's events."""
        from crm.actors import SYSTEM

        records = selector(user=SYSTEM).filter(pk__in=list(pks))
        return {record.pk: dict(serializer().to_representation(record)) for record in records}

    def of_read(record: models.Model) -> dict[str, Any]:
        """The dict of a record read as the selector reads it (``record_read``), by the serializer
        whose fields this thread built once."""
        context_for = getattr(serializer_class, "representation_context", None)
        return dict(serializer(context_for(record) if context_for else None).to_representation(record))

    serialize.from_instance = from_instance
    serialize.of_read = of_read
    serialize.many = many
    # What it reads through, so that an API view serving the same may answer a write the same way
    # (``represented``).
    serialize.selector, serialize.serializer_class = selector, serializer_class
    return serialize


def represented(
    instance: models.Model, *, selector: Callable, serializer_class: type
) -> dict[str, Any] | None:
    """``instance``, just saved, as ``serializer_class`` represents it read through ``selector``: built
    as its events are (``from_instance``: the statements compiled once, not the selector's queryset
    built and compiled again). None unless the record's event source represents it with that very
    selector and serializer (the caller then reads it again itself)."""
    source = _source_representing(instance, selector, serializer_class)
    if source is None:
        return None
    kept = instance.__dict__.get(_REPRESENTED)
    if kept is not None and kept[0] is source.serialize and kept[1] == _held_values(instance):
        # The write's own event built it from these very values: a copy, not the same reads again.
        return copy.deepcopy(kept[2])
    return source.represent(instance)


def _source_representing(
    record: models.Model, selector: Callable, serializer_class: type
) -> EventSource | None:
    """``record``'s event source when it represents records read through ``selector`` as
    ``serializer_class`` does (``api_representation``), else None."""
    source = source_for(record)
    serialize = source.serialize if source is not None else None
    if (
        getattr(serialize, "selector", None) is not selector
        or getattr(serialize, "serializer_class", None) is not serializer_class
    ):
        return None
    return source


# Where EventSource.represent keeps what it built on the instance.
_REPRESENTED = "_crm_represented"


def _held_values(instance: models.Model) -> tuple | None:
    """The values of ``instance``'s columns, to tell later whether it still holds what a
    representation was built from; None when one is an expression still to be resolved."""
    values = tuple(instance.__dict__.get(f.attname) for f in instance._meta.concrete_fields)
    if any(isinstance(value, Combinable) for value in values):
        return None
    return values


def represented_read(
    record: models.Model, *, selector: Callable, serializer_class: type
) -> dict[str, Any] | None:
    """``record``, read whole as ``selector`` reads it (``record_read``), as ``serializer_class``
    represents it, by the serializer its event source keeps built (a GET's answer without building the
    serializer's fields again); None unless that source represents it with that selector and
    serializer."""
    source = _source_representing(record, selector, serializer_class)
    return None if source is None else source.serialize.of_read(record)


def _read_orm(record: models.Model, queryset: models.QuerySet) -> None:
    """What ``record`` lacks of ``queryset``'s (a selector's) row, read through the ORM."""
    annotations = list(queryset.query.annotations)
    joined = queryset.query.select_related
    relations = [
        name for name in (joined if isinstance(joined, dict) else {}) if _relation_missing(record, name)
    ]
    if annotations or relations:
        row = (
            queryset.filter(pk=record.pk)
            .select_related(None)
            .prefetch_related(None)
            .select_related(*relations)
            .only("pk", *relations)
            .get()
        )
        for name in annotations:
            setattr(record, name, getattr(row, name))
        for name in relations:
            record._meta.get_field(name).set_cached_value(record, getattr(row, name))
    if queryset._prefetch_related_lookups:
        models.prefetch_related_objects([record], *queryset._prefetch_related_lookups)


def _read_prepared(record: models.Model, selector: Callable) -> bool:
    """What ``record`` lacks of the selector's row, by statements compiled once (crm.prepared): its
    annotations and the joined relations it has not loaded in one, each many-to-many prefetch in one.
    False (nothing set) when the selector has a part that cannot be read so: the ORM reads it all."""
    from crm.actors import SYSTEM
    from crm.prepared import prepared

    plan = _plan(type(record), selector)
    if plan is None:
        return False
    annotations, joined, prefetches = plan
    missing = tuple(name for name in joined if _relation_missing(record, name))
    if annotations or missing:
        query = prepared(
            (selector, "row", missing),
            lambda key: (
                selector(user=SYSTEM)
                .filter(pk=key)
                .select_related(None)
                .prefetch_related(None)
                .select_related(*missing)
                .only("pk", *missing)
            ),
        )
        if query is None:
            return False
        found = query.objects(record.pk)
        if not found:
            return False
        for name in annotations:
            setattr(record, name, getattr(found[0], name))
        for name in missing:
            record._meta.get_field(name).set_cached_value(record, getattr(found[0], name))
    _prefetch_prepared(record, prefetches)
    return True


def _prefetch_prepared(record: models.Model, prefetches) -> None:
    """Each of the plan's many-to-many prefetches read for ``record`` by its compiled statement and
    kept as the ORM's prefetch_related keeps it."""
    for name, query in prefetches:
        manager = getattr(record, name)
        cached = manager.get_queryset()
        cached._result_cache = query.instances(record.pk)
        cached._prefetch_done = True
        record._prefetched_objects_cache[getattr(manager, "prefetch_cache_name", name)] = cached


def record_read(model: type[models.Model], selector: Callable, pk: int) -> models.Model | None:
    """Record ``pk`` as ``selector(user=SYSTEM)`` reads it (its columns, the relations it joins, its
    annotations and its many-to-many prefetches) by statements compiled once a thread (crm.prepared):
    a GET of one record without the selector's queryset built and compiled again. None where the
    selector has a part that cannot be read so, or there is no such record: read it through the ORM."""
    from crm.actors import SYSTEM
    from crm.prepared import NotPreparable, prepared

    plan = _plan(model, selector)
    if plan is None:
        return None
    query = prepared(
        (selector, "record"), lambda key: selector(user=SYSTEM).filter(pk=key).prefetch_related(None)
    )
    if query is None:
        return None
    # An id out of the column's range matches nothing: the ORM says so without asking the database,
    # which would refuse the value (SQLite: OverflowError).
    low, high = connections[query.db].ops.integer_field_range(model._meta.pk.get_internal_type())
    if (low is not None and pk < low) or (high is not None and pk > high):
        return None
    try:
        found = query.objects(pk)
    except NotPreparable:
        return None
    if not found:
        return None
    record = found[0]
    record._prefetched_objects_cache = {}
    _prefetch_prepared(record, plan[2])
    return record


_plans = threading.local()


def _plan(model: type[models.Model], selector: Callable):
    """(annotations, joined relations, [(many-to-many name, PreparedQuery)]) for the
    selector's queryset, built once a thread; None when some part of it cannot be prepared."""
    cache = _plans.__dict__.setdefault("plans", {})
    if selector not in cache:
        cache[selector] = _build_plan(model, selector)
    return cache[selector]


def _build_plan(model: type[models.Model], selector: Callable):
    from crm.actors import SYSTEM

    queryset = selector(user=SYSTEM)
    annotations = list(queryset.query.annotations)
    joined = queryset.query.select_related
    joined = list(joined) if isinstance(joined, dict) else []
    if any(not model._meta.get_field(name).concrete for name in joined):
        return None
    prefetches = []
    for lookup in queryset._prefetch_related_lookups:
        spec = _m2m_prefetch(model, selector, lookup)
        if spec is None:
            return None
        prefetches.append(spec)
    return annotations, joined, prefetches


def _m2m_prefetch(model: type[models.Model], selector: Callable, lookup):
    """(name, PreparedQuery) for a prefetch of a forward many-to-many of ``model`` (the related rows
    of one record, in the prefetch's order and columns), else None."""
    from crm.prepared import prepared

    name = lookup if isinstance(lookup, str) else lookup.prefetch_through
    if "__" in name or getattr(lookup, "to_attr", None):
        return None
    field = next((f for f in model._meta.many_to_many if f.name == name), None)
    if field is None:
        return None
    base = getattr(lookup, "queryset", None)
    if base is None:
        base = field.related_model._default_manager.all()
    query = prepared(
        (selector, "prefetch", name), lambda key: base.filter(**{field.related_query_name(): key})
    )
    if query is None or query.attnames is None:
        return None
    return name, query


def _relation_missing(record: models.Model, name: str) -> bool:
    """Whether the selector's joined relation ``name`` would cost ``record`` a query to read."""
    relation = record._meta.get_field(name)
    if not relation.concrete or not (relation.many_to_one or relation.one_to_one):
        return False  # a reverse relation: read when the serializer asks for it
    if getattr(record, relation.attname) is None:
        return False  # a null foreign key reads as None without a query
    return not relation.is_cached(record)
