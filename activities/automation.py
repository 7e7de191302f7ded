"""What activities registers into crm's automation engine: activities as records rules act on, and
the action that creates an activity or task on the record."""

import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from activities import services
from activities.models import CLOSED_ACTIVITY_STATUSES, Activity, ActivityType
from crm.automation.actions import _one_id, render
from crm.automation.engine import ActionContext
from crm.automation.registry import register_action, register_model

# The record kinds an activity links to, and the activity's field for each.
LINKS = {
    "crm.Lead": "lead",
    "sales.Opportunity": "opportunity",
    "crm.Contact": "contact",
    "crm.Account": "account",
}
OWNERS = ("record_owner", "rule_owner", "none")


def create_activity_validate(params: dict, entry) -> dict:
    subject = params.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        raise ValidationError("subject: what the activity is, e.g. “Call {{ record.name }}”.")
    kind = params.get("activity_type", ActivityType.TASK)
    if kind not in ActivityType.values:
        raise ValidationError(f"activity_type: “{kind}” is not one of {', '.join(ActivityType.values)}.")
    try:
        due = int(params.get("due_in_days", 0))
    except (TypeError, ValueError):
        raise ValidationError("due_in_days: a whole number of days.") from None
    if not -3650 <= due <= 3650:
        raise ValidationError("due_in_days: between -3650 and 3650.")
    owner = params.get("owner", "record_owner")
    if owner not in OWNERS:
        owner = _one_id(owner, "owner (a user id, record_owner, rule_owner or none)", get_user_model())
    return {
        "subject": subject[:200],
        "activity_type": kind,
        "due_in_days": due,
        "owner": owner,
        "description": str(params.get("description") or ""),
    }


def _owner(ctx: ActionContext):
    owner = ctx.params.get("owner", "record_owner")
    if owner == "record_owner":
        return getattr(ctx.instance, "owner", None)
    if owner == "rule_owner":
        return ctx.rule.owner
    if owner == "none":
        return None
    return get_user_model().objects.get(pk=owner)


def create_activity_execute(ctx: ActionContext) -> str:
    record = ctx.require_instance()
    data = {
        "subject": render(ctx.params["subject"], ctx)[:200],
        "activity_type": ctx.params["activity_type"],
        "description": render(ctx.params.get("description", ""), ctx),
        "due_date": timezone.now() + datetime.timedelta(days=ctx.params["due_in_days"]),
        "owner": _owner(ctx),
        LINKS[ctx.entry.label]: record,
    }
    activity = services.activity_create(user=ctx.user, data=data)
    return f"Created the {activity.activity_type} #{activity.pk} “{activity.subject}”"


def create_activity_preview(ctx: ActionContext) -> str:
    ctx.require_instance()
    owner = _owner(ctx)
    return (
        f"Would create a {ctx.params['activity_type']} “{render(ctx.params['subject'], ctx)}” due in "
        f"{ctx.params['due_in_days']} days, owned by {owner.get_username() if owner else 'nobody'}"
    )


def register() -> None:
    register_model(
        Activity,
        event_name="activity",
        update=lambda *, instance, user, data: services.activity_update(
            activity=instance, user=user, data=data
        ),
        open_q=~Q(status__in=CLOSED_ACTIVITY_STATUSES),
    )
    register_action(
        "create_activity",
        label="Create an activity or task on the record",
        validate=create_activity_validate,
        execute=create_activity_execute,
        preview=create_activity_preview,
        models=tuple(LINKS),
        example={"subject": "Call {{ record.name }}", "activity_type": "task", "due_in_days": 2},
        params={"subject": "", "activity_type": "task", "due_in_days": 2, "description": "", "owner": ""},
    )
