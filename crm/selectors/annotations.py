"""Figures added to reads: aggregates over related records (other apps register theirs), counts, priority
rank, tag prefetch, a page's tags read as rows.
"""

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import (
    Case,
    Count,
    DecimalField,
    IntegerField,
    Model,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from crm.actors import Actor
from crm.models import Account, Contact, LostReason, Pipeline, Priority, Stage, Tag

from .visibility import lead_visible_to, record_visible_to

MONEY = DecimalField(max_digits=16, decimal_places=2)


def subquery_aggregate(queryset: QuerySet, fk: str, aggregate, output_field, empty):
    """A correlated subquery: one aggregate per outer row, without multiplying joined rows."""
    sub = (
        queryset.filter(**{fk: OuterRef("pk")})
        .order_by()
        .values(fk)
        .annotate(result=aggregate)
        .values("result")
    )
    return Coalesce(Subquery(sub, output_field=output_field), Value(empty, output_field=output_field))


# Figures another app adds to the reads of a crm model (sales: an account's deals, a lost reason's lost
# deals), by model label: builder(user) -> {annotation name: expression}, counting only what ``user`` sees.
AnnotationBuilder = Callable[[Actor], Mapping[str, Any]]
_annotations: dict[str, list[AnnotationBuilder]] = defaultdict(list)


def register_annotations(model_label: str, builder: AnnotationBuilder) -> None:
    if builder not in _annotations[model_label]:
        _annotations[model_label].append(builder)


def registered_annotations(model: type[Model], user: Actor) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for builder in _annotations[model._meta.label]:
        found.update(builder(user))
    return found


def account_annotate_aggregates(queryset: QuerySet[Account], *, user: Actor) -> QuerySet[Account]:
    """Contact count, and what the other apps register (opportunity count, open / won opportunity value),
    on every account, counting only the records ``user`` sees (another team's deals add nothing to what
    the reader is told)."""
    return queryset.annotate(
        contact_count=subquery_aggregate(
            record_visible_to(Contact, user), "account", Count("*"), IntegerField(), 0
        ),
        **registered_annotations(Account, user),
    )


def pipeline_annotate_counts(queryset: QuerySet[Pipeline], *, user: Actor) -> QuerySet[Pipeline]:
    """How many stages and how many open leads ``user`` sees each pipeline has."""
    return queryset.annotate(
        stage_count=subquery_aggregate(Stage.objects.all(), "pipeline", Count("*"), IntegerField(), 0),
        open_lead_count=subquery_aggregate(
            lead_visible_to(user).filter(status="open"),
            "pipeline",
            Count("*"),
            IntegerField(),
            0,
        ),
        **registered_annotations(Pipeline, user),
    )


def lost_reason_annotate_counts(queryset: QuerySet[LostReason], *, user: Actor) -> QuerySet[LostReason]:
    """How many of the leads (and, registered by their apps, the opportunities) ``user`` sees each lost
    reason explains."""
    return queryset.annotate(
        lead_count=subquery_aggregate(lead_visible_to(user), "lost_reason", Count("*"), IntegerField(), 0),
        **registered_annotations(LostReason, user),
    )


def priority_rank() -> Case:
    """Priorities in their business order (low < urgent), for sorting."""
    return Case(
        *(When(priority=value, then=Value(rank)) for rank, value in enumerate(Priority.values)),
        default=Value(-1),
        output_field=IntegerField(),
    )


def tags_prefetch() -> Prefetch:
    return Prefetch("tags", queryset=Tag.objects.only("id", "name", "color").order_by("name", "id"))


# Where ``attach_tags`` leaves a record's tags (``record_tags`` reads them).
_PAGE_TAGS = "_page_tags"


def attach_tags(records) -> None:
    """Give each of ``records`` (instances of one tagged model: leads, contacts, accounts, deals) its
    tags in name order, read with their names and colours as rows in one query; ``record_tags`` returns
    them. What a page of records shows of its tags, without the queryset and manager a prefetch builds
    for each record (100 rows: about 2 ms instead of 7)."""
    records = [record for record in records if record.pk is not None]
    if not records:
        return
    # From the database the records came from (the primary or the replica), as a prefetch reads.
    db = records[0]._state.db or DEFAULT_DB_ALIAS
    rows = page_tag_rows(type(records[0]), [record.pk for record in records], db, labels=True)
    tags_of, made = defaultdict(list), {}
    for record_id, tag_id, name, color in rows:
        tag = made.get(tag_id)
        if tag is None:
            tag = made[tag_id] = Tag.from_db(db, ["id", "name", "color"], (tag_id, name, color))
        tags_of[record_id].append(tag)
    for record in records:
        setattr(record, _PAGE_TAGS, tags_of.get(record.pk, []))


_PAGE_TAG_SQL: dict[tuple, str] = {}


def page_tag_rows(model, ids: list[int], db: str, *, labels: bool = False) -> list[tuple]:
    """``(record id, tag id)`` (and the tag's name and colour with ``labels``) of every tag of the
    records ``ids`` of ``model``, in the tags' name order, then by id: a page's or a board's tags in one
    statement. Its SQL is written once per model and database, the ids given as one array on
    PostgreSQL: the ORM built and compiled the same join on every page."""
    if not ids:
        return []
    connection = connections[db]
    key = (model, db, labels)
    sql = _PAGE_TAG_SQL.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        relation = model._meta.get_field("tags")
        through = relation.remote_field.through._meta
        source = quote(through.get_field(relation.m2m_field_name()).column)
        target = quote(through.get_field(relation.m2m_reverse_field_name()).column)
        tag = {name: f"t.{quote(Tag._meta.get_field(name).column)}" for name in ("id", "name", "color")}
        columns = f"l.{source}, l.{target}" + (f", {tag['name']}, {tag['color']}" if labels else "")
        sql = _PAGE_TAG_SQL[key] = (
            f"SELECT {columns} FROM {quote(through.db_table)} l "
            f"INNER JOIN {quote(Tag._meta.db_table)} t ON {tag['id']} = l.{target} "
            f"WHERE l.{source} %s ORDER BY {tag['name']}, l.{target}"  # %s: the ids' condition
        )
    if connection.vendor == "postgresql":
        where, params = "= ANY(%s)", [list(ids)]
    else:
        where, params = f"IN ({', '.join(['%s'] * len(ids))})", list(ids)
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("%s", where, 1), params)
        return cursor.fetchall()


def record_tags(record) -> list:
    """``record``'s tags in name order: those ``attach_tags`` gave it, else ``record.tags.all()`` (its
    prefetched tags where its read prefetched them)."""
    tags = record.__dict__.get(_PAGE_TAGS)
    return list(record.tags.all()) if tags is None else tags
