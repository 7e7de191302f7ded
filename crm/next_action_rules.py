"""crm's next-best-action rules, over leads: a hot lead nobody owns, a new lead nobody contacted, a lead
gone quiet. (Tasks and meetings on leads are the activities app's rules.)"""

import datetime

from django.conf import settings
from django.db.models import Q

from crm.admin.next_actions import register_next_actions_panel
from crm.models import Lead, LeadStatus, Rating
from crm.next_actions import (
    Context,
    NextAction,
    NextActionRule,
    NextActionSource,
    days_since,
    plural,
    record_admin_url,
    register_next_action_rule,
    register_next_action_source,
)
from crm.selectors import lead_visible_to, owned_records_owned_by

LEAD = "crm.lead"


def lead_open_records(user):
    return lead_visible_to(user).filter(status=LeadStatus.OPEN).select_related("stage", "owner")


def lead_owned_open_records(user):
    return owned_records_owned_by(Lead.objects.filter(status=LeadStatus.OPEN), user).select_related(
        "stage", "owner"
    )


def _hot_unowned(lead: Lead, context: Context) -> NextAction:
    return NextAction(
        rule="lead_hot_unowned",
        reason="Hot lead without an owner",
        label="Assign an owner",
        kind="assign",
        url=f"{record_admin_url(lead)}#id_owner",
        urgency=days_since(lead.created_at, context),
    )


def _not_contacted(lead: Lead, context: Context) -> NextAction:
    days = days_since(lead.created_at, context)
    return NextAction(
        rule="lead_not_contacted",
        reason=f"New {plural(days, 'day')} ago, not contacted yet",
        label="Log a call",
        kind="call",
        urgency=days,
    )


def _quiet(lead: Lead, context: Context) -> NextAction:
    days = days_since(lead.last_activity_at, context)
    return NextAction(
        rule="lead_quiet",
        reason=f"No activity for {plural(days, 'day')} in {lead.stage.name}",
        label="Log a call",
        kind="call",
        urgency=days,
    )


def _days_ago(context: Context, days: int) -> datetime.datetime:
    return context.now - datetime.timedelta(days=days)


RULES = (
    NextActionRule(
        key="lead_hot_unowned",
        weight=90,
        annotations=lambda context: {},
        condition=lambda context: Q(rating=Rating.HOT, owner__isnull=True),
        action=_hot_unowned,
    ),
    NextActionRule(
        key="lead_not_contacted",
        weight=70,
        annotations=lambda context: {},
        condition=lambda context: Q(
            last_activity_at__isnull=True,
            created_at__lt=_days_ago(context, settings.CRM_NEXT_ACTION_FIRST_CONTACT_DAYS),
        ),
        action=_not_contacted,
    ),
    NextActionRule(
        key="lead_quiet",
        weight=50,
        annotations=lambda context: {},
        condition=lambda context: Q(
            last_activity_at__isnull=False,
            last_activity_at__lt=_days_ago(context, settings.CRM_NEXT_ACTION_QUIET_DAYS),
        ),
        action=_quiet,
    ),
)


def register() -> None:
    register_next_action_source(
        NextActionSource(
            model_label=LEAD,
            record_type="lead",
            permission="crm.view_lead",
            open_records=lead_open_records,
            owned_open_records=lead_owned_open_records,
        )
    )
    for rule in RULES:
        register_next_action_rule(LEAD, rule)
    register_next_actions_panel(LEAD)
