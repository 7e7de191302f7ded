"""Reads that carry rules for the crm app: visibility, lists, kanban boards.

Every selector takes the requesting ``user``. What a user may see is decided once per model by
``<model>_visible_to(user)`` (the rules are above those functions); lists and boards start from
it, apply the app's FilterSet to ``filters`` (query parameters, or None for no filtering) and load
related rows so a page costs a fixed number of queries. Nothing here depends on DRF: the admin's
pages call the same functions.
"""

import datetime
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    Count,
    DecimalField,
    Exists,
    F,
    IntegerField,
    Model,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from crm.actors import Actor
from crm.filters import (
    AccountFilter,
    ContactFilter,
    LeadFilter,
    LostReasonFilter,
    PipelineFilter,
    StageFilter,
    TagFilter,
    filter_queryset,
)
from crm.models import Account, Contact, Lead, LostReason, Pipeline, Priority, SalesTeam, Stage, Tag

Filters = Mapping[str, Any] | None

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
    return Prefetch("tags", queryset=Tag.objects.only("id", "name").order_by("name", "id"))


# --- visibility: the one place per model that decides which records a user sees ------------------


# Leads, opportunities and activities: a rep sees what they own and what nobody owns; a manager also
# sees what the members of the (active) teams they manage own; a CRM Admin or a superuser sees all.
# Accounts and contacts are shared customer data: every signed-in user reads them, but only the owner's
# team (the owner, their team-mates and their teams' managers) or a CRM Admin may change them.

CRM_ADMIN_GROUP = "CRM Admin"


def _crm_admin_membership(user: Actor) -> Exists:
    return Exists(get_user_model().groups.through.objects.filter(user=user.pk, group__name=CRM_ADMIN_GROUP))


def user_sees_everything(user: Actor) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name=CRM_ADMIN_GROUP).exists()


def _teams() -> QuerySet[SalesTeam]:
    return SalesTeam.objects.filter(is_active=True)


def sales_team_visible_to(user: Actor) -> QuerySet[SalesTeam]:
    """Every team for a CRM Admin or a superuser; else the teams ``user`` manages or belongs to."""
    if user_sees_everything(user):
        return SalesTeam.objects.all()
    if not user.is_authenticated or not user.is_active:
        return SalesTeam.objects.none()
    # A subquery, not a join: a join on members would also narrow what the caller counts of them.
    mine = SalesTeam.objects.filter(Q(manager=user) | Q(members=user)).values("pk")
    return SalesTeam.objects.filter(pk__in=mine)


def user_managed_ids(user: Actor) -> QuerySet:
    """The ids of ``user`` and of the members of the active teams ``user`` manages (a subquery)."""
    UserModel = get_user_model()
    return UserModel.objects.filter(Q(pk=user.pk) | Q(sales_teams__in=_teams().filter(manager=user))).values(
        "pk"
    )


def user_team_ids(user: Actor) -> QuerySet:
    """The ids of ``user``'s team: ``user``, the members and managers of every active team they are in
    or manage (a subquery)."""
    UserModel = get_user_model()
    teams = _teams().filter(Q(manager=user) | Q(members=user)).values("pk")
    return UserModel.objects.filter(
        Q(pk=user.pk) | Q(sales_teams__in=teams) | Q(managed_teams__in=teams)
    ).values("pk")


def user_manages_a_team(user: Actor) -> bool:
    return user.is_authenticated and _teams().filter(manager=user).exists()


def owned_records_visible_to(queryset: QuerySet, user: Actor) -> QuerySet:
    """``queryset`` narrowed to the records ``user`` may see under the owner rule above."""
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    if user.is_superuser:
        return queryset
    # One SQL condition, not a query per request to learn the user's group first.
    return queryset.filter(
        Q(owner__isnull=True) | Q(owner__in=user_managed_ids(user)) | Q(_crm_admin_membership(user))
    )


def shared_records_editable_by(queryset: QuerySet, user: Actor) -> QuerySet:
    """``queryset`` (accounts, contacts) narrowed to the records ``user``'s team may change."""
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    if user.is_superuser:
        return queryset
    return queryset.filter(
        Q(owner__isnull=True) | Q(owner__in=user_team_ids(user)) | Q(_crm_admin_membership(user))
    )


def owner_assignable_by(user: Actor) -> QuerySet:
    """The users ``user`` may make the owner of a record: anyone for a CRM Admin; else those whose
    records ``user`` sees (themselves, and for a manager their teams' members), so a record never
    leaves the sight of the person who assigns it."""
    UserModel = get_user_model()
    if user_sees_everything(user):
        return UserModel.objects.all()
    return UserModel.objects.filter(pk__in=user_managed_ids(user))


def lead_visible_to(user: Actor) -> QuerySet[Lead]:
    return owned_records_visible_to(Lead.objects.all(), user)


def account_visible_to(user: Actor) -> QuerySet[Account]:
    return Account.objects.all() if user.is_authenticated and user.is_active else Account.objects.none()


def account_editable_by(user: Actor) -> QuerySet[Account]:
    return shared_records_editable_by(Account.objects.all(), user)


def contact_visible_to(user: Actor) -> QuerySet[Contact]:
    return Contact.objects.all() if user.is_authenticated and user.is_active else Contact.objects.none()


def contact_editable_by(user: Actor) -> QuerySet[Contact]:
    return shared_records_editable_by(Contact.objects.all(), user)


# --- one rule per kind of record, for code that handles records of any kind -----------------------

# Merges, conversions, relation fields, exports and aggregates handle records of several kinds,
# some owned by apps crm does not import: each app registers its models' rules here (sales and
# activities from their selectors modules), and every check reads them through the functions below.
# A model nobody registers (pipelines, stages, tags) is seen by every signed-in user; changing it is
# a matter of model permissions only.


@dataclass(frozen=True)
class RecordAccess:
    visible_to: Any  # (user) -> QuerySet of the records ``user`` sees
    editable_by: Any  # (user) -> QuerySet of the records ``user`` may change
    shared: bool  # seen by every signed-in user (accounts, contacts)


_RECORD_ACCESS: dict[type[Model], RecordAccess] = {}


def register_record_access(model: type[Model], *, visible_to, editable_by=None, shared: bool = False) -> None:
    """Declare who sees (``visible_to(user)``) and who changes (``editable_by(user)``, by default the
    same) the records of ``model``."""
    _RECORD_ACCESS[model] = RecordAccess(visible_to, editable_by or visible_to, shared)


def _access(model: type[Model]) -> RecordAccess | None:
    return _RECORD_ACCESS.get(model._meta.concrete_model)


def record_visible_to(model: type[Model], user: Actor) -> QuerySet:
    access = _access(model)
    if access is None:
        manager = model._default_manager
        return manager.all() if user.is_authenticated and user.is_active else manager.none()
    return access.visible_to(user)


def record_editable_by(model: type[Model], user: Actor) -> QuerySet:
    access = _access(model)
    return record_visible_to(model, user) if access is None else access.editable_by(user)


def record_visibility_is_restricted(model: type[Model], user: Actor) -> bool:
    """Whether some records of ``model`` may be hidden from ``user`` (so what names them must check)."""
    access = _access(model)
    return access is not None and not access.shared and not user_sees_everything(user)


# What a page, list or export shows in place of a related record its reader cannot see.
HIDDEN_RECORD = "a record you cannot see"


def related_seen_annotations(model: type[Model], user: Actor, fields: tuple[str, ...]) -> dict[str, Any]:
    """``<field>_seen`` annotations: whether ``user`` sees the record each relation in ``fields``
    points at, for a page listing ``model`` rows that would otherwise name them (only the relations
    whose records may be hidden from ``user`` get one)."""
    annotations = {}
    for name in fields:
        related = model._meta.get_field(name).related_model
        if record_visibility_is_restricted(related, user):
            visible = record_visible_to(related, user).filter(pk=OuterRef(f"{name}_id"))
            annotations[f"{name}_seen"] = Exists(visible)
    return annotations


def related_shown(record: Model, name: str) -> Model | str | None:
    """``record``'s related ``name`` as a page may show it: itself, HIDDEN_RECORD, or None when unset
    (reads the ``<name>_seen`` annotation of related_seen_annotations when present)."""
    if getattr(record, f"{name}_id") is None:
        return None
    return getattr(record, name) if getattr(record, f"{name}_seen", True) else HIDDEN_RECORD


def record_is_visible(*, user: Actor, record: Model) -> bool:
    return record_visible_to(type(record), user).filter(pk=record.pk).exists()


def record_is_changeable(*, user: Actor, record: Model) -> bool:
    return record_editable_by(type(record), user).filter(pk=record.pk).exists()


register_record_access(Lead, visible_to=lead_visible_to)
register_record_access(Account, visible_to=account_visible_to, editable_by=account_editable_by, shared=True)
register_record_access(Contact, visible_to=contact_visible_to, editable_by=contact_editable_by, shared=True)


# --- lists ----------------------------------------------------------------------------------------


def lead_list(*, user: Actor, filters: Filters = None) -> QuerySet[Lead]:
    queryset = (
        lead_visible_to(user)
        .select_related("pipeline", "stage", "owner", "lost_reason", "score_breakdown")
        .prefetch_related(tags_prefetch())
        .annotate(priority_rank=priority_rank(), converted_opportunity_pk=F("converted_opportunity__id"))
    )
    return filter_queryset(LeadFilter, queryset, filters)


def account_list(*, user: Actor, filters: Filters = None) -> QuerySet[Account]:
    queryset = account_annotate_aggregates(
        account_visible_to(user).select_related("owner", "parent").prefetch_related(tags_prefetch()),
        user=user,
    )
    return filter_queryset(AccountFilter, queryset, filters)


def contact_list(*, user: Actor, filters: Filters = None) -> QuerySet[Contact]:
    queryset = contact_visible_to(user).select_related("account", "owner").prefetch_related(tags_prefetch())
    return filter_queryset(ContactFilter, queryset, filters)


def pipeline_list(*, user: Actor, filters: Filters = None) -> QuerySet[Pipeline]:
    queryset = Pipeline.objects.prefetch_related(
        Prefetch("stages", queryset=Stage.objects.order_by("sequence", "id"))
    )
    return filter_queryset(PipelineFilter, queryset, filters)


def stage_list(*, user: Actor, filters: Filters = None) -> QuerySet[Stage]:
    queryset = Stage.objects.select_related("pipeline").order_by(
        "pipeline__sequence", "pipeline_id", "sequence", "id"
    )
    return filter_queryset(StageFilter, queryset, filters)


def tag_list(*, user: Actor, filters: Filters = None) -> QuerySet[Tag]:
    return filter_queryset(TagFilter, Tag.objects.all(), filters)


def lost_reason_list(*, user: Actor, filters: Filters = None) -> QuerySet[LostReason]:
    return filter_queryset(LostReasonFilter, LostReason.objects.all(), filters)


# --- kanban boards --------------------------------------------------------------------------------

KANBAN_DEFAULT_LIMIT = 20
KANBAN_MAX_LIMIT = 100
# No column is this long; a larger offset (which the database could not take) has no cards.
KANBAN_MAX_OFFSET = 2**62


@dataclass
class KanbanColumn:
    stage: Stage
    count: int = 0
    total: Decimal = Decimal("0.00")
    results: list[Model] = field(default_factory=list)


@dataclass
class KanbanBoard:
    pipeline: Pipeline
    columns: list[KanbanColumn]


def pipeline_for_board(pipeline: Pipeline | None) -> Pipeline:
    """The pipeline a board, forecast or dashboard shows: the one asked for, else the default one."""
    if pipeline is not None:
        return pipeline
    default = Pipeline.objects.default()
    if default is None:
        raise ValidationError({"pipeline": "There is no default pipeline: choose a pipeline."})
    return default


def _window_ordering(queryset: QuerySet) -> list:
    """The queryset's ordering (the ``ordering`` filter's, else the model's) as window expressions."""
    ordering = list(queryset.query.order_by or queryset.model._meta.ordering)
    expressions = []
    for item in ordering:
        if isinstance(item, str):
            name = item.lstrip("-")
            item = F(name).desc() if item.startswith("-") else F(name).asc()
        expressions.append(item)
    if not any(getattr(expr.expression, "name", None) in ("pk", "id") for expr in expressions):
        expressions.append(F("pk").desc())
    return expressions


def pipeline_kanban(*, queryset: QuerySet, pipeline: Pipeline, value_field: str, limit: int) -> KanbanBoard:
    """A board of ``queryset``'s records in ``pipeline``: a column per stage, in stage order.

    A column holds the records in its stage. Each has the count and ``value_field`` total of all of
    them (one grouped aggregate query; on PostgreSQL the stage index, which carries the value and the
    owner, answers it without reading the table) and its first ``limit`` cards in the queryset's
    order (one query, plus the queryset's prefetches; see ``_kanban_first_cards``).
    """
    limit = max(0, min(limit, KANBAN_MAX_LIMIT))
    stages = list(pipeline.stages.order_by("sequence", "id"))
    columns = {stage.pk: KanbanColumn(stage=stage) for stage in stages}
    money = DecimalField(max_digits=16, decimal_places=2)
    in_stages = queryset.filter(stage__in=[stage.pk for stage in stages])
    totals = (
        in_stages.order_by()
        .values("stage_id")
        .annotate(
            count=Count("pk"), total=Coalesce(Sum(value_field), Value(Decimal("0")), output_field=money)
        )
    )
    for row in totals:
        column = columns.get(row["stage_id"])
        if column is not None:
            column.count = row["count"]
            column.total = row["total"].quantize(Decimal("0.01"))
    if limit and stages:
        for record in _kanban_first_cards(in_stages, pipeline, limit):
            column = columns.get(record.stage_id)
            if column is not None:
                column.results.append(record)
    return KanbanBoard(pipeline=pipeline, columns=list(columns.values()))


def _kanban_first_cards(queryset: QuerySet, pipeline: Pipeline, limit: int) -> QuerySet:
    """The first ``limit`` records of each stage of ``pipeline`` in ``queryset``'s order, by stage.

    PostgreSQL: a LATERAL join over the pipeline's stages runs ``ORDER BY ... LIMIT n`` once per stage,
    which the (stage, created_at, id) index answers by reading n entries for the default order; the
    records are then loaded by id with the queryset's joins. Elsewhere: ROW_NUMBER() over each stage.
    """
    ordering = _window_ordering(queryset)
    if connection.vendor != "postgresql":
        ranked = queryset.annotate(
            kanban_rank=Window(RowNumber(), partition_by=[F("stage_id")], order_by=ordering)
        )
        return ranked.filter(kanban_rank__lte=limit).order_by("stage_id", "kanban_rank")
    stage_table = connection.ops.quote_name(Stage._meta.db_table)
    per_stage = (
        queryset.filter(stage_id=RawSQL("kanban_stage.id", [], output_field=IntegerField()))
        .order_by(*ordering)
        .values("pk")[:limit]
    )
    try:
        per_stage_sql, params = per_stage.query.sql_with_params()
    except EmptyResultSet:  # a filter that nothing can match (a search without matches)
        return queryset.none()
    quote = connection.ops.quote_name
    pk_column = f"{quote(queryset.model._meta.db_table)}.{quote(queryset.model._meta.pk.column)}"
    # "= ANY(ARRAY(...))" rather than "IN (...)": the planner runs the few ids first and fetches them
    # by primary key, where it would otherwise guess a large IN list and hash-join the whole table.
    first_cards = RawSQL(
        f"{pk_column} = ANY(ARRAY(SELECT kanban_card.pk FROM {stage_table} kanban_stage "
        f"CROSS JOIN LATERAL ({per_stage_sql}) kanban_card WHERE kanban_stage.pipeline_id = %s))",
        (*params, pipeline.pk),
        output_field=BooleanField(),
    )
    return queryset.filter(first_cards).order_by("stage_id", *ordering)


def lead_kanban(
    *,
    user: Actor,
    pipeline: Pipeline | None = None,
    filters: Filters = None,
    limit: int = KANBAN_DEFAULT_LIMIT,
) -> KanbanBoard:
    """The leads board of ``pipeline`` (default: the default pipeline); ``total`` sums expected revenue."""
    pipeline = pipeline_for_board(pipeline)
    return pipeline_kanban(
        queryset=lead_list(user=user, filters=filters),
        pipeline=pipeline,
        value_field="expected_revenue",
        limit=limit,
    )


def pipeline_kanban_cards(
    *, queryset: QuerySet, stage: Stage, offset: int = 0, limit: int = KANBAN_DEFAULT_LIMIT
) -> tuple[list[Model], bool]:
    """More cards for one column of a board: ``limit`` records from ``offset``, in the board's order.

    Returns the records and whether more follow (one query, fetching one record beyond the page).
    """
    offset = max(0, offset)
    limit = max(1, min(limit, KANBAN_MAX_LIMIT))
    if offset > KANBAN_MAX_OFFSET:
        return [], False
    records = list(
        queryset.filter(stage=stage).order_by(*_window_ordering(queryset))[offset : offset + limit + 1]
    )
    return records[:limit], len(records) > limit


def lead_kanban_cards(
    *,
    user: Actor,
    stage: Stage,
    filters: Filters = None,
    offset: int = 0,
    limit: int = KANBAN_DEFAULT_LIMIT,
) -> tuple[list[Lead], bool]:
    """The leads of one column of the leads board beyond its first cards (see pipeline_kanban_cards)."""
    return pipeline_kanban_cards(
        queryset=lead_list(user=user, filters=filters), stage=stage, offset=offset, limit=limit
    )


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


# What converting a lead reuses instead of creating (sales.services.lead_convert, and the admin's
# convert page that says beforehand what will happen): one rule for both.
def conversion_account_match(lead: Lead) -> Account | None:
    """The account named like the lead's company (case-insensitive, the oldest), if any."""
    name = lead.company_name.strip()
    return Account.objects.filter(name__iexact=name).order_by("id").first() if name else None


def conversion_contact_match(lead: Lead) -> Contact | None:
    """The contact with the lead's email (case-insensitive, the oldest), if any."""
    email = lead.email.strip()
    if not email:
        return None
    return Contact.objects.filter(email__iexact=email).select_related("account").order_by("id").first()
