"""The admin's rule form, row by row: conditions and actions that follow the chosen model.

A condition row is a field (the model's fields and its related records' fields), an operator valid
for that field's type and a value (a list of the choices when the field has them); an action row is
a kind and the inputs that kind takes. The rows are rendered on the server (so the form works and is
tested without a browser) and the small script ``crm/automation_rule_form.js`` refills the selects
when the model, a field or a kind changes, and adds and removes rows. What the rows post is turned
back into the JSON the rule stores and the API takes, and checked by the same service; the service's
messages are shown on the row they name.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models
from django.template.loader import render_to_string

from crm.automation.conditions import NO_VALUE, OPERATORS, ORDERED, ORDERED_TYPES, TEXT_ONLY, path_resolve
from crm.automation.registry import action_kinds, automatable_models

MAX_ROWS = 50
# Related paths worth offering beyond one hop (the "owner's team").
EXTRA_PATHS = ("owner__sales_teams__name",)


def operators_for(field: models.Field) -> list[str]:
    """The operators the validator accepts on ``field`` (conditions._leaf_validate's rules)."""
    ordered = not field.is_relation and isinstance(field, ORDERED_TYPES) and not field.choices
    text = field.is_relation or isinstance(field, models.CharField | models.TextField)
    return [op for op in OPERATORS if (op not in ORDERED or ordered) and (op not in TEXT_ONLY or text)]


def _choices(field: models.Field) -> list[list[str]]:
    if isinstance(field, models.BooleanField):
        return [["true", "yes"], ["false", "no"]]
    if field.choices and not field.is_relation:
        return [[str(key), str(label)] for key, label in field.flatchoices]
    return []


def _kind(field: models.Field) -> str:
    if field.is_relation:
        return "tag" if field.related_model._meta.model_name == "tag" else "relation"
    if isinstance(field, models.BooleanField):
        return "boolean"
    if isinstance(field, models.DateTimeField):
        return "datetime"
    if isinstance(field, models.DateField):
        return "date"
    if isinstance(field, models.IntegerField | models.DecimalField | models.FloatField):
        return "number"
    return "text"


def _field_entry(path: str, field: models.Field, label: str) -> dict[str, Any]:
    return {
        "path": path,
        "label": label,
        "type": _kind(field),
        "ops": operators_for(field),
        "choices": _choices(field),
    }


def condition_fields(model: type[models.Model]) -> list[dict[str, Any]]:
    """The fields a condition on ``model`` may name: its own, then one hop into each related record
    (account → account__industry), then EXTRA_PATHS that exist on it."""
    own, related = [], []
    for field in model._meta.get_fields():
        if not (field.concrete or field.many_to_many) or getattr(field, "primary_key", False):
            continue
        if field.auto_created and not field.concrete:
            continue
        name = str(getattr(field, "verbose_name", field.name))
        own.append(_field_entry(field.name, field, name))
        if field.is_relation and (field.many_to_one or field.one_to_one):
            target = field.related_model
            if target is get_user_model():
                names = ("username", "email", "first_name", "last_name", "is_active")
                hops = [target._meta.get_field(n) for n in names]
            else:
                hops = [f for f in target._meta.concrete_fields if not f.is_relation and not f.primary_key]
            related.extend(
                _field_entry(f"{field.name}__{f.name}", f, f"{name} → {f.verbose_name}") for f in hops
            )
    extra = []
    for path in EXTRA_PATHS:
        try:
            resolved = path_resolve(model, path)
        except ValidationError:
            continue
        extra.append(_field_entry(path, resolved.field, path.replace("__", " → ").replace("_", " ")))
    return own + related + extra


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # text, number, ids (comma-separated), boolean, json


def _param_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "number"
    if isinstance(value, list):
        return "ids"
    if isinstance(value, dict):
        return "json"
    return "text"


def action_params(action) -> list[Param]:
    """The inputs of an action kind: what its registration declares (``params``), else its example."""
    declared = action.params or action.example
    return [Param(name, _param_type(sample)) for name, sample in declared.items()]


def catalog() -> dict[str, Any]:
    """The script's data: the operators' labels, and per model label its condition fields and its
    action kinds with their inputs."""
    return {"operators": OPERATORS, "no_value": sorted(NO_VALUE), "models": _models_catalog()}


def _models_catalog() -> dict[str, Any]:
    return {
        label: {
            "fields": condition_fields(entry.model),
            "actions": [
                {
                    "kind": action.kind,
                    "label": action.label,
                    "params": [{"name": p.name, "type": p.type} for p in action_params(action)],
                }
                for action in action_kinds(label)
            ],
        }
        for label, entry in automatable_models().items()
    }


# --- conditions -----------------------------------------------------------------------------------


def conditions_as_rows(conditions: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """``(match, rows)`` for conditions of one level ({"all"|"any": [leaves]}), else None (nested
    groups: edited as JSON)."""
    if conditions in (None, "", {}, []):
        return "all", []
    if isinstance(conditions, list):
        conditions = {"all": conditions}
    if not isinstance(conditions, dict):
        return None
    if "field" in conditions:
        conditions = {"all": [conditions]}
    keys = [key for key in ("all", "any") if key in conditions]
    if len(keys) != 1 or len(conditions) != 1 or not isinstance(conditions[keys[0]], list):
        return None
    rows = []
    for leaf in conditions[keys[0]]:
        if not isinstance(leaf, dict) or "field" not in leaf:
            return None
        value = leaf.get("value", "")
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        rows.append({"field": leaf.get("field", ""), "op": leaf.get("op", "eq"), "value": str(value)})
    return keys[0], rows


def _typed(value: str, field_type: str) -> Any:
    """A row's text as the JSON value the validator and the engine expect for that field."""
    if field_type == "boolean" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if field_type == "relation" and value.isdigit():
        return int(value)
    if field_type == "number" and re.fullmatch(r"-?\d{1,18}", value):
        return int(value)
    return value


def conditions_from_rows(match: str, rows: list[dict[str, str]], model) -> dict:
    types = {entry["path"]: entry["type"] for entry in condition_fields(model)} if model else {}
    leaves = []
    for row in rows:
        leaf: dict[str, Any] = {"field": row["field"], "op": row["op"]}
        if row["op"] not in NO_VALUE:
            field_type = types.get(row["field"], "text")
            if row["op"] in ("in", "not_in"):
                parts = [part.strip() for part in row["value"].split(",") if part.strip()]
                leaf["value"] = [_typed(part, field_type) for part in parts]
            else:
                leaf["value"] = _typed(row["value"], field_type)
        leaves.append(leaf)
    return {match if match in ("all", "any") else "all": leaves} if leaves else {}


# --- actions --------------------------------------------------------------------------------------


def _param_text(value: Any, type_: str) -> str:
    if value is None:
        return ""
    if type_ == "json" or isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if type_ == "ids" and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if type_ == "boolean":
        return "on" if value else ""
    return str(value)


def actions_as_rows(actions: Any, label: str | None) -> list[dict[str, Any]] | None:
    if actions in (None, "", []):
        return []
    if not isinstance(actions, list):
        return None
    specs = {a.kind: a for a in action_kinds(label)} if label else {}
    rows = []
    for action in actions:
        if not isinstance(action, dict) or not isinstance(action.get("params", {}), dict):
            return None
        kind, params = action.get("kind", ""), action.get("params") or {}
        spec = specs.get(kind)
        types = {p.name: p.type for p in action_params(spec)} if spec else {}
        if set(params) - set(types):
            return None  # a parameter the rows do not offer: edited as JSON
        rows.append({"kind": kind, "params": {k: _param_text(v, types[k]) for k, v in params.items()}})
    return rows


def _param_value(text: str, type_: str) -> Any:
    if type_ == "boolean":
        return text in ("on", "true", "1")
    if type_ == "number":
        return int(text) if re.fullmatch(r"-?\d{1,9}", text) else text
    if type_ == "ids":
        parts = [part.strip() for part in text.split(",") if part.strip()]
        return [int(part) if part.isdigit() else part for part in parts]
    if type_ == "json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"not valid JSON: {exc}") from None
    return text


def actions_from_rows(rows: list[dict[str, Any]], label: str | None) -> tuple[list[dict], dict[int, list]]:
    """The actions the rows say, and per row the inputs that did not parse (JSON)."""
    specs = {a.kind: a for a in action_kinds(label)} if label else {}
    actions, errors = [], {}
    for index, row in enumerate(rows):
        spec = specs.get(row["kind"])
        params: dict[str, Any] = {}
        for param in action_params(spec) if spec else []:
            text = row["params"].get(param.name, "").strip()
            if text == "" and param.type != "boolean":
                continue
            try:
                params[param.name] = _param_value(text, param.type)
            except ValidationError as exc:
                errors.setdefault(index, []).append(f"{param.name}: {' '.join(exc.messages)}")
        actions.append({"kind": row["kind"], "params": params})
    return actions, errors


# --- posted rows ----------------------------------------------------------------------------------


def _count(data, name: str) -> int:
    try:
        return max(0, min(int(data.get(f"{name}-TOTAL", 0)), MAX_ROWS))
    except (TypeError, ValueError):
        return 0


def posted_condition_rows(data, name: str) -> list[dict[str, str]]:
    rows = []
    for i in range(_count(data, name)):
        field = str(data.get(f"{name}-{i}-field", "")).strip()
        if not field or data.get(f"{name}-{i}-DELETE"):
            continue
        rows.append(
            {
                "field": field,
                "op": str(data.get(f"{name}-{i}-op", "eq")),
                "value": str(data.get(f"{name}-{i}-value", "")).strip(),
            }
        )
    return rows


def posted_action_rows(data, name: str) -> list[dict[str, Any]]:
    rows = []
    for i in range(_count(data, name)):
        kind = str(data.get(f"{name}-{i}-kind", "")).strip()
        if not kind or data.get(f"{name}-{i}-DELETE"):
            continue
        prefix = f"{name}-{i}-{kind}-"
        params = {key[len(prefix) :]: str(data.get(key, "")) for key in data if key.startswith(prefix)}
        rows.append({"kind": kind, "params": params})
    return rows


ROW_ERROR = re.compile(r"^(conditions(?:\.(?:all|any))?\[(\d+)\]|actions\[(\d+)\])[^:]*:\s*")


def errors_by_row(messages: list[str]) -> tuple[dict[int, list[str]], list[str]]:
    """The service's messages split by the row they name (``conditions.all[1]: …``, ``actions[0]
    (notify): …``) and the rest."""
    rows: dict[int, list[str]] = {}
    rest = []
    for message in messages:
        found = ROW_ERROR.match(message)
        if found is None:
            rest.append(message)
            continue
        index = int(found.group(2) or found.group(3))
        rows.setdefault(index, []).append(message[found.end() :])
    return rows, rest


class RowsWidget(forms.Widget):
    """Conditions or actions as rows; a JSON box beside them for what rows cannot say (nested groups)."""

    template = ""
    kind = ""

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.model_label: str | None = None
        self.row_errors: dict[int, list[str]] = {}

    @property
    def media(self):
        return forms.Media(js=["crm/automation_rule_form.js"], css={"all": ["crm/automation_rule_form.css"]})


class ConditionRowsWidget(RowsWidget):
    def value_from_datadict(self, data, files, name):
        raw = str(data.get(name, "")).strip()
        if raw or f"{name}-TOTAL" not in data:
            return raw  # the JSON box wins (nested groups); JSON alone is what scripts post
        return {"rows": posted_condition_rows(data, name), "match": str(data.get(f"{name}-match", "all"))}

    def render(self, name, value, attrs=None, renderer=None):
        match, rows, raw = "all", [], ""
        if isinstance(value, dict) and "rows" in value:
            match, rows = value.get("match", "all"), value["rows"]
        else:
            value = "" if value is None else value  # a new rule
            parsed = value
            if isinstance(value, str):
                try:
                    parsed = json.loads(value) if value.strip() else {}
                except ValueError:
                    parsed = None
            as_rows = conditions_as_rows(parsed) if parsed is not None else None
            if as_rows is None:
                raw = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
            else:
                match, rows = as_rows
        fields = []
        if self.model_label and self.model_label in automatable_models():
            fields = condition_fields(automatable_models()[self.model_label].model)
        by_path = {f["path"]: f for f in fields}
        shown = []
        for index, row in enumerate(rows):
            field = by_path.get(row["field"])
            shown.append(
                {
                    **row,
                    "index": index,
                    "ops": [(op, OPERATORS[op]) for op in (field["ops"] if field else OPERATORS)],
                    "choices": field["choices"] if field else [],
                    "known": field is not None,
                    "errors": self.row_errors.get(index, []),
                }
            )
        return render_to_string(
            "admin/crm/automationrule/condition_rows.html",
            {
                "name": name,
                "match": match,
                "rows": shown,
                "total": len(rows),
                "fields": fields,
                "raw": raw,
                "no_value": sorted(NO_VALUE),
                "catalog": catalog(),
            },
        )


class ActionRowsWidget(RowsWidget):
    def value_from_datadict(self, data, files, name):
        raw = str(data.get(name, "")).strip()
        if raw or f"{name}-TOTAL" not in data:
            return raw
        return {"rows": posted_action_rows(data, name)}

    def render(self, name, value, attrs=None, renderer=None):
        rows, raw = [], ""
        if isinstance(value, dict) and "rows" in value:
            rows = value["rows"]
        else:
            value = "" if value is None else value  # a new rule
            parsed = value
            if isinstance(value, str):
                try:
                    parsed = json.loads(value) if value.strip() else []
                except ValueError:
                    parsed = None
            as_rows = actions_as_rows(parsed, self.model_label) if parsed is not None else None
            if as_rows is None:
                raw = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
            else:
                rows = as_rows
        kinds = []
        if self.model_label and self.model_label in automatable_models():
            kinds = action_kinds(self.model_label)
        specs = {a.kind: a for a in kinds}
        shown = []
        for index, row in enumerate(rows):
            spec = specs.get(row["kind"])
            params = [
                {"name": p.name, "type": p.type, "value": row["params"].get(p.name, "")}
                for p in (action_params(spec) if spec else [])
            ]
            shown.append(
                {
                    "index": index,
                    "kind": row["kind"],
                    "params": params,
                    "errors": self.row_errors.get(index, []),
                }
            )
        return render_to_string(
            "admin/crm/automationrule/action_rows.html",
            {
                "name": name,
                "rows": shown,
                "total": len(rows),
                "kinds": [(a.kind, a.label) for a in kinds],
                "raw": raw,
            },
        )
