"""Churn risk of customer accounts (0–100, with its reasons): an explainable points model fitted on the
accounts' own history and retrained by beat (``activities.tasks.churn_retrain``, daily).

Signals, each present or not for an account on a day:

- ``falling_activity``: fewer activities in the last 90 days than in the 90 days before (but some);
- ``no_activity``: no activity in the last 90 days;
- ``no_recent_win``: no deal won for more than CRM_CHURN_NO_WIN_MONTHS months (12);
- ``lost_renewal``: a renewal deal lost in the last 12 months.
(Open tickets, which now exist, are not a signal yet.)

Fitting (naive Bayes with add-one smoothing, i.e. a points model): the history is every customer account
(one with a won deal) 180 days ago, its signals as of that day, and whether it churned since: won no deal
in the 180 days after. For a signal s, P(s | churned) = (churned with s + 1) / (churned + 2) and
P(s | stayed) likewise; its points are ln(P(s|churned) / P(s|stayed)) − ln(P(¬s|churned) / P(¬s|stayed)),
and the base is the prior log-odds of churn plus every signal's absent term. An account's risk is
100 × 1 / (1 + e^−(base + the points of its signals)); its reasons are its signals with their points
(shown ×10, rounded). With fewer than CRM_CHURN_MIN_HISTORY accounts in the history (or none or all
churned) the default points below are used and the model says so.

Activities count for an account when linked to it, to one of its deals or to one of its contacts. Two
grouped queries read everything (the deals by account, the activities by account); the scores are
written in bulk.
"""

import datetime
import math
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from activities.models import Activity
from crm.actors import Actor
from crm.insights import churn_risks_store
from sales.models import Opportunity, OpportunityStatus, OpportunityType

WINDOW = datetime.timedelta(days=90)
HORIZON = datetime.timedelta(days=180)
YEAR = datetime.timedelta(days=365)
SIGNALS = ("falling_activity", "no_activity", "no_recent_win", "lost_renewal")
DEFAULT_BASE = -2.0
DEFAULT_POINTS = {"falling_activity": 0.8, "no_activity": 1.4, "no_recent_win": 1.6, "lost_renewal": 1.2}


def _instant(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=timezone.get_current_timezone())


def _deal_facts(today: datetime.date, start: datetime.date) -> dict[int, dict[str, Any]]:
    """Per account with a deal: its last win as of ``today`` and ``start``, wins after ``start``, and
    renewals lost in the year before each day."""
    won, lost_renewal = (
        Q(status=OpportunityStatus.WON),
        Q(status=OpportunityStatus.LOST, opportunity_type=OpportunityType.RENEWAL),
    )
    rows = (
        Opportunity.objects.filter(account__isnull=False, close_date__isnull=False)
        .order_by()
        .values("account_id")
        .annotate(
            last_win=Max("close_date", filter=won & Q(close_date__lte=today)),
            last_win_then=Max("close_date", filter=won & Q(close_date__lte=start)),
            won_since=Count("pk", filter=won & Q(close_date__gt=start, close_date__lte=today)),
            lost_renewals=Count(
                "pk", filter=lost_renewal & Q(close_date__gt=today - YEAR, close_date__lte=today)
            ),
            lost_renewals_then=Count(
                "pk", filter=lost_renewal & Q(close_date__gt=start - YEAR, close_date__lte=start)
            ),
        )
    )
    return {row.pop("account_id"): row for row in rows if row["last_win"] is not None}


def _activity_facts(today: datetime.date, start: datetime.date) -> dict[int, dict[str, int]]:
    """Per account: activities logged in the 90 days before ``today`` and the 90 before those, and the
    same before ``start``."""
    windows = {
        "recent": (today - WINDOW, today),
        "before": (today - 2 * WINDOW, today - WINDOW),
        "recent_then": (start - WINDOW, start),
        "before_then": (start - 2 * WINDOW, start - WINDOW),
    }
    earliest = min(begin for begin, _end in windows.values())
    rows = (
        Activity.objects.filter(created_at__gte=_instant(earliest), created_at__lt=_instant(today))
        .annotate(key=Coalesce("account_id", "opportunity__account_id", "contact__account_id"))
        .filter(key__isnull=False)
        .order_by()
        .values("key")
        .annotate(
            **{
                name: Count("pk", filter=Q(created_at__gte=_instant(begin), created_at__lt=_instant(end)))
                for name, (begin, end) in windows.items()
            }
        )
    )
    return {row.pop("key"): row for row in rows}


def account_signals(*, last_win, recent: int, before: int, lost_renewals: int, day: datetime.date) -> dict:
    """The signals present for an account on ``day``: code → the reason's words."""
    found = {}
    if recent == 0:
        found["no_activity"] = "No activity in the last 90 days"
    elif recent < before:
        found["falling_activity"] = f"Activity fell: {recent} in the last 90 days against {before} before"
    months = settings.CRM_CHURN_NO_WIN_MONTHS
    if last_win is not None and (day - last_win).days > months * 365.25 / 12:
        found["no_recent_win"] = f"No won deal for {months} months (last on {last_win:%Y-%m-%d})"
    if lost_renewals:
        found["lost_renewal"] = (
            f"{lost_renewals} renewal{'s' if lost_renewals > 1 else ''} lost in the last 12 months"
        )
    return found


def churn_fit(history: list[tuple[set[str], bool]]) -> dict[str, Any]:
    """The points model from (signals present, churned) per account of the history."""
    total = len(history)
    churned = sum(1 for _signals, lost in history if lost)
    stayed = total - churned
    if total < settings.CRM_CHURN_MIN_HISTORY or churned == 0 or stayed == 0:
        return {
            "base": DEFAULT_BASE,
            "points": dict(DEFAULT_POINTS),
            "accounts": total,
            "churned": churned,
            "fitted": False,
        }
    base = math.log((churned + 1) / (stayed + 1))
    points = {}
    for signal in SIGNALS:
        with_churned = sum(1 for signals, lost in history if lost and signal in signals)
        with_stayed = sum(1 for signals, lost in history if not lost and signal in signals)
        p_churned = (with_churned + 1) / (churned + 2)
        p_stayed = (with_stayed + 1) / (stayed + 2)
        present = math.log(p_churned / p_stayed)
        absent = math.log((1 - p_churned) / (1 - p_stayed))
        base += absent
        points[signal] = present - absent
    return {"base": base, "points": points, "accounts": total, "churned": churned, "fitted": True}


def churn_score(model: dict[str, Any], signals: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    """(0–100, reasons largest first) of an account with ``signals``."""
    log_odds = model["base"] + sum(model["points"][code] for code in signals)
    score = round(100 / (1 + math.exp(-log_odds)))
    reasons = sorted(
        (
            {"code": code, "text": text, "points": round(model["points"][code] * 10)}
            for code, text in signals.items()
        ),
        key=lambda reason: (-reason["points"], reason["code"]),
    )
    return max(0, min(100, score)), reasons


def churn_retrain(*, user: Actor, today: datetime.date | None = None) -> dict[str, Any]:
    """Fit the model on the history, score every customer account as of ``today``, store both."""
    today = today or timezone.localdate()
    start = today - HORIZON
    deals = _deal_facts(today, start)
    activities: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    activities.update(_activity_facts(today, start))
    history = []
    for pk, facts in deals.items():
        if facts["last_win_then"] is None:
            continue  # not a customer yet on that day
        done = activities.get(pk, {})
        signals = account_signals(
            last_win=facts["last_win_then"],
            recent=done.get("recent_then", 0),
            before=done.get("before_then", 0),
            lost_renewals=facts["lost_renewals_then"],
            day=start,
        )
        history.append((set(signals), facts["won_since"] == 0))
    model = churn_fit(history)
    scores = {}
    for pk, facts in deals.items():
        done = activities.get(pk, {})
        signals = account_signals(
            last_win=facts["last_win"],
            recent=done.get("recent", 0),
            before=done.get("before", 0),
            lost_renewals=facts["lost_renewals"],
            day=today,
        )
        scores[pk] = churn_score(model, signals)
    churn_risks_store(user=user, model=model, scores=scores, now=timezone.now())
    return {**model, "scored": len(scores)}
