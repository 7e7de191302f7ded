"""Conditions of a rule: comparisons on a record's fields and related fields, tags, AND/OR groups.

A condition is ``{"field": "account__industry", "op": "eq", "value": "technology"}``; a group is
``{"all": [...]}`` or ``{"any": [...]}`` (nested as deep as needed); ``{}`` always holds. Each is
checked against the real model fields when the rule is saved, and compiled to a ``Q`` that the
engine evaluates in the database (one query for every rule an event triggers).
"""

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.db.models import Exists, OuterRef, Q

from crm.search_indexes import column_contains

MAX_DEPTH = 3  # relation hops in a field path: owner__sales_teams__name
MAX_CONDITIONS = 50

OPERATORS = {
    "eq": "equals",
    "ne": "does not equal",
    "lt": "is less than",
    "lte": "is at most",
    "gt": "is greater than",
    "gte": "is at least",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains (text, or a tag / related record)",
    "not_contains": "does not contain",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
}
ORDERED = {"lt", "lte", "gt", "gte"}
TEXT_ONLY = {"contains", "not_contains"}
NO_VALUE = {"is_empty", "is_not_empty"}
ORDERED_TYPES = (
    models.IntegerField,
    models.DecimalField,
    models.FloatField,
    models.DateField,
    models.DateTimeField,
)


@dataclass(frozen=True)
class Path:
    lookup: str  # the ORM lookup of the final field
    field: models.Field
    many: bool  # crosses a to-many relation: evaluated with EXISTS


def path_resolve(model: type[models.Model], path: str) -> Path:
    """The field ``path`` names on ``model`` (``account__industry``); ValidationError naming it."""
    if not isinstance(path, str) or not path:
        raise ValidationError("Name a field.")
    parts = path.split("__")
    if len(parts) > MAX_DEPTH + 1:
        raise ValidationError(f"“{path}” goes through more than {MAX_DEPTH} relations.")
    current, many, field = model, False, None
    for index, name in enumerate(parts):
        try:
            field = current._meta.get_field(name)
        except FieldDoesNotExist:
            known = ", ".join(
                sorted(f.name for f in current._meta.get_fields() if not f.auto_created or f.concrete)
            )
            where = current._meta.verbose_name
            raise ValidationError(
                f"The field “{name}” does not exist on {where} (in “{path}”). Fields: {known}."
            ) from None
        if field.is_relation:
            many = many or field.many_to_many or field.one_to_many
            if index < len(parts) - 1:
                current = field.related_model
                continue
        elif index < len(parts) - 1:
            raise ValidationError(f"“{name}” is not a relation: “{path}” cannot go further.")
    return Path(lookup=path, field=field, many=many)


def _kind(field: models.Field) -> str:
    if field.is_relation:
        return "relation"
    return field.get_internal_type()


def _coerce(field: models.Field, value: Any, path: str, op: str) -> Any:
    """``value`` as the field holds it, or a ValidationError naming the field and operator."""
    if isinstance(value, dict | list):
        raise ValidationError(f"“{path}” {op}: give a single value.")
    if field.is_relation:
        target = field.related_model
        if target._meta.model_name == "tag" and isinstance(value, str):
            return value  # a tag by name
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if isinstance(value, bool | float) or not 0 < number < 2**63:
            raise ValidationError(f"“{path}” {op}: give the id of a {target._meta.verbose_name}.")
        return number
    if field.choices and op not in TEXT_ONLY:
        allowed = [str(key) for key, _ in field.flatchoices]
        if str(value) not in allowed:
            raise ValidationError(f"“{path}” {op}: “{value}” is not one of {', '.join(allowed)}.")
        return str(value)
    try:
        python = field.to_python(value)
    except (ValidationError, TypeError, ValueError, OverflowError) as exc:
        text = " ".join(exc.messages) if isinstance(exc, ValidationError) else "not a valid value."
        raise ValidationError(f"“{path}” {op}: {text}") from None
    if isinstance(python, int) and not -(2**63) <= python < 2**63:
        raise ValidationError(f"“{path}” {op}: the number is out of range.")
    return python


def _leaf_validate(model, node: dict) -> dict:
    unknown = set(node) - {"field", "op", "value"}
    if unknown:
        raise ValidationError(f"Unknown keys {', '.join(sorted(unknown))} in a condition.")
    path = path_resolve(model, node.get("field"))
    op = node.get("op")
    name = node["field"]
    if op not in OPERATORS:
        raise ValidationError(
            f"The operator “{op}” (on “{name}”) is unknown. Operators: {', '.join(OPERATORS)}."
        )
    field = path.field
    if op in ORDERED and (field.is_relation or not isinstance(field, ORDERED_TYPES) or field.choices):
        raise ValidationError(
            f"The operator “{op}” does not apply to the field “{name}” ({_kind(field)}): "
            "use it on numbers and dates."
        )
    if op in TEXT_ONLY and not (field.is_relation or isinstance(field, models.CharField | models.TextField)):
        raise ValidationError(
            f"The operator “{op}” does not apply to the field “{name}” ({_kind(field)}): "
            "use it on text, tags and related records."
        )
    if op in NO_VALUE:
        return {"field": name, "op": op}
    value = node.get("value")
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ValidationError(f"“{name}” {op}: give a list of values.")
        coerced = [_coerce(field, v, name, op) for v in value]
    else:
        coerced = _coerce(field, value, name, op)
    _ = coerced
    return {"field": name, "op": op, "value": value}


def conditions_validate(model: type[models.Model], conditions: Any) -> dict:
    """The conditions, checked against ``model``'s fields; ValidationError with one message per problem."""
    if conditions in (None, "", {}, []):
        return {}
    if isinstance(conditions, list):
        conditions = {"all": conditions}
    errors: list[str] = []
    count = 0

    def walk(node, where: str) -> dict | None:
        nonlocal count
        if not isinstance(node, dict):
            errors.append(f"{where}: a condition is an object with field, op and value.")
            return None
        groups = [key for key in ("all", "any") if key in node]
        if groups:
            key = groups[0]
            if len(node) != 1 or not isinstance(node[key], list):
                errors.append(f'{where}: a group is {{"all": [...]}} or {{"any": [...]}}.')
                return None
            children = [walk(child, f"{where}.{key}[{i}]") for i, child in enumerate(node[key])]
            return {key: [c for c in children if c is not None]}
        count += 1
        try:
            return _leaf_validate(model, node)
        except ValidationError as exc:
            errors.extend(f"{where}: {message}" for message in exc.messages)
            return None

    cleaned = walk(conditions, "conditions")
    if count > MAX_CONDITIONS:
        errors.append(f"conditions: at most {MAX_CONDITIONS} conditions in a rule.")
    if errors:
        raise ValidationError(errors)
    return cleaned or {}


def _leaf_q(model, node: dict) -> Q:
    path = path_resolve(model, node["field"])
    op, field, lookup = node["op"], path.field, node["field"]
    value = node.get("value")
    is_tag = field.is_relation and field.related_model._meta.model_name == "tag"

    def related_lookup(v) -> tuple[str, Any]:
        if is_tag and isinstance(v, str):
            return f"{lookup}__name__iexact", v
        return f"{lookup}__pk" if field.is_relation else lookup, v

    if op in NO_VALUE:
        if field.is_relation and (field.many_to_many or field.one_to_many):
            q = Q(**{f"{lookup}__isnull": False})
        elif isinstance(field, models.CharField | models.TextField):
            q = ~Q(**{lookup: ""}) & Q(**{f"{lookup}__isnull": False})
        else:
            q = Q(**{f"{lookup}__isnull": False})
        positive, negate = q, op == "is_empty"
    elif op in ("eq", "ne", "contains", "not_contains"):
        if op in TEXT_ONLY and not field.is_relation:
            # icontains, through the search text's index where the column has none of its own.
            key, v = None, column_contains(model, lookup, value)
        elif op in TEXT_ONLY or field.is_relation:
            key, v = related_lookup(value)
        elif isinstance(field, models.CharField | models.TextField) and not field.choices:
            key, v = f"{lookup}__iexact", value
        else:
            key, v = lookup, field.to_python(value)
        positive, negate = (v if key is None else Q(**{key: v})), op in ("ne", "not_contains")
    elif op in ("in", "not_in"):
        if field.is_relation:
            names = [v for v in value if isinstance(v, str)]
            ids = [int(v) for v in value if not isinstance(v, str)]
            positive = Q(**{f"{lookup}__pk__in": ids}) if ids else Q(pk__in=[])
            if names:
                positive |= Q(**{f"{lookup}__name__in": names})
        else:
            positive = Q(**{f"{lookup}__in": [field.to_python(v) for v in value]})
        negate = op == "not_in"
    else:
        positive, negate = Q(**{f"{lookup}__{op}": field.to_python(value)}), False
    if path.many:
        # A to-many path: "some related row matches", never duplicating the record's row.
        positive = Q(Exists(model._default_manager.filter(positive, pk=OuterRef("pk"))))
    return ~positive if negate else positive


def conditions_q(model: type[models.Model], conditions: dict) -> Q:
    """The conditions as one ``Q`` on ``model`` (``Q()`` for none)."""
    if not conditions:
        return Q()
    if "all" in conditions or "any" in conditions:
        key = "all" if "all" in conditions else "any"
        parts = [conditions_q(model, child) for child in conditions[key]]
        result = Q()
        for part in parts:
            result = (result & part) if key == "all" else (result | part if result else part)
        return result
    return _leaf_q(model, conditions)


def conditions_leaves(conditions: dict) -> list[dict]:
    """Every condition of the tree, in order (the preview shows which hold)."""
    if not conditions:
        return []
    if "all" in conditions or "any" in conditions:
        return [
            leaf
            for child in conditions.get("all", conditions.get("any", []))
            for leaf in conditions_leaves(child)
        ]
    return [conditions]


def condition_text(node: dict) -> str:
    op = OPERATORS.get(node["op"], node["op"])
    return f"{node['field']} {op}" + ("" if node["op"] in NO_VALUE else f" {node.get('value')!r}")
