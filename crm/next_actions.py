"""Next best action: a ranked short list of what to do next on each open lead and deal, and why.

Each app registers the rules over the records it knows (crm: leads; sales: deals and their quotes;
activities: overdue tasks and meetings without a follow-up, on both) with ``register_next_action_rule``.
A rule is small: the values it needs as annotations, the SQL condition under which it fires, its weight,
and a function that words the action for one record. Every rule of a kind of record is read in the same
query, so a page of records (one record's page, the API, the dashboard's "my next actions") costs one
query per kind of record, whatever the number of rules.

The app that owns a kind of record registers where its open records come from
(``register_next_action_source``: visibility applied, what the rules word with joined), and the app that
owns activities registers how "log a call" or "schedule a task" links are made
(``register_next_action_link``), so crm names neither.
"""

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from django.db.models import Case, IntegerField, Model, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from crm.actors import Actor

# How many actions a record's list keeps, and the most "my next actions" answers.
PER_RECORD = 5
MINE_MAX = 50
# How many of a user's open records of each kind "my next actions" reads (the quietest first).
MINE_SCAN = 100


@dataclass(frozen=True)
class NextAction:
    """One thing to do on a record: why (``reason``), what (``label``), how (``kind``, ``url``)."""

    rule: str
    reason: str
    label: str
    # call, meeting, task (links made by the activities app), open, edit, assign, send_quote,
    # revise_quote, mark_won
    kind: str
    url: str = ""
    priority: int = 0  # the rule's weight (set from it): higher first
    urgency: float = 0  # within one priority, larger first (days overdue, days quiet)
    target_type: str = ""  # what the action is about besides the record ("activity", "quote")
    target_id: int | None = None


@dataclass(frozen=True)
class Context:
    user: Actor
    now: datetime.datetime
    # What the rules of one call share (a visibility rule read once for all of them): ``remember``.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def remember(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    @property
    def today(self) -> datetime.date:
        return timezone.localdate(self.now)


@dataclass(frozen=True)
class NextActionRule:
    key: str
    weight: int
    # (context) -> {annotation name: expression}; names start with "nba_" and are the rule's own
    annotations: Callable[[Context], dict[str, Any]]
    # (context) -> when the rule fires, over the record's fields and the annotations
    condition: Callable[[Context], Q]
    # (record, context) -> the action (the condition held), or None after all
    action: Callable[[Model, Context], NextAction | None]


@dataclass(frozen=True)
class NextActionSource:
    model_label: str  # "crm.lead"
    record_type: str  # its name in the API ("lead")
    permission: str  # what reading it needs ("crm.view_lead")
    # (user) -> the open records ``user`` sees, with what the rules word with joined
    open_records: Callable[[Actor], QuerySet]


@dataclass
class RecordActions:
    record: Model
    record_type: str
    actions: list[NextAction] = field(default_factory=list)

    @property
    def record_url(self) -> str:
        return record_admin_url(self.record)


_rules: dict[str, list[NextActionRule]] = {}
_sources: dict[str, NextActionSource] = {}
# kind -> (record, action, user) -> url ("" when the user may not do it there)
_links: dict[str, Callable[..., str]] = {}


def register_next_action_rule(model_label: str, rule: NextActionRule) -> None:
    rules = _rules.setdefault(model_label.lower(), [])
    rules[:] = [existing for existing in rules if existing.key != rule.key] + [rule]


def register_next_action_source(source: NextActionSource) -> None:
    _sources[source.model_label.lower()] = source


def register_next_action_link(kind: str, builder: Callable[..., str]) -> None:
    _links[kind] = builder


def next_action_rules(model_label: str) -> list[NextActionRule]:
    return list(_rules.get(model_label.lower(), ()))


def next_action_sources() -> list[NextActionSource]:
    return list(_sources.values())


def record_admin_url(record: Model) -> str:
    opts = record._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[record.pk])
    except NoReverseMatch:
        return ""


def _flag(rule: NextActionRule) -> str:
    return f"nba_fires_{rule.key}"


def _annotated(queryset: QuerySet, rules: list[NextActionRule], context: Context) -> QuerySet:
    """``queryset`` with every rule's values and, per rule, its weight where it fires (else 0)."""
    for rule in rules:
        queryset = queryset.annotate(**rule.annotations(context))
    flags = {
        _flag(rule): Case(
            When(rule.condition(context), then=Value(rule.weight)),
            default=Value(0),
            output_field=IntegerField(),
        )
        for rule in rules
    }
    return queryset.annotate(**flags)


def _actions_of(record: Model, rules: list[NextActionRule], context: Context) -> list[NextAction]:
    """The record's actions, ranked, one per kind (the more pressing reason wins), links made."""
    found = []
    for rule in rules:
        if getattr(record, _flag(rule)):
            action = rule.action(record, context)
            if action is not None:
                found.append(replace(action, priority=rule.weight))
    found.sort(key=lambda action: (-action.priority, -action.urgency, action.rule))
    kept, kinds = [], set()
    for action in found:
        if action.kind in kinds:
            continue
        kinds.add(action.kind)
        kept.append(_linked(record, action, context.user))
    return kept[:PER_RECORD]


def _linked(record: Model, action: NextAction, user: Actor) -> NextAction:
    if action.url:
        return action
    builder = _links.get(action.kind)
    url = builder(record=record, action=action, user=user) if builder else ""
    return replace(action, url=url or record_admin_url(record))


def _source(model_label: str) -> NextActionSource:
    try:
        return _sources[model_label.lower()]
    except KeyError:
        raise LookupError(f"No app registered next actions for {model_label}.") from None


def next_actions_for(
    *, user: Actor, model_label: str, ids: Iterable[int], now: datetime.datetime | None = None
) -> dict[int, RecordActions]:
    """The actions of each of ``ids`` that is open and that ``user`` sees (one query for the page);
    a closed or hidden record is absent."""
    source = _source(model_label)
    context = Context(user=user, now=now or timezone.now())
    rules = next_action_rules(model_label)
    ids = list(ids)
    if not ids:
        return {}
    records = source.open_records(user).filter(pk__in=ids)
    if not rules:
        return {record.pk: RecordActions(record, source.record_type) for record in records}
    return {
        record.pk: RecordActions(record, source.record_type, _actions_of(record, rules, context))
        for record in _annotated(records, rules, context)
    }


def next_actions_of(*, user: Actor, record: Model, now: datetime.datetime | None = None) -> list[NextAction]:
    """One record's actions, ranked; [] when it is closed or hidden from ``user``."""
    found = next_actions_for(user=user, model_label=record._meta.label_lower, ids=[record.pk], now=now)
    return found[record.pk].actions if record.pk in found else []


def next_actions_mine(
    *, user: Actor, limit: int = 10, now: datetime.datetime | None = None
) -> list[RecordActions]:
    """``user``'s own open records (those they own, of the kinds they may read) whose actions are the
    most pressing, each with its best action first; at most ``limit`` records. Two queries per kind
    (one where the user owns none): the records untouched the longest, then the rules over them; the
    records where a rule fires come first, the weightiest first."""
    context = Context(user=user, now=now or timezone.now())
    limit = max(1, min(limit, MINE_MAX))
    found: list[RecordActions] = []
    for model_label, source in _sources.items():
        rules = next_action_rules(model_label)
        if not rules or not user.has_perm(source.permission):
            continue
        # The rules are read over the user's MINE_SCAN records untouched the longest, not over all of
        # them: a rep with a thousand open leads would otherwise wait seconds for the dashboard.
        # Read first, on their own: a user who owns none of them (a manager, an admin) costs one
        # small query rather than the rules' SQL, which takes longer to compile than to run.
        scanned = list(
            source.open_records(user)
            .filter(owner=user)
            .order_by(Coalesce("last_activity_at", "created_at").asc(), "pk")
            .values_list("pk", flat=True)[:MINE_SCAN]
        )
        if not scanned:
            continue
        records = _annotated(source.open_records(user).filter(pk__in=scanned).order_by(), rules, context)
        # Ranked here, not by the database: a rank column, its WHERE and its ORDER BY would each repeat
        # every rule's SQL, and compiling that took longer than the query and these 100 rows.
        flags = [_flag(rule) for rule in rules]
        ranked = sorted(
            ((max(getattr(record, flag) for flag in flags), record) for record in records),
            key=lambda item: (-item[0], item[1].updated_at, item[1].pk),
        )
        for record in [record for rank, record in ranked if rank > 0][:limit]:
            actions = _actions_of(record, rules, context)
            if actions:
                found.append(RecordActions(record, source.record_type, actions))
    found.sort(key=lambda item: (-item.actions[0].priority, -item.actions[0].urgency, item.record_type))
    return found[:limit]


def days_since(moment: datetime.datetime | datetime.date | None, context: Context) -> int:
    """Whole days from ``moment`` to now (0 for a moment to come)."""
    if moment is None:
        return 0
    if isinstance(moment, datetime.datetime):
        return max(0, (context.now - moment).days)
    return max(0, (context.today - moment).days)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
