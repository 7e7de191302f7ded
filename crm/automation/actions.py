"""crm's own action kinds: update fields, assign an owner, add/remove tags, notify users, call a
webhook, move a lead to a stage, stop. Each is a validator, an executor and a preview; executors go
through the services with the rule's acting user."""

import json
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.template import Context, Engine

from crm import rules as state_rules
from crm.automation.engine import ActionContext, ActionFailed, StopRule
from crm.automation.registry import AutomatableModel, register_action
from crm.models import AutomationRule, NotificationKind, SalesTeam, Stage, Tag

_templates = Engine(autoescape=False)


def render(text: str, ctx: ActionContext) -> str:
    """``{{ record.name }}``, ``{{ rule.name }}``, ``{{ trigger }}`` filled in (Django templates)."""
    context = Context(
        {
            "record": ctx.record or {},
            "rule": {"id": ctx.rule.pk, "name": ctx.rule.name},
            "trigger": ctx.trigger,
        }
    )
    return _templates.from_string(text).render(context)


def render_json(value: Any, ctx: ActionContext) -> Any:
    if isinstance(value, str):
        return render(value, ctx)
    if isinstance(value, list):
        return [render_json(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: render_json(v, ctx) for k, v in value.items()}
    return value


def _template_check(text: str, name: str) -> None:
    from django.template import TemplateSyntaxError

    try:
        _templates.from_string(text)
    except TemplateSyntaxError as exc:
        raise ValidationError(f"{name}: {exc}") from None


MAX_ID = 2**63 - 1


def _ids(value, name: str, model) -> list[int]:
    if not isinstance(value, list) or not value or len(value) > 1000:
        raise ValidationError(f"{name}: give a list of ids.")
    try:
        ids = [int(v) for v in value if not isinstance(v, bool | float | dict | list)]
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: give a list of ids.") from None
    if len(ids) != len(value) or not all(0 < i <= MAX_ID for i in ids):
        raise ValidationError(f"{name}: give a list of ids.")
    missing = set(ids) - set(model._default_manager.filter(pk__in=ids).values_list("pk", flat=True))
    if missing:
        raise ValidationError(
            f"{name}: no {model._meta.verbose_name} with id {', '.join(map(str, sorted(missing)))}."
        )
    return ids


def _one_id(value, name: str, model) -> int:
    return _ids([value] if value not in (None, "") else None, name, model)[0]


# --- update fields ------------------------------------------------------------------------------------


def update_fields_validate(params: dict, entry: AutomatableModel) -> dict:
    values = params.get("values")
    if not isinstance(values, dict) or not values:
        raise ValidationError('values: give the fields to set, e.g. {"priority": "high"}.')
    opts, errors, cleaned = entry.model._meta, [], {}
    blocked = set(state_rules.STATE_FIELDS.get(entry.label, ())) | {"id", "created_at", "updated_at"}
    for name, value in values.items():
        try:
            field = opts.get_field(name)
        except Exception:
            writable = sorted(f.name for f in opts.concrete_fields if f.editable and f.name not in blocked)
            errors.append(
                f"values: the field “{name}” does not exist on {entry.noun}. Fields: {', '.join(writable)}."
            )
            continue
        if not field.concrete or not field.editable or name in blocked or field.primary_key:
            errors.append(f"values: “{name}” cannot be set by a rule (use the transitions and tag actions).")
            continue
        if isinstance(value, dict | list):
            errors.append(f"values.{name}: give a single value.")
            continue
        if field.is_relation:
            if value is None:
                cleaned[name] = None
                continue
            try:
                cleaned[name] = _one_id(value, f"values.{name}", field.related_model)
            except ValidationError as exc:
                errors.extend(exc.messages)
            continue
        try:
            field.clean(value, None)  # the field's own checks: type, choices, length, range
            cleaned[name] = value
        except ValidationError as exc:
            errors.append(f"values.{name}: {' '.join(exc.messages)}")
        except (TypeError, ValueError, OverflowError):
            errors.append(f"values.{name}: not a valid value.")
    if errors:
        raise ValidationError(errors)
    return {"values": cleaned}


def _data(entry: AutomatableModel, values: dict) -> dict:
    data = {}
    for name, value in values.items():
        field = entry.model._meta.get_field(name)
        if field.is_relation and value is not None:
            value = field.related_model._default_manager.get(pk=value)
        else:
            value = field.to_python(value)
        data[name] = value
    return data


def update_fields_execute(ctx: ActionContext) -> str:
    ctx.entry.update(
        instance=ctx.require_instance(), user=ctx.user, data=_data(ctx.entry, ctx.params["values"])
    )
    return "Set " + ", ".join(f"{k} = {v!r}" for k, v in ctx.params["values"].items())


def update_fields_preview(ctx: ActionContext) -> str:
    instance = ctx.require_instance()
    parts = []
    for name, value in ctx.params.get("values", {}).items():
        field = ctx.entry.model._meta.get_field(name)
        parts.append(f"{name}: {getattr(instance, field.attname)!r} → {value!r}")
    return "Would set " + "; ".join(parts)


# --- assign owner -------------------------------------------------------------------------------------

STRATEGIES = ("round_robin", "least_loaded")


def assign_owner_validate(params: dict, entry: AutomatableModel) -> dict:
    if not any(f.name == "owner" for f in entry.model._meta.concrete_fields):
        raise ValidationError(f"{entry.noun} records have no owner.")
    if params.get("user_id") not in (None, ""):
        return {"user_id": _one_id(params["user_id"], "user_id", get_user_model())}
    if params.get("team_id") in (None, ""):
        raise ValidationError("Give user_id (a user) or team_id with strategy round_robin or least_loaded.")
    team = _one_id(params["team_id"], "team_id", SalesTeam)
    strategy = params.get("strategy", "round_robin")
    if strategy not in STRATEGIES:
        raise ValidationError(f"strategy: “{strategy}” is not one of {', '.join(STRATEGIES)}.")
    return {"team_id": team, "strategy": strategy}


def _members(team_id: int) -> list:
    return list(
        get_user_model().objects.filter(sales_teams__pk=team_id, is_active=True).order_by("pk").distinct()
    )


def _choose(ctx: ActionContext, *, commit: bool):
    params = ctx.params
    if "user_id" in params:
        return get_user_model().objects.get(pk=params["user_id"])
    members = _members(params["team_id"])
    if not members:
        raise ValidationError(f"The team #{params['team_id']} has no active member to assign.")
    if params["strategy"] == "least_loaded":
        loads = dict(
            ctx.entry.model._default_manager.filter(ctx.entry.open_q, owner__in=members)
            .values_list("owner")
            .annotate(n=Count("pk"))
            .values_list("owner", "n")
        )
        return min(members, key=lambda m: (loads.get(m.pk, 0), m.pk))
    # Round robin: the member after the last one this rule chose for the team (kept on the rule,
    # locked while choosing so two workers never pick the same turn).
    rule = AutomationRule.objects.select_for_update().get(pk=ctx.rule.pk) if commit else ctx.rule
    key = f"round_robin:{params['team_id']}"
    last = (rule.state or {}).get(key)
    ids = [m.pk for m in members]
    later = [pk for pk in ids if last is not None and pk > last]
    chosen = later[0] if later else ids[0]
    if commit:
        rule.state = {**(rule.state or {}), key: chosen}
        AutomationRule.objects.filter(pk=rule.pk).update(state=rule.state)
    return next(m for m in members if m.pk == chosen)


def assign_owner_execute(ctx: ActionContext) -> str:
    instance = ctx.require_instance()
    owner = _choose(ctx, commit=True)
    ctx.entry.update(instance=instance, user=ctx.user, data={"owner": owner})
    return f"Assigned to {owner.get_username()}"


def assign_owner_preview(ctx: ActionContext) -> str:
    owner = _choose(ctx, commit=False)
    how = {"round_robin": " (next in the round robin)", "least_loaded": " (least loaded)"}.get(
        ctx.params.get("strategy"), ""
    )
    return f"Would assign to {owner.get_username()}{how}"


# --- tags ---------------------------------------------------------------------------------------------


def tags_validate(params: dict, entry: AutomatableModel) -> dict:
    if not entry.tags:
        raise ValidationError(f"{entry.noun} records have no tags.")
    return {"tag_ids": _ids(params.get("tag_ids"), "tag_ids", Tag)}


def _tags_change(ctx: ActionContext, *, add: bool, commit: bool) -> str:
    instance = ctx.require_instance()
    current = set(instance.tags.values_list("pk", flat=True))
    wanted = set(ctx.params["tag_ids"])
    after = current | wanted if add else current - wanted
    names = ", ".join(Tag.objects.filter(pk__in=wanted).order_by("name").values_list("name", flat=True))
    verb = "add" if add else "remove"
    if after == current:
        return f"Nothing to {verb}: {names}" if commit else f"Would change nothing ({names})"
    if commit:
        ctx.entry.update(
            instance=instance, user=ctx.user, data={"tags": list(Tag.objects.filter(pk__in=after))}
        )
        return f"Tags: {verb} {names}"
    return f"Would {verb} the tags {names}"


# --- notify -------------------------------------------------------------------------------------------


def notify_validate(params: dict, entry: AutomatableModel) -> dict:
    cleaned: dict[str, Any] = {}
    if params.get("user_ids"):
        cleaned["user_ids"] = _ids(params["user_ids"], "user_ids", get_user_model())
    cleaned["record_owner"] = bool(params.get("record_owner"))
    if not cleaned.get("user_ids") and not cleaned["record_owner"]:
        raise ValidationError("Tell someone: user_ids and/or record_owner: true.")
    title = params.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValidationError("title: what the notification says, e.g. “{{ record.name }} needs you”.")
    cleaned["title"] = title[:200]
    cleaned["body"] = str(params.get("body") or "")
    _template_check(cleaned["title"], "title")
    _template_check(cleaned["body"], "body")
    return cleaned


def _recipients(ctx: ActionContext) -> list:
    users = list(get_user_model().objects.filter(pk__in=ctx.params.get("user_ids") or [], is_active=True))
    owner_id = (ctx.record or {}).get("owner_id")
    if ctx.instance is not None:
        owner_id = getattr(ctx.instance, "owner_id", owner_id)
    if ctx.params.get("record_owner") and owner_id and owner_id not in {u.pk for u in users}:
        users += list(get_user_model().objects.filter(pk=owner_id, is_active=True))
    return users


def notify_execute(ctx: ActionContext) -> str:
    from crm.notifications.services import notify

    told = []
    for user in _recipients(ctx):
        notification = notify(
            recipient=user,
            kind=NotificationKind.AUTOMATION,
            event_id=f"automation:{ctx.run.pk}:{ctx.index}",
            title=render(ctx.params["title"], ctx)[:200],
            body=render(ctx.params.get("body", ""), ctx),
            record_type=ctx.entry.event_name,
            record_id=ctx.record_id,
        )
        if notification is not None:
            told.append(user.get_username())
    return f"Notified {', '.join(told) or 'nobody (preferences or already told)'}"


def notify_preview(ctx: ActionContext) -> str:
    names = ", ".join(u.get_username() for u in _recipients(ctx)) or "nobody"
    return f"Would notify {names}: “{render(ctx.params['title'], ctx)}”"


# --- call a webhook -----------------------------------------------------------------------------------


def webhook_validate(params: dict, entry: AutomatableModel) -> dict:
    from crm.webhooks import sending, signing

    url = params.get("url")
    if not isinstance(url, str):
        raise ValidationError("url: the http(s) URL to call.")
    try:
        sending.target_check(url)
    except sending.TargetRefused as exc:
        raise ValidationError(f"url: {exc}") from None
    secret = params.get("secret") or signing.secret_new()
    try:
        signing.secret_key(secret)
    except ValueError as exc:
        raise ValidationError(f"secret: {exc}") from None
    body = params.get("body", {"rule": "{{ rule.name }}", "record_id": "{{ record.id }}"})
    if not isinstance(body, dict | list):
        raise ValidationError("body: a JSON object (strings may use {{ record.name }}).")
    _template_check(json.dumps(body), "body")
    return {"url": url, "secret": secret, "body": body}


def webhook_execute(ctx: ActionContext) -> str:
    from crm.webhooks import sending, signing

    body = json.dumps(render_json(ctx.params["body"], ctx), separators=(",", ":")).encode()
    # The same id on every retry of this action of this run: the receiver deduplicates by it.
    webhook_id = f"msg_automation_{ctx.run.pk}_{ctx.index}"
    headers = signing.headers(
        secret=ctx.params["secret"], webhook_id=webhook_id, timestamp=int(time.time()), body=body
    )
    answer = sending.post(ctx.params["url"], body, headers)
    if answer.refused:
        raise ValidationError(answer.error)
    if not answer.ok:
        raise ActionFailed(f"{ctx.params['url']} answered {answer.status_code or answer.error}")
    return f"{ctx.params['url']} answered {answer.status_code} in {answer.duration_ms} ms"


def webhook_preview(ctx: ActionContext) -> str:
    body = json.dumps(render_json(ctx.params["body"], ctx))
    return f"Would POST to {ctx.params['url']} (signed): {body[:500]}"


# --- move a lead to a stage -------------------------------------------------------------------------


def stage_validate(params: dict, entry: AutomatableModel) -> dict:
    return {"stage_id": _one_id(params.get("stage_id"), "stage_id", Stage)}


def lead_move_execute(ctx: ActionContext) -> str:
    from crm.services import lead_move_stage

    stage = Stage.objects.get(pk=ctx.params["stage_id"])
    lead_move_stage(lead=ctx.require_instance(), stage=stage, user=ctx.user)
    return f"Moved to {stage.name}"


def stage_preview(ctx: ActionContext) -> str:
    instance = ctx.require_instance()
    stage = Stage.objects.get(pk=ctx.params["stage_id"])
    if stage.pipeline_id != instance.pipeline_id:
        return f"Would fail: the stage {stage.name} is not in the record's pipeline"
    return f"Would move from {instance.stage.name} to {stage.name}"


# --- stop ---------------------------------------------------------------------------------------------


def stop_execute(ctx: ActionContext) -> str:
    raise StopRule("Stopped: the remaining actions do not run.")


def register() -> None:
    register_action(
        "update_fields",
        label="Update fields",
        validate=update_fields_validate,
        execute=update_fields_execute,
        preview=update_fields_preview,
        example={"values": {"priority": "high"}},
    )
    register_action(
        "assign_owner",
        label="Assign the owner (a user, round robin in a team, the least loaded member)",
        validate=assign_owner_validate,
        execute=assign_owner_execute,
        preview=assign_owner_preview,
        example={"team_id": 1, "strategy": "round_robin"},
        params={"user_id": 1, "team_id": 1, "strategy": "round_robin"},
    )
    register_action(
        "add_tags",
        label="Add tags",
        validate=tags_validate,
        execute=lambda ctx: _tags_change(ctx, add=True, commit=True),
        preview=lambda ctx: _tags_change(ctx, add=True, commit=False),
        example={"tag_ids": [1]},
    )
    register_action(
        "remove_tags",
        label="Remove tags",
        validate=tags_validate,
        execute=lambda ctx: _tags_change(ctx, add=False, commit=True),
        preview=lambda ctx: _tags_change(ctx, add=False, commit=False),
        example={"tag_ids": [1]},
    )
    register_action(
        "notify",
        label="Notify users",
        validate=notify_validate,
        execute=notify_execute,
        preview=notify_preview,
        example={"record_owner": True, "title": "{{ record.name }} needs a follow-up"},
        params={"record_owner": True, "user_ids": [1], "title": "", "body": ""},
    )
    register_action(
        "call_webhook",
        label="Call a webhook (signed JSON body)",
        validate=webhook_validate,
        execute=webhook_execute,
        preview=webhook_preview,
        example={"url": "https://hooks.example.com/crm", "body": {"lead": "{{ record.name }}"}},
        params={"url": "", "body": {}, "secret": ""},
        atomic=False,  # no transaction held open while the target answers
    )
    register_action(
        "move_stage",
        label="Move to a stage",
        validate=stage_validate,
        execute=lead_move_execute,
        preview=stage_preview,
        models=("crm.Lead",),
        example={"stage_id": 2},
    )
    register_action(
        "stop",
        label="Stop (the remaining actions do not run)",
        validate=lambda params, entry: {},
        execute=stop_execute,
        preview=lambda ctx: "Would stop here",
        example={},
    )
