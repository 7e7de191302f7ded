"""Triggers of a rule: validated configuration per kind, and whether an event triggers a rule.

- ``event``: ``{"events": ["updated", "stage_changed"], "field": "stage", "from": 3, "to": 5}``
  (``field``/``from``/``to`` optional: "field X changed", "changed from A", "changed to B"). An
  ``updated`` rule also fires on the specific kinds of update (stage_changed, won, lost...).
- ``time``: ``{"date_field": "close_date", "days": 3, "when": "before"|"after"}`` or
  ``{"no_activity_days": 14}``; fires once per record per threshold crossing.
- ``schedule``: ``{"cron": "0 8 * * 1"}`` (UTC); runs over every record that meets the conditions.
- ``webhook``: ``{}``; the rule gets a secret URL. ``manual``: ``{}``.
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from crm.automation.conditions import path_resolve
from crm.automation.registry import AutomatableModel
from crm.events.registry import source_for
from crm.models import TriggerKind

UPDATE_KINDS = {"updated", "stage_changed", "won", "lost", "converted", "reopened"}


def event_kinds(entry: AutomatableModel) -> list[str]:
    source = source_for(entry.model)
    return list(source.types) if source is not None else []


def date_fields(model: type[models.Model]) -> list[str]:
    return [
        f.name for f in model._meta.concrete_fields if isinstance(f, models.DateField | models.DateTimeField)
    ]


def trigger_validate(kind: str, entry: AutomatableModel, config: Any) -> dict[str, Any]:
    if config in (None, ""):
        config = {}
    if not isinstance(config, dict):
        raise ValidationError({"trigger": "The trigger is an object."})
    errors: list[str] = []
    cleaned: dict[str, Any] = {}
    model = entry.model
    if kind == TriggerKind.EVENT:
        events = config.get("events")
        known = event_kinds(entry)
        if not isinstance(events, list) or not events:
            errors.append(f"events: choose at least one of {', '.join(known)}.")
        else:
            unknown = [e for e in events if e not in known]
            if unknown:
                errors.append(
                    f"events: {', '.join(map(str, unknown))} is not an event of {entry.noun}; "
                    f"events: {', '.join(known)}."
                )
            cleaned["events"] = events
        if config.get("field"):
            try:
                path = path_resolve(model, config["field"])
                if "__" in config["field"]:
                    raise ValidationError(f"“{config['field']}”: name a field of the {entry.noun} itself.")
                cleaned["field"] = path.field.name
                for key in ("from", "to"):
                    if key in config and config[key] not in (None, ""):
                        cleaned[key] = config[key]
            except ValidationError as exc:
                errors.extend(f"field: {m}" for m in exc.messages)
        elif any(config.get(key) not in (None, "") for key in ("from", "to")):
            errors.append("field: name the field whose change from/to the trigger waits for.")
    elif kind == TriggerKind.TIME:
        if config.get("no_activity_days") not in (None, ""):
            days = _days(config["no_activity_days"], "no_activity_days", errors)
            if entry.activity_field is None:
                errors.append(f"no_activity_days: {entry.noun} records do not track their last activity.")
            cleaned["no_activity_days"] = days
        else:
            name = config.get("date_field")
            fields = date_fields(model)
            if name not in fields:
                errors.append(
                    f"date_field: “{name}” is not a date field of {entry.noun}; "
                    f"date fields: {', '.join(fields)}."
                )
            when = config.get("when", "after")
            if when not in ("before", "after"):
                errors.append("when: “before” or “after”.")
            cleaned.update(date_field=name, days=_days(config.get("days", 0), "days", errors), when=when)
    elif kind == TriggerKind.SCHEDULE:
        from croniter import croniter

        cron = config.get("cron")
        if not isinstance(cron, str) or not croniter.is_valid(cron) or len(cron.split()) != 5:
            errors.append(
                f"cron: “{cron}” is not a cron expression (5 fields: minute hour day month weekday)."
            )
        cleaned["cron"] = cron
    elif kind not in TriggerKind.values:
        raise ValidationError({"trigger_kind": f"Unknown trigger kind “{kind}”."})
    if errors:
        raise ValidationError({"trigger": errors})
    return cleaned


def _days(value, name, errors) -> int:
    try:
        days = int(value)
    except (TypeError, ValueError):
        errors.append(f"{name}: a whole number of days.")
        return 0
    if not 0 <= days <= 3650:
        errors.append(f"{name}: between 0 and 3650 days.")
    return days


def _same(a, b) -> bool:
    return str(a).lower() == str(b).lower()


def event_triggers(
    config: dict[str, Any], entry: AutomatableModel, kind: str, changes: dict, record: dict
) -> bool:
    """Whether an event of ``kind`` (``updated``...) with ``changes`` (``{field: {old, new}}`` in the
    API's names) triggers a rule with this trigger ``config``."""
    events = config.get("events") or []
    if kind not in events and not ("updated" in events and kind in UPDATE_KINDS):
        return False
    name = config.get("field")
    if not name:
        return True
    field = entry.model._meta.get_field(name)
    key = field.attname if field.concrete else name
    if kind == "created":
        # A record created with the value: "changed to B" holds (from nothing to B).
        return "to" in config and "from" not in config and _value_in(config["to"], record.get(key))
    change = changes.get(key)
    if change is None:
        return False
    if "from" in config and not _value_in(config["from"], change.get("old")):
        return False
    return not ("to" in config and not _value_in(config["to"], change.get("new")))


def _value_in(expected, actual) -> bool:
    if isinstance(actual, list):  # tags: the set contains it
        return any(_same(expected, item) for item in actual)
    return _same(expected, actual)
