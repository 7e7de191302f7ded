"""Writes for automation rules: create, change, delete (checked against the registered models and
actions), run a manual rule, accept an inbound webhook. Only a CRM Admin or a superuser manages
rules: a rule acts on every record, whoever may see it."""

import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from crm.actors import Actor, is_system
from crm.automation import engine
from crm.automation.conditions import conditions_validate
from crm.automation.registry import action_for, action_kinds, automatable_models, model_entry
from crm.automation.triggers import trigger_validate
from crm.models import AutomationRule, AutomationRun, TriggerKind
from crm.services import record_delete, record_lock, record_save

MANAGE_REFUSED = "Only a CRM Admin or a superuser may manage automation rules."
MAX_ACTIONS = 20


def automations_manageable_by(user: Actor) -> bool:
    if is_system(user):
        return True
    from crm.selectors import user_sees_everything

    return bool(user and user.is_authenticated and user_sees_everything(user))


def _ensure_may_manage(user: Actor) -> None:
    if not automations_manageable_by(user):
        raise PermissionDenied(MANAGE_REFUSED)


def actions_validate(label: str, actions: Any) -> list[dict[str, Any]]:
    entry = model_entry(label)
    if not isinstance(actions, list):
        raise ValidationError({"actions": 'A list of actions: [{"kind": ..., "params": {...}}].'})
    if len(actions) > MAX_ACTIONS:
        raise ValidationError({"actions": f"At most {MAX_ACTIONS} actions in a rule."})
    errors, cleaned = [], []
    known = ", ".join(a.kind for a in action_kinds(label))
    for index, action in enumerate(actions):
        where = f"actions[{index}]"
        if not isinstance(action, dict) or set(action) - {"kind", "params"}:
            errors.append(f'{where}: an action is {{"kind": ..., "params": {{...}}}}.')
            continue
        kind, params = action.get("kind"), action.get("params") or {}
        spec = action_for(kind, label) if isinstance(kind, str) else None
        if spec is None:
            errors.append(f"{where}: “{kind}” is not an action for {entry.noun}; actions: {known}.")
            continue
        if not isinstance(params, dict):
            errors.append(f"{where} ({kind}): params is an object.")
            continue
        try:
            cleaned.append({"kind": kind, "params": spec.validate(params, entry)})
        except ValidationError as exc:
            errors.extend(f"{where} ({kind}): {message}" for message in exc.messages)
    if errors:
        raise ValidationError({"actions": errors})
    return cleaned


def _clean(data: Mapping[str, Any], rule: AutomationRule) -> dict[str, Any]:
    data = dict(data)
    label = data.get("model", rule.model)
    entry = model_entry(label)
    if entry is None:
        raise ValidationError(
            {"model": f"“{label}” is not a model rules act on; models: {', '.join(automatable_models())}."}
        )
    kind = data.get("trigger_kind", rule.trigger_kind)
    if kind not in TriggerKind.values:
        raise ValidationError({"trigger_kind": f"“{kind}” is not one of {', '.join(TriggerKind.values)}."})
    errors: dict[str, list[str]] = {}
    for name, check in (
        ("trigger", lambda: trigger_validate(kind, entry, data.get("trigger", rule.trigger))),
        ("conditions", lambda: conditions_validate(entry.model, data.get("conditions", rule.conditions))),
        ("actions", lambda: actions_validate(label, data.get("actions", rule.actions))),
    ):
        try:
            data[name] = check()
        except ValidationError as exc:
            for field, messages in (
                exc.message_dict if hasattr(exc, "error_dict") else {name: exc.messages}
            ).items():
                errors.setdefault(field, []).extend(messages)
    if errors:
        raise ValidationError(errors)
    if kind == TriggerKind.WEBHOOK and not rule.webhook_token:
        data["webhook_token"] = secrets.token_urlsafe(32)
    if kind in (TriggerKind.TIME, TriggerKind.SCHEDULE) and (
        rule.pk is None or kind != rule.trigger_kind or data["trigger"] != rule.trigger
    ):
        data["last_scanned_at"] = None  # thresholds crossed from now on (the rule's save time)
    return data


@transaction.atomic
def automation_rule_create(*, user: Actor, data: Mapping[str, Any]) -> AutomationRule:
    _ensure_may_manage(user)
    rule = AutomationRule()
    return record_save(instance=rule, data=_clean(data, rule))


@transaction.atomic
def automation_rule_update(*, rule: AutomationRule, user: Actor, data: Mapping[str, Any]) -> AutomationRule:
    _ensure_may_manage(user)
    rule = record_lock(rule)
    data = _clean(data, rule)
    if data.get("last_scanned_at", 1) is None:
        from django.utils import timezone

        data["last_scanned_at"] = timezone.now()
    return record_save(instance=rule, data=data)


@transaction.atomic
def automation_rule_delete(*, rule: AutomationRule, user: Actor) -> None:
    _ensure_may_manage(user)
    record_delete(instance=rule, user=user)


@transaction.atomic
def automation_rule_run(
    *, rule: AutomationRule, record_ids: Iterable[int], user: Actor
) -> list[AutomationRun]:
    """Run a rule now on chosen records (the manual trigger; any rule may be run by hand): a run for
    each record that meets the conditions."""
    _ensure_may_manage(user)
    if model_entry(rule.model) is None:
        raise ValidationError(
            {"record_ids": f"Rules on {rule.model} cannot run: the model is not registered."}
        )
    from django.utils import timezone

    return engine.rule_fire_on_records(
        rule=rule, record_ids=record_ids, trigger="manual", key=f"manual:{timezone.now().isoformat()}"
    )


@transaction.atomic
def automation_inbound(*, token: str, record_id: int, delivery_id: str = "") -> AutomationRun | None:
    """An inbound webhook of a rule (its secret URL is the credential): a run on the record when it
    meets the conditions. ``delivery_id`` (the caller's ``webhook-id``) makes a resend run once."""
    rule = AutomationRule.objects.filter(
        webhook_token=token, trigger_kind=TriggerKind.WEBHOOK, is_active=True
    ).first()
    if not token or rule is None:
        raise AutomationRule.DoesNotExist
    from django.utils import timezone

    key = f"webhook:{delivery_id or timezone.now().isoformat()}"
    runs = engine.rule_fire_on_records(rule=rule, record_ids=[record_id], trigger="webhook", key=key)
    return runs[0] if runs else None
