"""What a branch step may test on a lead or a contact, and how it compares (stored values, not labels)."""

from decimal import Decimal, InvalidOperation

# name → (what it reads on a lead, what it reads on a contact); None: the record has no such field.
CONDITION_FIELDS: dict[str, tuple[str | None, str | None]] = {
    "email": ("email", "email"),
    "phone": ("phone", "phone"),
    "job_title": ("job_title", "job_title"),
    "rating": ("rating", None),
    "priority": ("priority", None),
    "source": ("source", None),
    "status": ("status", None),
    "score": ("score", None),
    "expected_revenue": ("expected_revenue", None),
    "company_name": ("company_name", None),
    "stage": ("stage.name", None),
    "owner": ("owner.username", "owner.username"),
    "account": (None, "account.name"),
    "department": (None, "department"),
    "do_not_call": (None, "do_not_call"),
}


def _read(record, path: str | None):
    if path is None:
        return None
    value = record
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def _number(value) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def condition_holds(record, *, field: str, operator: str, value: str, kind: str) -> bool:
    """Whether ``record`` (of ``kind``: lead or contact) meets ``field operator value``."""
    paths = CONDITION_FIELDS.get(field)
    actual = _read(record, paths[0 if kind == "lead" else 1]) if paths else None
    empty = actual is None or actual == ""
    if operator == "is_empty":
        return empty
    if operator == "is_not_empty":
        return not empty
    if operator in ("greater_than", "less_than"):
        left, right = _number(actual), _number(value)
        if left is None or right is None:
            return False
        return left > right if operator == "greater_than" else left < right
    if isinstance(actual, bool):
        text = "true" if actual else "false"
        same = text == value.strip().lower() or (value.strip().lower() in ("yes", "1") and actual)
    else:
        same = ("" if actual is None else str(actual)).strip().lower() == value.strip().lower()
    return same if operator == "equals" else not same
