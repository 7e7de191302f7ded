"""The automation engine: which rules a trigger fires, their runs, and the execution of their actions.

Event rules are evaluated in the outbox relay (a consumer of every event), never inside the write
that caused the event; time and schedule rules by periodic scans; webhook and manual rules on
request. Each firing is a run row (one per rule and cause), executed by a task: each action in its
own transaction, as the rule's owner or the system, through the services. A failed action is
recorded and, when retrying may help, retried with the run; the rule's ``on_error`` says whether
the remaining actions still run.
"""

import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import BooleanField, Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThan, LessThanOrEqual
from django.utils import timezone

from crm.actors import SYSTEM
from crm.automation.conditions import condition_text, conditions_leaves, conditions_q
from crm.automation.context import running
from crm.automation.registry import AutomatableModel, action_for, automatable_models, model_entry
from crm.automation.triggers import event_triggers
from crm.models import AutomationRule, AutomationRun, OutboxEvent, RunStatus, TriggerKind

logger = logging.getLogger("crm.automation")

PERMANENT_ERRORS = (ValidationError, PermissionDenied, ObjectDoesNotExist, LookupError, TypeError)


class StopRule(Exception):
    """Raised by the "stop" action: the remaining actions do not run."""


class ActionFailed(Exception):
    """A failure retrying may cure (a webhook target answering 500)."""


@dataclass
class ActionContext:
    rule: AutomationRule
    entry: AutomatableModel
    record_id: int | None
    record: dict[str, Any]
    instance: models.Model | None
    user: Any
    params: dict[str, Any]
    run: AutomationRun | None = None
    index: int = 0
    trigger: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def require_instance(self) -> models.Model:
        if self.instance is None:
            raise ObjectDoesNotExist(f"The {self.entry.noun} #{self.record_id} no longer exists.")
        return self.instance


def acting_user(rule: AutomationRule):
    owner = rule.owner
    return owner if owner is not None and owner.is_active else SYSTEM


def _entry_by_event_name(name: str) -> AutomatableModel | None:
    return next((e for e in automatable_models().values() if e.event_name == name), None)


# Compiling the ORM expression of 50 rules' conditions costs far more than running it: the SQL is
# compiled once per set of rules (and their versions) in a process, for a placeholder id that each
# evaluation swaps for the record's.
_compiled: dict[tuple, tuple[str, tuple, list[int]]] = {}
_PLACEHOLDER_ID = -7_319_412_337


def _compiled_conditions(
    entry: AutomatableModel, rules: list[AutomationRule]
) -> tuple[str, tuple, list[int]]:
    key = (entry.label, tuple((rule.pk, rule.updated_at) for rule in rules))
    compiled = _compiled.get(key)
    if compiled is None:
        annotations = {
            f"r{rule.pk}": Case(
                When(conditions_q(entry.model, rule.conditions), then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            )
            for rule in rules
        }
        query = (
            entry.model._default_manager.filter(pk=_PLACEHOLDER_ID)
            .annotate(**annotations)
            .values(*annotations)
        )
        sql, params = query.query.sql_with_params()
        if len(_compiled) >= 256:
            _compiled.clear()
        compiled = _compiled[key] = (sql, tuple(params), [rule.pk for rule in rules])
    return compiled


def conditions_match(entry: AutomatableModel, record_id, rules: list[AutomationRule]) -> list[AutomationRule]:
    """The rules whose conditions hold for the record: one query for all of them."""
    plain = {rule.pk for rule in rules if not rule.conditions}
    needing = [rule for rule in rules if rule.conditions]
    held: set[int] = set()
    if needing and record_id is not None:
        sql, params, pks = _compiled_conditions(entry, needing)
        params = tuple(record_id if type(p) is int and p == _PLACEHOLDER_ID else p for p in params)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row:
            held = {pk for pk, value in zip(pks, row, strict=True) if value}
    return [rule for rule in rules if rule.pk in plain or rule.pk in held]


# --- firing -----------------------------------------------------------------------------------------


def run_create(
    *,
    rule: AutomationRule,
    record_id,
    trigger: str,
    dedup_key: str,
    record: dict | None = None,
    chain: list[int] | tuple[int, ...] = (),
    event_id=None,
) -> AutomationRun | None:
    """A run of ``rule`` for this cause (once: a cause handed over twice makes one run), queued
    after the commit; beyond CRM_AUTOMATION_MAX_DEPTH rules in a chain, a stopped run saying so."""
    stopped = len(chain) >= settings.CRM_AUTOMATION_MAX_DEPTH
    try:
        with transaction.atomic():
            run = AutomationRun.objects.create(
                rule=rule,
                model=rule.model,
                record_id=record_id,
                trigger=trigger[:120],
                dedup_key=dedup_key[:200],
                event_id=event_id,
                chain=list(chain),
                record=record or {},
                status=RunStatus.STOPPED if stopped else RunStatus.QUEUED,
                reason=(
                    f"Not run: a chain of {len(chain)} rules ({', '.join(map(str, chain))}) reached "
                    f"the depth limit CRM_AUTOMATION_MAX_DEPTH={settings.CRM_AUTOMATION_MAX_DEPTH}."
                    if stopped
                    else ""
                ),
                next_attempt_at=None if stopped else timezone.now(),
                finished_at=timezone.now() if stopped else None,
            )
    except IntegrityError:
        return None  # this cause already made its run
    if not stopped:
        run_queue_after_commit(run.pk)
    return run


def run_queue_after_commit(pk: int, countdown: float | None = None) -> None:
    from crm.automation.tasks import automation_run_execute
    from crm.events.dispatch import send_after_commit

    send_after_commit(automation_run_execute, pk, countdown=countdown)


def events_consume(events: list[OutboxEvent]) -> None:
    """The relay's batch consumer: the runs of the active event rules each event triggers. The rules
    are read once for the relay's batch (most events, an email logged by a campaign say, have none)."""
    entries = {}
    for event in events:
        name = event.type.partition(".")[0]
        if name not in entries:
            entries[name] = _entry_by_event_name(name)
    labels = {entry.label for entry in entries.values() if entry is not None}
    if not labels:
        return
    rules: dict[str, list[AutomationRule]] = {}
    for rule in (
        AutomationRule.objects.filter(is_active=True, trigger_kind=TriggerKind.EVENT, model__in=labels)
        .select_related(None)
        .order_by("order", "id")
    ):
        rules.setdefault(rule.model, []).append(rule)
    for event in events:
        entry = entries[event.type.partition(".")[0]]
        if entry is not None and rules.get(entry.label):
            _event_consume(event, entry, rules[entry.label])


def _event_consume(event: OutboxEvent, entry: AutomatableModel, rules: list[AutomationRule]) -> None:
    kind = event.type.partition(".")[2]
    payload = event.payload or {}
    chain = list((payload.get("automation") or {}).get("chain") or [])
    changes, record = payload.get("changes") or {}, payload.get("record") or {}
    candidates = [
        rule
        for rule in rules
        # An action's own change never triggers its rule again.
        if rule.pk not in chain and event_triggers(rule.trigger, entry, kind, changes, record)
    ]
    if not candidates:
        return
    record_id = None if kind == "deleted" else event.record_id
    matched = conditions_match(entry, record_id, candidates)
    if kind == "deleted":
        matched = [rule for rule in candidates if not rule.conditions]
    for rule in matched:
        run_create(
            rule=rule,
            record_id=event.record_id,
            trigger=event.type,
            dedup_key=f"event:{event.event_id}",
            record=record,
            chain=chain,
            event_id=event.event_id,
        )


def rule_fire_on_records(
    *, rule: AutomationRule, record_ids, trigger: str, key: str, chain=()
) -> list[AutomationRun]:
    """Runs of ``rule`` for the records (those meeting its conditions), one per record and ``key``."""
    entry = model_entry(rule.model)
    ids = list(
        entry.model._default_manager.filter(
            conditions_q(entry.model, rule.conditions), pk__in=list(record_ids)
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    runs = []
    for pk in ids:
        run = run_create(rule=rule, record_id=pk, trigger=trigger, dedup_key=f"{key}:{pk}", chain=chain)
        if run is not None:
            runs.append(run)
    return runs


# --- time and schedule ------------------------------------------------------------------------------


def _time_window(rule: AutomationRule, entry: AutomatableModel, since, now):
    """The records whose threshold was crossed in (since, now], as (condition, the date expression)."""
    config = rule.trigger
    if config.get("no_activity_days") is not None:
        # The last activity, or the creation of a record that never had one (leads index it).
        days = datetime.timedelta(days=config["no_activity_days"])
        quiet_since = Coalesce(entry.activity_field, "created_at")
        return Q(GreaterThan(quiet_since, since - days)) & Q(
            LessThanOrEqual(quiet_since, now - days)
        ), quiet_since
    name, days = config["date_field"], datetime.timedelta(days=config["days"])
    shift = days if config.get("when") == "before" else -days
    lower, upper = since + shift, now + shift
    model_field = entry.model._meta.get_field(name)
    if not isinstance(model_field, models.DateTimeField):
        # A date crosses its threshold at the start of that day (in TIME_ZONE), so a whole day counts.
        lower, upper = timezone.localdate(lower), timezone.localdate(upper)
        return Q(**{f"{name}__gte": lower, f"{name}__lte": upper}), F(name)
    return Q(**{f"{name}__gt": lower, f"{name}__lte": upper}), F(name)


def time_scan(*, now=None) -> int:
    """Fire the time rules for every record whose threshold was crossed since the rule's last scan
    (through the date field's index), once per record and threshold (its date is in the run's key)."""
    now = now or timezone.now()
    fired = 0
    for rule in AutomationRule.objects.filter(is_active=True, trigger_kind=TriggerKind.TIME).order_by(
        "order", "id"
    ):
        entry = model_entry(rule.model)
        if entry is None:
            continue
        since = rule.last_scanned_at or rule.created_at
        window, crossing = _time_window(rule, entry, since, now)
        rows = (
            entry.model._default_manager.filter(window, conditions_q(entry.model, rule.conditions))
            .annotate(crossing=crossing)
            .order_by("pk")
            .values_list("pk", "crossing")
        )
        for pk, value in rows.iterator(chunk_size=2000):
            stamp = value.isoformat()
            if run_create(rule=rule, record_id=pk, trigger="time", dedup_key=f"time:{pk}:{stamp}"):
                fired += 1
        AutomationRule.objects.filter(pk=rule.pk).update(last_scanned_at=now)
    return fired


def schedule_tick(*, now=None) -> int:
    """Fire each schedule rule whose cron came due since its last run, over the records meeting its
    conditions (at most CRM_AUTOMATION_SCHEDULE_MAX_RECORDS)."""
    from croniter import croniter

    now = now or timezone.now()
    fired = 0
    for rule in AutomationRule.objects.filter(is_active=True, trigger_kind=TriggerKind.SCHEDULE):
        entry = model_entry(rule.model)
        if entry is None:
            continue
        since = rule.last_scanned_at or rule.created_at
        slot = croniter(rule.trigger["cron"], since.astimezone(datetime.UTC)).get_next(datetime.datetime)
        if slot > now:
            continue
        ids = (
            entry.model._default_manager.filter(conditions_q(entry.model, rule.conditions))
            .order_by("pk")
            .values_list("pk", flat=True)[: settings.CRM_AUTOMATION_SCHEDULE_MAX_RECORDS]
        )
        for pk in ids:
            if run_create(
                rule=rule, record_id=pk, trigger="schedule", dedup_key=f"cron:{slot.isoformat()}:{pk}"
            ):
                fired += 1
        AutomationRule.objects.filter(pk=rule.pk).update(last_scanned_at=now)
    return fired


# --- execution --------------------------------------------------------------------------------------


def _instance(entry: AutomatableModel, record_id):
    if record_id is None:
        return None
    return entry.model._default_manager.filter(pk=record_id).first()


def _claim(pk: int) -> AutomationRun | None:
    with transaction.atomic():
        run = (
            AutomationRun.objects.select_for_update(skip_locked=True)
            .filter(pk=pk)
            .filter(
                Q(status__in=[RunStatus.QUEUED, RunStatus.RETRYING])
                | Q(status=RunStatus.RUNNING, started_at__lt=timezone.now() - _lease())
            )
            .first()
        )
        if run is None:
            return None
        run.status, run.started_at, run.attempts = RunStatus.RUNNING, timezone.now(), run.attempts + 1
        run.save(update_fields=["status", "started_at", "attempts"])
    return run


def _lease() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.CRM_AUTOMATION_LEASE_SECONDS)


def run_execute(pk: int) -> str:
    """Execute a queued run's actions (those not yet done, on a retry); returns its status."""
    run = _claim(pk)
    if run is None:
        return "skipped"
    rule = AutomationRule.objects.select_related("owner").get(pk=run.rule_id)
    entry = model_entry(run.model)
    started = time.monotonic()
    outcomes = {o["index"]: o for o in run.outcomes}
    user = acting_user(rule)
    stopped = retry = False
    chain = (*run.chain, rule.pk)
    with running(chain):
        for index, action in enumerate(rule.actions):
            previous = outcomes.get(index, {})
            if previous.get("status") in ("ok", "stopped"):
                if previous.get("status") == "stopped":
                    stopped = True
                continue
            outcome = {"index": index, "kind": action.get("kind"), "attempts": previous.get("attempts", 0)}
            if stopped:
                outcomes[index] = {**outcome, "status": "not_run", "detail": "", "error": ""}
                continue
            outcome["attempts"] += 1
            began = time.monotonic()
            try:
                spec = action_for(action.get("kind"), run.model) if entry else None
                if spec is None:
                    raise LookupError(f"No action “{action.get('kind')}” is registered for {run.model}.")
                ctx = ActionContext(
                    rule=rule,
                    entry=entry,
                    record_id=run.record_id,
                    record=run.record,
                    instance=_instance(entry, run.record_id),
                    user=user,
                    params=action.get("params") or {},
                    run=run,
                    index=index,
                    trigger=run.trigger,
                )
                if spec.atomic:
                    with transaction.atomic():
                        detail = spec.execute(ctx)
                else:
                    detail = spec.execute(ctx)
                outcome.update(status="ok", detail=str(detail or ""), error="")
            except StopRule as exc:
                outcome.update(status="stopped", detail=str(exc) or "Stopped the rule.", error="")
                stopped = True
            except Exception as exc:
                error = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc) or repr(exc)
                outcome.update(status="failed", detail="", error=error[:2000])
                if not isinstance(exc, PERMANENT_ERRORS):
                    retry = True
                    logger.warning("Automation rule %s action %s failed: %s", rule.pk, index, error)
                if rule.on_error == "stop":
                    stopped = True
            outcome["duration_ms"] = int((time.monotonic() - began) * 1000)
            outcomes[index] = outcome
    run.outcomes = [outcomes[i] for i in sorted(outcomes)]
    failed = [o for o in run.outcomes if o["status"] == "failed"]
    run.error = "\n".join(f"#{o['index'] + 1} {o['kind']}: {o['error']}" for o in failed)[:4000]
    run.duration_ms = (run.duration_ms or 0) + int((time.monotonic() - started) * 1000)
    now = timezone.now()
    schedule = settings.CRM_AUTOMATION_RETRY_SECONDS
    if failed and retry and run.attempts <= len(schedule):
        delay = schedule[run.attempts - 1]
        run.status, run.next_attempt_at = RunStatus.RETRYING, now + datetime.timedelta(seconds=delay)
        for o in run.outcomes:  # actions a failure held back run with the retry
            if o["status"] == "not_run":
                o["status"] = "pending"
    else:
        run.status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
        run.next_attempt_at, run.finished_at = None, now
    run.save(update_fields=["outcomes", "error", "duration_ms", "status", "next_attempt_at", "finished_at"])
    if run.status == RunStatus.RETRYING:
        run_queue_after_commit(run.pk, countdown=settings.CRM_AUTOMATION_RETRY_SECONDS[run.attempts - 1])
    return run.status


def runs_due(*, now=None) -> list[int]:
    """Runs waiting for a worker: due retries, queued runs whose task was lost, expired leases."""
    now = now or timezone.now()
    return list(
        AutomationRun.objects.filter(
            Q(status__in=[RunStatus.QUEUED, RunStatus.RETRYING], next_attempt_at__lte=now)
            | Q(status=RunStatus.RUNNING, started_at__lt=now - _lease())
        )
        .order_by("id")
        .values_list("pk", flat=True)[:500]
    )


# --- preview ----------------------------------------------------------------------------------------


def rule_preview(*, rule: AutomationRule, record_id: int) -> dict[str, Any]:
    """Which conditions hold for the record and what each action would do; writes nothing."""
    entry = model_entry(rule.model)
    leaves = conditions_leaves(rule.conditions)
    annotations = {
        f"c{i}": Case(
            When(conditions_q(entry.model, leaf), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        )
        for i, leaf in enumerate(leaves)
    }
    every = conditions_q(entry.model, rule.conditions)
    # A rule without conditions matches every record (an empty Q cannot be a When()).
    annotations["all"] = (
        Case(When(every, then=Value(True)), default=Value(False), output_field=BooleanField())
        if every
        else Value(True, output_field=BooleanField())
    )
    row = (
        entry.model._default_manager.filter(pk=record_id).annotate(**annotations).values(*annotations).first()
    )
    instance = _instance(entry, record_id)
    from crm.events.registry import source_for

    source = source_for(entry.model)
    record = source.serialize(record_id) if source is not None else {"id": record_id}
    ctx_common = {
        "rule": rule,
        "entry": entry,
        "record_id": record_id,
        "record": record,
        "instance": instance,
        "user": acting_user(rule),
    }
    actions = []
    for index, action in enumerate(rule.actions):
        spec = action_for(action.get("kind"), rule.model)
        ctx = ActionContext(**ctx_common, params=action.get("params") or {}, index=index, trigger="test")
        try:
            text = spec.preview(ctx) if spec else f"No action “{action.get('kind')}” is registered."
        except Exception as exc:  # a preview explains, it never fails the page
            text = f"Would fail: {'; '.join(exc.messages) if isinstance(exc, ValidationError) else exc}"
        actions.append({"index": index, "kind": action.get("kind"), "would": text})
    return {
        "rule_id": rule.pk,
        "record_id": record_id,
        "matches": bool(row and row["all"]),
        "conditions": [
            {
                "condition": condition_text(leaf),
                "field": leaf["field"],
                "op": leaf["op"],
                "matches": bool(row and row[f"c{i}"]),
            }
            for i, leaf in enumerate(leaves)
        ],
        "actions": actions,
    }
