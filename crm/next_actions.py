"""Next best action: a ranked short list of what to do next on each open lead and deal, and why.

Each app registers the rules over the records it knows (crm: leads; sales: deals and their quotes;
activities: overdue tasks and meetings without a follow-up, on both) with ``register_next_action_rule``.
A rule is small: the values it needs as annotations, the condition under which it fires, its weight,
and a function that words the action for one record. Every rule's values for a kind of record are read in
the same query, so a page of records (one record's page, the API, the dashboard's "my next actions") costs
one query per kind of record, whatever the number of rules. The condition is a Q object of plain lookups
on those values and the record's fields, asked of the values read (``fires``, with SQL's answer for
NULL): as a CASE in the query it repeated each annotation it named, subqueries and all.

The app that owns a kind of record registers where its open records come from
(``register_next_action_source``: visibility applied, what the rules word with joined), and the app that
owns activities registers how "log a call" or "schedule a task" links are made
(``register_next_action_link``), so crm names neither.
"""

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from django.db.models import DateTimeField, Field, Model, Q, QuerySet
from django.db.models.functions import Coalesce
from django.urls import NoReverseMatch
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crm.actors import Actor
from crm.admin_links import admin_change_url

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
    # (context) -> when the rule fires: a Q of exact, isnull, lt, lte, gt, gte or in lookups on the
    # record's own fields and the annotations, combined with &, | and ~
    condition: Callable[[Context], Q]
    # (record, context) -> the action (the condition held), or None after all
    action: Callable[[Model, Context], NextAction | None]
    # {name: where in an annotation that is a JSON object}: the values the condition and the action read
    # besides the annotations. Several values of one related row read as one JSON object cost one
    # subquery, not one per value, to build, compile and run.
    parts: dict[str, "JSONPart"] = field(default_factory=dict)


@dataclass(frozen=True)
class JSONPart:
    """A value a rule reads inside one of its annotations that is a JSON object: its ``key``, typed as
    ``output_field`` (JSON has no dates, and SQLite writes a truth as 1 or 0)."""

    annotation: str
    key: str
    output_field: Field

    def read(self, values: dict[str, Any]) -> Any:
        """The value in ``values`` (the annotations' values as read, by name); None where it is."""
        raw = (values[self.annotation] or {}).get(self.key)
        if raw is None:
            return None
        if isinstance(self.output_field, DateTimeField):
            return json_datetime(raw)
        return self.output_field.to_python(raw)


@dataclass(frozen=True)
class NextActionSource:
    model_label: str  # "crm.lead"
    record_type: str  # its name in the API ("lead")
    permission: str  # what reading it needs ("crm.view_lead")
    # (user) -> the open records ``user`` sees, with what the rules word with joined
    open_records: Callable[[Actor], QuerySet]
    # (user) -> the open records ``user`` owns, joined alike (``crm.selectors.owned_records_owned_by``:
    # each is one ``open_records`` gives, read without the visibility rule): what "my next actions"
    # reads. Without it, ``open_records`` narrowed to the user's.
    owned_open_records: Callable[[Actor], QuerySet] | None = None


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
    try:
        return admin_change_url(record._meta, record.pk)
    except NoReverseMatch:
        return ""


def _annotations(rules: list[NextActionRule], context: Context) -> dict[str, Any]:
    """Every rule's annotations. Whether a rule fires is asked of the values read (``fires``), not of
    the database: a CASE per rule would repeat in SQL each annotation its condition names, subqueries
    and all, to compile and to run."""
    return {name: value for rule in rules for name, value in rule.annotations(context).items()}


def _parts(rules: list[NextActionRule], values: dict[str, Any]) -> dict[str, Any]:
    """The rules' values read inside their JSON annotations, by name, from ``values`` (the
    annotations' values as read)."""
    return {name: part.read(values) for rule in rules for name, part in rule.parts.items()}


class UnsupportedCondition(ValueError):
    """A rule's condition that ``fires`` cannot ask of values read: a join, an expression, a lookup it
    does not know."""


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "exact": lambda value, other: value == other,
    "lt": lambda value, other: value < other,
    "lte": lambda value, other: value <= other,
    "gt": lambda value, other: value > other,
    "gte": lambda value, other: value >= other,
    "in": lambda value, other: value in other,
}


def fires(condition: Q, value: Callable[[str], Any]) -> bool:
    """Whether ``condition`` holds of a record whose field or annotation ``name`` is ``value(name)``,
    as SQL would answer it: a comparison with NULL is unknown, and unknown is not a yes."""
    return compile_condition(condition)(value) is True


Truth = Callable[[Callable[[str], Any]], bool | None]


def compile_condition(condition: Q) -> Truth:
    """``condition`` as a function of a record's values (``value(name)``) answering SQL's three-valued
    truth: True, False or None (unknown). Built once per call for every record asked: walking the Q
    object again for each of a hundred records cost more than reading them. A lookup the values cannot
    answer is refused here (``UnsupportedCondition``), before any record is asked."""
    parts = [
        compile_condition(child) if isinstance(child, Q) else _compile_leaf(*child)
        for child in condition.children
    ]
    negated = condition.negated
    # AND: the first False decides, else unknown if any part is, else True; OR the same with True.
    decisive = condition.connector != Q.AND

    def combined(value):
        answer = not decisive
        for part in parts:
            found = part(value)
            if found is decisive:
                return decisive
            if found is None:
                answer = None
        return answer

    if not negated:
        return combined
    return lambda value: None if (answer := combined(value)) is None else not answer


def _compile_leaf(path: str, other: Any) -> Truth:
    name, _, lookup = path.partition("__")
    lookup = lookup or "exact"
    if hasattr(other, "resolve_expression") or (lookup != "isnull" and lookup not in _COMPARISONS):
        raise UnsupportedCondition(f"A next-action condition cannot ask {path}={other!r} of a record.")
    if lookup == "exact" and other is None:  # Django's field=None is IS NULL
        lookup, other = "isnull", True
    if lookup == "isnull":
        wanted = bool(other)
        return lambda value: (value(name) is None) == wanted
    if other is None:
        return lambda value: None
    compare = _COMPARISONS[lookup]

    def leaf(value):
        current = value(name)
        return None if current is None else compare(current, other)

    return leaf


def _record_value(record: Model) -> Callable[[str], Any]:
    """A record's field (a foreign key's id, never its row) or annotation, by name."""
    fields = {field.name: field.attname for field in record._meta.concrete_fields}
    return lambda name: getattr(record, fields.get(name, name))


Conditions = list[tuple[NextActionRule, Q, Truth]]


def _conditions(rules: list[NextActionRule], context: Context) -> Conditions:
    conditions = []
    for rule in rules:
        condition = rule.condition(context)
        conditions.append((rule, condition, compile_condition(condition)))
    return conditions


def _firing(conditions: Conditions, value: Callable[[str], Any]) -> list[NextActionRule]:
    """The rules whose condition holds of the record whose values ``value`` gives."""
    return [rule for rule, _condition, truth in conditions if truth(value) is True]


def _actions_of(record: Model, conditions: Conditions, context: Context) -> list[NextAction]:
    """The record's actions, ranked, one per kind (the more pressing reason wins), links made."""
    found = []
    for rule in _firing(conditions, _record_value(record)):
        action = rule.action(record, context)
        if action is not None:
            found.append(replace(action, priority=rule.weight))
    found.sort(key=lambda action: (-action.priority, -action.urgency, action.rule))
    kept, kinds = [], set()
    for action in found:
        if action.kind in kinds:
            continue
        kinds.add(action.kind)
        kept.append(action)
    # Links are made for the actions kept only: each is a URL or two to reverse.
    return [_linked(record, action, context.user) for action in kept[:PER_RECORD]]


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
    conditions = _conditions(rules, context)
    found = {}
    for record in records.annotate(**_annotations(rules, context)):
        for name, value in _parts(rules, vars(record)).items():
            setattr(record, name, value)
        found[record.pk] = RecordActions(record, source.record_type, _actions_of(record, conditions, context))
    return found


def next_actions_of(*, user: Actor, record: Model, now: datetime.datetime | None = None) -> list[NextAction]:
    """One record's actions, ranked; [] when it is closed or hidden from ``user``."""
    found = next_actions_for(user=user, model_label=record._meta.label_lower, ids=[record.pk], now=now)
    return found[record.pk].actions if record.pk in found else []


def next_actions_mine(
    *, user: Actor, limit: int = 10, now: datetime.datetime | None = None
) -> list[RecordActions]:
    """``user``'s own open records (those they own, of the kinds they may read) whose actions are the
    most pressing, each with its best action first; at most ``limit`` records. Three queries per kind
    (one where the user owns none): the records untouched the longest, the rules' values over them,
    then the records shown; the records where a rule fires come first, the weightiest first."""
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
        mine = (
            source.owned_open_records(user)
            if source.owned_open_records is not None
            else source.open_records(user).filter(owner=user)
        )
        scanned = list(
            mine.order_by(Coalesce("last_activity_at", "created_at").asc(), "pk").values_list(
                "pk", flat=True
            )[:MINE_SCAN]
        )
        if not scanned:
            continue
        # The rules' values of the scanned records are read as values, and whether each rule fires is
        # asked of them: building a hundred records with their related rows cost more than reading
        # them. Only the records shown are built, after, with the values read, and read again still open
        # and the user's: the values are read by key alone, without the joins, which cost more to
        # compile than the hundred keys cost to read.
        annotations = _annotations(rules, context)
        conditions = _conditions(rules, context)
        model = mine.model
        named = {path.partition("__")[0] for _rule, condition, _ in conditions for path in _paths(condition)}
        fields = named & {field.name for field in model._meta.concrete_fields}
        read = (
            model._default_manager.filter(pk__in=scanned)
            .order_by()
            .annotate(**annotations)
            .values("pk", "updated_at", *sorted(fields), *annotations)
        )
        rows = [{**row, **_parts(rules, row)} for row in read]
        ranked = sorted(
            (
                (max(rule.weight for rule in firing), row)
                for row in rows
                if (firing := _firing(conditions, row.__getitem__))
            ),
            key=lambda item: (-item[0], item[1]["updated_at"], item[1]["pk"]),
        )
        shown = {row["pk"]: row for _rank, row in ranked[:limit]}
        records = mine.filter(pk__in=list(shown)).in_bulk()
        for pk, row in shown.items():
            if (record := records.get(pk)) is None:
                continue  # closed or handed over between the two reads
            for name, value in row.items():
                if name not in fields and name not in ("pk", "updated_at"):
                    setattr(record, name, value)
            actions = _actions_of(record, conditions, context)
            if actions:
                found.append(RecordActions(record, source.record_type, actions))
    found.sort(key=lambda item: (-item.actions[0].priority, -item.actions[0].urgency, item.record_type))
    return found[:limit]


def _paths(condition: Q) -> list[str]:
    """The field and annotation paths ``condition`` names ("last_activity_at__lt", ...)."""
    paths = []
    for child in condition.children:
        paths.extend(_paths(child) if isinstance(child, Q) else [child[0]])
    return paths


def days_since(moment: datetime.datetime | datetime.date | None, context: Context) -> int:
    """Whole days from ``moment`` to now (0 for a moment to come)."""
    if moment is None:
        return 0
    if isinstance(moment, datetime.datetime):
        return max(0, (context.now - moment).days)
    return max(0, (context.today - moment).days)


def json_datetime(value: str) -> datetime.datetime:
    """A date and time read back from JSON: PostgreSQL writes its offset, SQLite a UTC time without."""
    moment = parse_datetime(value)
    if moment is None:
        raise ValueError(f"Not a date and time: {value!r}")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, datetime.UTC)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
