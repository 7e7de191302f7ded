"""sales's next-best-action rules, over deals and their quotes: an accepted quote on a deal still open, a
sent quote left unanswered, a drafted quote never sent, a close date gone by, a deal gone quiet."""

import datetime

from django.conf import settings
from django.db.models import (
    CharField,
    DateField,
    DateTimeField,
    IntegerField,
    JSONField,
    OuterRef,
    Q,
    Subquery,
)
from django.db.models.functions import JSONObject
from django.urls import reverse
from django.utils.formats import date_format

from crm.admin.next_actions import register_next_actions_panel
from crm.next_actions import (
    Context,
    JSONPart,
    NextAction,
    NextActionRule,
    NextActionSource,
    days_since,
    plural,
    record_admin_url,
    register_next_action_rule,
    register_next_action_source,
)
from crm.selectors import owned_records_owned_by
from sales.models import Opportunity, OpportunityStatus
from sales.models_quotes import Quote, QuoteStatus
from sales.selectors import opportunity_visible_to

OPPORTUNITY = "sales.opportunity"


def opportunity_open_records(user):
    return (
        opportunity_visible_to(user)
        .filter(status=OpportunityStatus.OPEN)
        .select_related("stage", "owner", "account", "contact")
    )


def opportunity_owned_open_records(user):
    return owned_records_owned_by(
        Opportunity.objects.filter(status=OpportunityStatus.OPEN), user
    ).select_related("stage", "owner", "account", "contact")


def _current_quote(status: str, prefix: str, moment: str, *, valid_until: bool = False) -> dict:
    """The deal's newest current (not superseded) quote in ``status``: its id, number and ``moment``
    (and until when it is valid), as one JSON object read by one subquery; ``_quote_parts`` names them."""
    quotes = Quote.objects.filter(
        opportunity=OuterRef("pk"), status=status, superseded_at__isnull=True
    ).order_by(f"-{moment}", "-pk")
    keys = {"id": "pk", "number": "number", "at": moment}
    if valid_until:
        keys["valid_until"] = "valid_until"
    return {prefix: Subquery(quotes.values(quote=JSONObject(**keys))[:1], output_field=JSONField())}


def _quote_parts(prefix: str, *, valid_until: bool = False) -> dict[str, JSONPart]:
    """``{prefix}_id``, ``_number``, ``_at`` (and ``_valid_until``) of the quote ``_current_quote`` read."""
    parts = {
        f"{prefix}_id": JSONPart(prefix, "id", IntegerField()),
        f"{prefix}_number": JSONPart(prefix, "number", CharField()),
        f"{prefix}_at": JSONPart(prefix, "at", DateTimeField()),
    }
    if valid_until:
        parts[f"{prefix}_valid_until"] = JSONPart(prefix, "valid_until", DateField())
    return parts


def _days_ago(context: Context, days: int) -> datetime.datetime:
    return context.now - datetime.timedelta(days=days)


def _quote_accepted(deal: Opportunity, context: Context) -> NextAction:
    return NextAction(
        rule="quote_accepted_deal_open",
        reason=f"Quote {deal.nba_accepted_quote_number} was accepted "
        f"{plural(days_since(deal.nba_accepted_quote_at, context), 'day')} ago; the deal is still open",
        label="Mark the deal won",
        kind="mark_won",
        url=reverse("admin:sales_opportunity_mark_won", args=[deal.pk]),
        urgency=days_since(deal.nba_accepted_quote_at, context),
        target_type="quote",
        target_id=deal.nba_accepted_quote_id,
    )


def _quote_unanswered(deal: Opportunity, context: Context) -> NextAction:
    days = days_since(deal.nba_sent_quote_at, context)
    expired = deal.nba_sent_quote_valid_until is not None and deal.nba_sent_quote_valid_until < context.today
    reason = f"Quote {deal.nba_sent_quote_number} sent {plural(days, 'day')} ago, no answer"
    if expired:
        return NextAction(
            rule="quote_unanswered",
            reason=f"{reason}; it expired on {date_format(deal.nba_sent_quote_valid_until)}",
            label="Revise the quote",
            kind="revise_quote",
            url=reverse("admin:sales_quote_revise", args=[deal.nba_sent_quote_id]),
            urgency=days,
            target_type="quote",
            target_id=deal.nba_sent_quote_id,
        )
    return NextAction(
        rule="quote_unanswered",
        reason=reason,
        label="Call about the quote",
        kind="call",
        urgency=days,
        target_type="quote",
        target_id=deal.nba_sent_quote_id,
    )


def _quote_unsent(deal: Opportunity, context: Context) -> NextAction:
    days = days_since(deal.nba_draft_quote_at, context)
    return NextAction(
        rule="quote_not_sent",
        reason=f"Quote {deal.nba_draft_quote_number} drafted {plural(days, 'day')} ago, not sent",
        label="Send the quote",
        kind="send_quote",
        url=reverse("admin:sales_quote_send", args=[deal.nba_draft_quote_id]),
        urgency=days,
        target_type="quote",
        target_id=deal.nba_draft_quote_id,
    )


def _close_date_passed(deal: Opportunity, context: Context) -> NextAction:
    days = days_since(deal.close_date, context)
    return NextAction(
        rule="close_date_passed",
        reason=f"Close date {date_format(deal.close_date)} passed {plural(days, 'day')} ago, still open",
        label="Update the close date",
        kind="edit",
        url=f"{record_admin_url(deal)}#id_close_date",
        urgency=days,
    )


def _quiet(deal: Opportunity, context: Context) -> NextAction:
    if deal.last_activity_at is None:
        days = days_since(deal.created_at, context)
        reason = f"No activity since it was created {plural(days, 'day')} ago, in {deal.stage.name}"
    else:
        days = days_since(deal.last_activity_at, context)
        reason = f"No activity for {plural(days, 'day')} in {deal.stage.name}"
    return NextAction(rule="deal_quiet", reason=reason, label="Log a call", kind="call", urgency=days)


def _quiet_since(context: Context, days: int) -> Q:
    """No activity logged for ``days`` (or, never touched, created that long ago)."""
    before = _days_ago(context, days)
    return Q(last_activity_at__lt=before) | Q(last_activity_at__isnull=True, created_at__lt=before)


RULES = (
    NextActionRule(
        key="quote_accepted_deal_open",
        weight=95,
        annotations=lambda context: _current_quote(QuoteStatus.ACCEPTED, "nba_accepted_quote", "answered_at"),
        parts=_quote_parts("nba_accepted_quote"),
        condition=lambda context: Q(nba_accepted_quote_id__isnull=False),
        action=_quote_accepted,
    ),
    NextActionRule(
        key="quote_unanswered",
        weight=80,
        annotations=lambda context: _current_quote(
            QuoteStatus.SENT, "nba_sent_quote", "sent_at", valid_until=True
        ),
        parts=_quote_parts("nba_sent_quote", valid_until=True),
        # Sent long enough ago, and nothing logged on the deal since (a call about it, an email).
        condition=lambda context: (
            Q(nba_sent_quote_at__lt=_days_ago(context, settings.CRM_NEXT_ACTION_QUOTE_DAYS))
            & _quiet_since(context, settings.CRM_NEXT_ACTION_QUOTE_DAYS)
        ),
        action=_quote_unanswered,
    ),
    NextActionRule(
        key="close_date_passed",
        weight=70,
        annotations=lambda context: {},
        condition=lambda context: Q(close_date__lt=context.today),
        action=_close_date_passed,
    ),
    NextActionRule(
        key="quote_not_sent",
        weight=65,
        annotations=lambda context: _current_quote(QuoteStatus.DRAFT, "nba_draft_quote", "created_at"),
        parts=_quote_parts("nba_draft_quote"),
        condition=lambda context: Q(nba_draft_quote_at__lt=_days_ago(context, 1)),
        action=_quote_unsent,
    ),
    NextActionRule(
        key="deal_quiet",
        weight=55,
        annotations=lambda context: {},
        condition=lambda context: _quiet_since(context, settings.CRM_NEXT_ACTION_QUIET_DAYS),
        action=_quiet,
    ),
)


def register() -> None:
    register_next_action_source(
        NextActionSource(
            model_label=OPPORTUNITY,
            record_type="opportunity",
            permission="sales.view_opportunity",
            open_records=opportunity_open_records,
            owned_open_records=opportunity_owned_open_records,
        )
    )
    for rule in RULES:
        register_next_action_rule(OPPORTUNITY, rule)
    register_next_actions_panel(OPPORTUNITY)
