"""Predictive win probability: naive Bayes over the won and lost history of each pipeline.

Every pipeline has one ``WinModel`` per kind of record (leads, opportunities) holding how many
closed records were won and lost and, per variable, how many won and lost records had each value.
An open record's ``automated_probability`` is read from its pipeline's model when it is shown:

    P(won | x) = P(won) · Π P(x_i | won) / (P(won) · Π P(x_i | won) + P(lost) · Π P(x_i | lost))

with add-one (Laplace) smoothing everywhere:

- prior: P(won) = (won + 1) / (won + lost + 2);
- a categorical variable with the value v: P(v | won) = (won records with v + 1) / (won + k), k the
  number of values the variable took in this pipeline's closed history. A value the history never
  saw (a new owner, a stage nobody closed from) tells nothing and is left out. An empty value (no
  owner, no source, an opportunity without an account) is a value of its own;
- tags: every tag seen on a closed record is a yes/no variable (Bernoulli), P(has t | won) =
  (won records with t + 1) / (won + 2); a record that lacks the tag counts 1 − that.

Variables: leads use stage, source, priority, rating and owner (a lead has no industry: it has no
account until converted); opportunities use stage, priority, the industry of their account and
owner (an opportunity has no source or rating of its own). Both use their tags. The stage of a
closed record is the stage it closed from (the won and lost stages themselves say nothing about an
open record): its current stage when that is an open one, else the stage it left when it entered
its won or lost stage, from its stage history; "" when unknown.

A converted lead counts as won, a lost one as lost; an opportunity counts as won or lost. The
services keep the models current in the same transaction as the change (``win_counts_change``):
closing counts a record in, reopening takes it out, editing or deleting a closed record moves its
counts, and so does changing the industry of (or merging) the account of closed opportunities, or
deleting a tag or a user that closed records carry (``record_delete``). Every door (API, admin,
import, merge, convert) goes through these services: tests/crm/test_win_probability_doors.py checks
each against a rebuild.
Imports do the same for the rows they write (a large file rebuilds instead); the seeder rebuilds
the models, and the ``crm_recompute_win_probabilities`` command rebuilds them from the whole
history with a few grouped queries. Below ``CRM_WIN_MODEL_MIN_CLOSED`` closed records in the
pipeline there is no estimate, only a note that says why.
"""

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from django.apps import apps
from django.conf import settings
from django.db import models, router, transaction
from django.db.models import Case, Count, F, OuterRef, Subquery, When

from crm.models import LeadStatus, Pipeline, WinModel, WinModelKind
from crm.selectors.annotations import record_tags

TAGS = "tags"
WON, LOST = 0, 1


@dataclass(frozen=True)
class KindSpec:
    kind: str
    model_label: str
    noun: str
    plural: str
    won_status: str
    lost_status: str
    variables: tuple[str, ...]

    @property
    def model(self) -> type[models.Model]:
        # Looked up by label: the kinds of the apps above crm are registered by them.
        return apps.get_model(self.model_label)

    @property
    def closed_statuses(self) -> tuple[str, str]:
        return self.won_status, self.lost_status


LEAD = KindSpec(
    kind=WinModelKind.LEAD,
    model_label="crm.Lead",
    noun="lead",
    plural="leads",
    won_status=LeadStatus.CONVERTED,
    lost_status=LeadStatus.LOST,
    variables=("stage", "source", "priority", "rating", "owner"),
)
# The kinds of record with a model: leads here, opportunities registered by sales (register_win_kind).
SPECS: list[KindSpec] = [LEAD]


def register_win_kind(spec: KindSpec) -> None:
    if all(known.kind != spec.kind for known in SPECS):
        SPECS.append(spec)


def account_deal_kind() -> KindSpec | None:
    """The kind whose records count their account's industry (sales' opportunities); None when no app
    registered one."""
    return next((spec for spec in SPECS if "industry" in spec.variables), None)


def spec_for(record_or_model) -> KindSpec | None:
    """The kind of a lead or an opportunity (instance or class); None for any other model."""
    label = record_or_model._meta.label_lower
    return next((spec for spec in SPECS if spec.model_label.lower() == label), None)


def min_closed() -> int:
    return settings.CRM_WIN_MODEL_MIN_CLOSED


def _value(value) -> str:
    return "" if value is None else str(value)


# --- the estimate: pure arithmetic on a model's counts -----------------------------------------------


def tag_terms(won: int, lost: int, counts: dict) -> list[tuple[str, float, float, float, float]]:
    """What each tag of a model adds to the log-odds: (tag, log P(tag|won), log P(tag|lost),
    log P(no tag|won), log P(no tag|lost)), in the model's order. The same for every record the
    model estimates: a page works them out once a model (``win_models_by_pipeline``), not once a row."""
    terms = []
    for tag, (won_with, lost_with) in (counts.get(TAGS) or {}).items():
        p_won = (won_with + 1) / (won + 2)
        p_lost = (lost_with + 1) / (lost + 2)
        terms.append((tag, math.log(p_won), math.log(p_lost), math.log(1 - p_won), math.log(1 - p_lost)))
    return terms


def win_probability(
    *,
    won: int,
    lost: int,
    counts: dict,
    values: dict[str, str],
    tags: Iterable[str],
    terms: list[tuple[str, float, float, float, float]] | None = None,
) -> float:
    """P(won | values, tags) under naive Bayes with add-one smoothing (see the module docstring).
    ``terms``: ``tag_terms`` of the same counts, when the caller has them."""
    log_won = math.log((won + 1) / (won + lost + 2))
    log_lost = math.log((lost + 1) / (won + lost + 2))
    for variable, value in values.items():
        table = counts.get(variable) or {}
        if value not in table:
            continue
        k = len(table)
        won_with, lost_with = table[value]
        log_won += math.log((won_with + 1) / (won + k))
        log_lost += math.log((lost_with + 1) / (lost + k))
    tags = set(tags)
    for tag, with_won, with_lost, without_won, without_lost in (
        tag_terms(won, lost, counts) if terms is None else terms
    ):
        if tag in tags:
            log_won += with_won
            log_lost += with_lost
        else:
            log_won += without_won
            log_lost += without_lost
    return 1 / (1 + math.exp(log_lost - log_won))


@dataclass(frozen=True)
class WinEstimate:
    probability: int | None
    note: str | None


def record_values(spec: KindSpec, record) -> dict[str, str]:
    """The variables of an open record as its model counts them (its current stage, owner...)."""
    values = {}
    for variable in spec.variables:
        if variable == "stage":
            value = record.stage_id
        elif variable == "owner":
            value = record.owner_id
        elif variable == "industry":
            value = record.account.industry if record.account_id else None
        else:
            value = getattr(record, variable)
        values[variable] = _value(value)
    return values


def row_values(spec: KindSpec, row: dict) -> dict[str, str]:
    """``record_values`` of a record read as a ``.values()`` row (stage_id, owner_id... as keys)."""
    values = {}
    for variable in spec.variables:
        key = {"stage": "stage_id", "owner": "owner_id", "industry": "account__industry"}.get(
            variable, variable
        )
        values[variable] = _value(row[key])
    return values


def win_estimate(record, win_models: dict[int, WinModel]) -> WinEstimate:
    """The automated probability of ``record`` (0–100) from its pipeline's model in ``win_models``
    (``win_models_by_pipeline``), or None with a note saying why there is none."""
    spec = spec_for(record)
    if record.status != LeadStatus.OPEN:  # the same "open" value as OpportunityStatus.OPEN
        return closed_estimate(spec, record.get_status_display())
    return open_estimate(
        spec,
        win_models.get(record.pipeline_id),
        values=record_values(spec, record),
        tag_ids=(tag.pk for tag in record_tags(record)),
    )


def closed_estimate(spec: KindSpec, status_label: str) -> WinEstimate:
    """The estimate of a record that is not open (none, and why), ``status_label`` its status shown."""
    return WinEstimate(
        None, f"This {spec.noun} is {status_label.lower()}: only open {spec.plural} get an estimate."
    )


def open_estimate(
    spec: KindSpec, model: WinModel | None, *, values: dict[str, str], tag_ids: Iterable
) -> WinEstimate:
    """The estimate of an open record from its pipeline's ``model`` (None: no history), its variables'
    values (``record_values``) and its tags' ids: for a page read as rows, not as instances."""
    closed = model.closed if model is not None else 0
    needed = min_closed()
    if closed < needed:
        noun = spec.noun if closed == 1 else spec.plural
        return WinEstimate(
            None, f"Not enough history: {closed} closed {noun} in this pipeline, {needed} needed."
        )
    probability = win_probability(
        won=model.won,
        lost=model.lost,
        counts=model.counts,
        values=values,
        tags=(str(pk) for pk in tag_ids),
        terms=model.__dict__.get(_TERMS),
    )
    return WinEstimate(round(probability * 100), None)


# Where a model read for estimating keeps its ``tag_terms`` (a model being counted has none).
_TERMS = "_tag_terms"


def _for_estimates(models: Iterable[WinModel]) -> dict[int, WinModel]:
    """``models`` by pipeline, each with its ``tag_terms`` worked out: read to estimate records, not
    changed afterwards."""
    by_pipeline = {}
    for model in models:
        setattr(model, _TERMS, tag_terms(model.won, model.lost, model.counts))
        by_pipeline[model.pipeline_id] = model
    return by_pipeline


def win_models_by_pipeline(kind: str) -> dict[int, WinModel]:
    """Every pipeline's model of ``kind``, in one query (there are as many as pipelines), compiled once
    per database and thread (crm.prepared): every page of leads or deals reads it."""
    from crm.prepared import prepared

    db = router.db_for_read(WinModel)
    query = prepared(
        (WinModel, "by-pipeline", db),
        lambda key: WinModel.objects.using(db).filter(kind=key).order_by(),
        text=True,
    )
    return _for_estimates(query.instances(kind) if query is not None else WinModel.objects.filter(kind=kind))


def win_models_context(record) -> dict:
    """What ``win_estimate_cached`` keeps in its ``cache_holder`` for one record: the model of the
    record's pipeline only (none is read for a closed record), by a prepared statement."""
    from crm.prepared import prepared

    spec = spec_for(record)
    if record.status != LeadStatus.OPEN:
        return {f"_win_models_{spec.kind}": {}}
    db = router.db_for_read(WinModel)
    query = prepared(
        (WinModel, spec.kind, db),
        lambda key: WinModel.objects.using(db).filter(kind=spec.kind, pipeline_id=key).order_by(),
    )
    if query is None:
        return {}
    return {f"_win_models_{spec.kind}": _for_estimates(query.instances(record.pipeline_id))}


def win_estimate_cached(record, cache_holder: dict) -> WinEstimate:
    """``win_estimate`` with the models loaded once per ``cache_holder`` (a serializer's context, a
    request's attributes): a page of records costs one query for the models, whatever its size."""
    return win_estimate(record, win_models_cached(spec_for(record), cache_holder))


def win_models_cached(spec: KindSpec, cache_holder: dict) -> dict[int, WinModel]:
    """``win_models_by_pipeline`` of ``spec``'s kind, read once per ``cache_holder``."""
    key = f"_win_models_{spec.kind}"
    if key not in cache_holder:
        cache_holder[key] = win_models_by_pipeline(spec.kind)
    return cache_holder[key]


# --- what the closed history holds: the same queries for one record and for the whole table --------


def _stage_at_close(model: type[models.Model]):
    """The stage a closed record closed from: its own when it is open, else the stage it left when it
    entered the won or lost stage it is in (its latest move into it)."""
    history = model._meta.get_field("stage_changes").related_model
    left_for_current = (
        history.objects.filter(record=OuterRef("pk"), to_stage=OuterRef("stage_id"))
        .order_by("-changed_at", "-id")
        .values("from_stage_id")[:1]
    )
    return Case(
        When(stage__is_won=False, stage__is_lost=False, then=F("stage_id")),
        default=Subquery(left_for_current),
        output_field=models.BigIntegerField(),
    )


def _expression(spec: KindSpec, variable: str):
    if variable == "stage":
        return _stage_at_close(spec.model)
    if variable == "owner":
        return F("owner_id")
    if variable == "industry":
        return F("account__industry")
    return F(variable)


def _closed_rows(spec: KindSpec):
    """The closed records of ``spec`` with their variables annotated as ``wp_<variable>``."""
    queryset = spec.model._default_manager.filter(status__in=spec.closed_statuses)
    return queryset.annotate(**{f"wp_{v}": _expression(spec, v) for v in spec.variables})


@cache
def _tag_link(spec: KindSpec) -> tuple[type[models.Model], str, str]:
    """(through model, record field, tag field) of ``spec``'s tags."""
    relation = spec.model._meta.get_field("tags")
    return relation.remote_field.through, relation.m2m_field_name(), relation.m2m_reverse_field_name()


def _tag_rows(spec: KindSpec):
    through, record, tag = _tag_link(spec)
    return through.objects.filter(**{f"{record}__status__in": spec.closed_statuses}), record, tag


@dataclass(frozen=True)
class Snapshot:
    """How one closed record counts in its pipeline's model."""

    pipeline_id: int
    side: int  # WON or LOST
    values: tuple[tuple[str, str], ...]
    tags: tuple[str, ...]


SNAPSHOT_CHUNK = 1000


def win_snapshots(spec: KindSpec, pks: Iterable[int]) -> list[Snapshot]:
    """The snapshots of the closed records among ``pks``, read from the database (2 queries per
    thousand records)."""
    pks = list(pks)
    if len(pks) > SNAPSHOT_CHUNK:
        return [
            snapshot
            for start in range(0, len(pks), SNAPSHOT_CHUNK)
            for snapshot in win_snapshots(spec, pks[start : start + SNAPSHOT_CHUNK])
        ]
    if not pks:
        return []
    wp = [f"wp_{v}" for v in spec.variables]
    rows = list(_closed_rows(spec).filter(pk__in=pks).values("pk", "pipeline_id", "status", *wp))
    if not rows:
        return []
    links, record, tag = _tag_rows(spec)
    tags = defaultdict(list)
    for record_id, tag_id in links.filter(**{f"{record}_id__in": [row["pk"] for row in rows]}).values_list(
        f"{record}_id", f"{tag}_id"
    ):
        tags[record_id].append(str(tag_id))
    return [
        Snapshot(
            pipeline_id=row["pipeline_id"],
            side=WON if row["status"] == spec.won_status else LOST,
            values=tuple((v, _value(row[f"wp_{v}"])) for v in spec.variables),
            tags=tuple(sorted(tags[row["pk"]])),
        )
        for row in rows
    ]


def win_snapshots_of(record) -> list[Snapshot]:
    """``record``'s snapshot if it is a closed lead or opportunity (no query for an open one)."""
    spec = spec_for(record)
    if spec is None or record.pk is None or record.status not in spec.closed_statuses:
        return []
    return win_snapshots(spec, [record.pk])


def win_account_deals(account_pks: Iterable[int]) -> list[int]:
    """The closed opportunities of these accounts: an opportunity's industry is its account's, so
    changing an account's industry (or merging accounts) moves their counts."""
    spec = account_deal_kind()
    if spec is None:
        return []
    return list(
        spec.model._default_manager.filter(
            account_id__in=list(account_pks), status__in=spec.closed_statuses
        ).values_list("pk", flat=True)
    )


def win_snapshots_of_account_deals(account_pks: Iterable[int]) -> tuple[list[int], list[Snapshot]]:
    """``win_account_deals`` and their snapshots."""
    pks = win_account_deals(account_pks)
    return pks, win_snapshots(account_deal_kind(), pks) if pks else []


def win_snapshots_before_delete(instance) -> list[tuple[KindSpec, list[int], list[Snapshot]]]:
    """Before ``instance`` (any record) is deleted: the closed leads and opportunities whose counts the
    delete changes without saving them (they carry it as a tag, or name it in a SET_NULL relation:
    an account, an owner), with their snapshots. ``win_counts_after_delete`` moves their counts."""
    found = []
    for spec in SPECS:
        through, record, tag = _tag_link(spec)
        links = []
        if isinstance(instance, spec.model._meta.get_field("tags").related_model):
            links.append(
                models.Q(pk__in=through.objects.filter(**{f"{tag}_id": instance.pk}).values(f"{record}_id"))
            )
        for field in spec.model._meta.concrete_fields:
            if (
                field.many_to_one
                and isinstance(instance, field.related_model)
                and field.remote_field.on_delete is models.SET_NULL
            ):
                links.append(models.Q(**{field.attname: instance.pk}))
        if not links:
            continue
        condition = links[0]
        for link in links[1:]:
            condition |= link
        pks = list(
            spec.model._default_manager.filter(condition, status__in=spec.closed_statuses).values_list(
                "pk", flat=True
            )
        )
        if pks:
            found.append((spec, pks, win_snapshots(spec, pks)))
    return found


def win_counts_after_delete(before: list[tuple[KindSpec, list[int], list[Snapshot]]]) -> None:
    for spec, pks, snapshots in before:
        win_counts_change(kind=spec.kind, removed=snapshots, added=win_snapshots(spec, pks))


# --- keeping the models current ---------------------------------------------------------------------


def _add(model: WinModel, snapshot: Snapshot, sign: int) -> None:
    """Count ``snapshot`` in (sign 1) or out (sign -1) of ``model``. Counts never go below zero: a
    model that missed a record (written around the services) is put right by a rebuild."""
    if snapshot.side == WON:
        model.won = max(0, model.won + sign)
    else:
        model.lost = max(0, model.lost + sign)
    cells = [*((variable, value) for variable, value in snapshot.values), *((TAGS, t) for t in snapshot.tags)]
    for variable, value in cells:
        table = model.counts.setdefault(variable, {})
        cell = table.setdefault(value, [0, 0])
        cell[snapshot.side] = max(0, cell[snapshot.side] + sign)
        if cell == [0, 0]:
            del table[value]
        if not table:
            del model.counts[variable]


@transaction.atomic
def win_counts_change(*, kind: str, removed: list[Snapshot], added: list[Snapshot]) -> None:
    """Take ``removed`` out of their pipelines' models and count ``added`` in, under row locks.

    A pipeline without a model yet gets one built from its whole history (which already includes
    this change, as it reads the transaction's own writes) instead of counting from zero.
    """
    removed_counter, added_counter = Counter(removed), Counter(added)
    if removed_counter == added_counter:
        return
    changes: dict[int, list[tuple[Snapshot, int]]] = defaultdict(list)
    for snapshot in removed:
        changes[snapshot.pipeline_id].append((snapshot, -1))
    for snapshot in added:
        changes[snapshot.pipeline_id].append((snapshot, 1))
    spec = next(spec for spec in SPECS if spec.kind == kind)
    for pipeline_id in sorted(changes):
        model = WinModel.objects.select_for_update().filter(pipeline_id=pipeline_id, kind=kind).first()
        if model is None:
            win_models_rebuild(kinds=[spec], pipeline_ids=[pipeline_id])
            continue
        for snapshot, sign in changes[pipeline_id]:
            _add(model, snapshot, sign)
        model.save(update_fields=["won", "lost", "counts", "updated_at"])


def win_counts_record_change(record, before: list[Snapshot]) -> None:
    """After a service saved ``record``: move its counts from ``before`` (its snapshot taken before the
    save, ``win_snapshots_of``) to what it is now."""
    spec = spec_for(record)
    if spec is None:
        return
    after = win_snapshots_of(record)
    if before or after:
        win_counts_change(kind=spec.kind, removed=before, added=after)


# Above this many rows a bulk write (an import) rebuilds the models instead of snapshotting each row:
# a rebuild reads the whole closed history once (seconds at a million leads), snapshots cost two
# queries per thousand rows.
BULK_INCREMENTAL_LIMIT = 20_000


def win_counts_before_bulk_write(
    spec: KindSpec, *, existing_pks: list[int], total: int
) -> list[Snapshot] | None:
    """Before a bulk write of ``total`` rows that changes the records ``existing_pks``: their snapshots,
    or None when the write is big enough that ``win_counts_after_bulk_write`` should rebuild."""
    if total > BULK_INCREMENTAL_LIMIT:
        return None
    return win_snapshots(spec, existing_pks)


def win_counts_after_bulk_write(
    spec: KindSpec, *, before: list[Snapshot] | None, written_pks: list[int]
) -> None:
    if before is None:
        win_models_rebuild(kinds=[spec])
        return
    after = win_snapshots(spec, written_pks)
    if before or after:
        win_counts_change(kind=spec.kind, removed=before, added=after)


@transaction.atomic
def win_models_rebuild(
    *, kinds: Iterable[KindSpec] = SPECS, pipeline_ids: Iterable[int] | None = None
) -> list[WinModel]:
    """Rebuild the models of ``kinds`` for ``pipeline_ids`` (default: every pipeline) from the whole
    closed history: one grouped query over the records and one over their tags per kind.

    The models' rows are locked first, so a record closing meanwhile waits and then counts itself
    in on top of the rebuilt figures.
    """
    pipelines = Pipeline.objects.order_by("pk")
    if pipeline_ids is not None:
        pipelines = pipelines.filter(pk__in=list(pipeline_ids))
    ids = list(pipelines.values_list("pk", flat=True))
    rebuilt = []
    for spec in kinds:
        # In pipeline order, as win_counts_change locks them: two lockers never wait on each other.
        locked = WinModel.objects.select_for_update().filter(kind=spec.kind, pipeline_id__in=ids)
        list(locked.order_by("pipeline_id"))
        models_by_pipeline = {pk: WinModel(pipeline_id=pk, kind=spec.kind, counts={}) for pk in ids}
        wp = [f"wp_{v}" for v in spec.variables]
        records = _closed_rows(spec)
        links, record, tag = _tag_rows(spec)
        if pipeline_ids is not None:
            records = records.filter(pipeline_id__in=ids)
            links = links.filter(**{f"{record}__pipeline_id__in": ids})
        groups = records.values("pipeline_id", "status", *wp).annotate(n=Count("pk")).order_by()
        for row in groups:
            model, side, n = models_by_pipeline[row["pipeline_id"]], _side(spec, row["status"]), row["n"]
            if side == WON:
                model.won += n
            else:
                model.lost += n
            for variable in spec.variables:
                cell = model.counts.setdefault(variable, {}).setdefault(_value(row[f"wp_{variable}"]), [0, 0])
                cell[side] += n
        tag_groups = (
            links.values(f"{record}__pipeline_id", f"{record}__status", f"{tag}_id")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for row in tag_groups:
            model = models_by_pipeline[row[f"{record}__pipeline_id"]]
            cell = model.counts.setdefault(TAGS, {}).setdefault(str(row[f"{tag}_id"]), [0, 0])
            cell[_side(spec, row[f"{record}__status"])] += row["n"]
        for model in models_by_pipeline.values():
            saved, _ = WinModel.objects.update_or_create(
                pipeline_id=model.pipeline_id,
                kind=spec.kind,
                defaults={"won": model.won, "lost": model.lost, "counts": model.counts},
            )
            rebuilt.append(saved)
    return rebuilt


def _side(spec: KindSpec, status: str) -> int:
    return WON if status == spec.won_status else LOST
