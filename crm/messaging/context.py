"""What a template may name: a record's fields and its related records, as plain values only.

The context handed to a template is built here from these declarations, as dicts of strings, numbers
and dates: no model instance reaches the template, so a placeholder can call no method and run no
query. The same declarations tell the validator which placeholders exist.
"""

from typing import Any

from crm.actors import is_system
from crm.models import Contact, Lead

# A name → None (a value) or a dict (a related record and what of it may be named).
USER = {"first_name": None, "last_name": None, "full_name": None, "email": None, "username": None}
ACCOUNT = {
    "name": None,
    "website": None,
    "phone": None,
    "industry": None,
    "account_type": None,
    "billing_city": None,
    "billing_country": None,
}
LEAD = {
    "name": None,
    "contact_name": None,
    "email": None,
    "phone": None,
    "company_name": None,
    "job_title": None,
    "priority": None,
    "rating": None,
    "source": None,
    "expected_revenue": None,
    "probability": None,
    "description": None,
    "status": None,
    "score": None,
    "stage": {"name": None},
    "pipeline": {"name": None},
    "owner": USER,
}
CONTACT = {
    "first_name": None,
    "last_name": None,
    "full_name": None,
    "email": None,
    "phone": None,
    "mobile": None,
    "job_title": None,
    "department": None,
    "account": ACCOUNT,
    "owner": USER,
}
# The same names for a lead and a contact, so one template serves both.
RECIPIENT = {"name": None, "first_name": None, "email": None, "company": None}
# A campaign's email fills these (empty in other email): the person's signed links.
CAMPAIGN = {"unsubscribe_url": None, "preferences_url": None}
PLACEHOLDERS: dict[str, Any] = {
    "lead": LEAD,
    "contact": CONTACT,
    "recipient": RECIPIENT,
    "sender": USER,
    "campaign": CAMPAIGN,
}

RECORD_MODELS = {"lead": Lead, "contact": Contact}


def placeholder_names(spec: dict | None = None, prefix: str = "") -> list[str]:
    """Every placeholder, dotted (``lead.owner.email``)."""
    names = []
    for key, sub in (spec or PLACEHOLDERS).items():
        path = f"{prefix}{key}"
        names.extend([path] if sub is None else placeholder_names(sub, path + "."))
    return names


def placeholder_known(path: tuple[str, ...]) -> bool:
    spec: Any = PLACEHOLDERS
    for part in path:
        if not isinstance(spec, dict) or part not in spec:
            return False
        spec = spec[part]
    return spec is None


def record_kind(record) -> str:
    for kind, model in RECORD_MODELS.items():
        if isinstance(record, model):
            return kind
    raise TypeError(f"Templates are filled from leads and contacts, not from {type(record).__name__}.")


def _value(record, name: str):
    field = record._meta.get_field(name)
    value = getattr(record, name)
    if getattr(field, "choices", None) and value:
        return getattr(record, f"get_{name}_display")()
    return "" if value is None else value


def _user(user) -> dict[str, Any]:
    if user is None or is_system(user) or not getattr(user, "pk", None):
        return dict.fromkeys(USER, "")
    return {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "full_name": user.get_full_name() or user.username,
        "email": user.email,
        "username": user.username,
    }


def _plain(record, spec: dict) -> dict[str, Any]:
    return {name: _value(record, name) for name, sub in spec.items() if sub is None and name != "full_name"}


def record_context(record, *, sender=None) -> dict[str, Any]:
    """The values a template sees for ``record`` (a lead or a contact) sent by ``sender``."""
    kind = record_kind(record)
    context: dict[str, Any] = {
        "lead": {},
        "contact": {},
        "sender": _user(sender),
        "campaign": dict.fromkeys(CAMPAIGN, ""),
    }
    if kind == "lead":
        lead = dict(_plain(record, LEAD))
        lead["stage"] = {"name": record.stage.name if record.stage_id else ""}
        lead["pipeline"] = {"name": record.pipeline.name if record.pipeline_id else ""}
        lead["owner"] = _user(record.owner)
        context["lead"] = lead
        name = record.contact_name or record.name
        context["recipient"] = {
            "name": name,
            "first_name": (record.contact_name.split() or [""])[0],
            "email": record.email,
            "company": record.company_name,
        }
    else:
        contact = dict(_plain(record, CONTACT))
        contact["full_name"] = f"{record.first_name} {record.last_name}".strip()
        account = record.account
        contact["account"] = _plain(account, ACCOUNT) if account else dict.fromkeys(ACCOUNT, "")
        contact["owner"] = _user(record.owner)
        context["contact"] = contact
        context["recipient"] = {
            "name": contact["full_name"],
            "first_name": record.first_name,
            "email": record.email,
            "company": account.name if account else "",
        }
    return context
