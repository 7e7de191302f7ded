"""Insights on crm's records that other apps compute: storing an account's churn risk (the activities
app fits the model, crm keeps the figure), and reading it only where the reader may change the account.

Churn risk draws on every deal and activity of an account, so it is shown to those who may change the
account (its owner's team, CRM Admins), never to a rep of another team reading a shared account.
"""

import datetime
from collections.abc import Mapping

from django.db import transaction
from django.db.models import Case, F, IntegerField, JSONField, Q, QuerySet, Value, When

from crm.actors import Actor, actor_ensure_given
from crm.models import AccountChurnRisk, ChurnModel, StageTiming
from crm.selectors import shared_records_editable_condition, user_sees_everything

WRITE_BATCH = 5000


@transaction.atomic
def churn_risks_store(
    *,
    user: Actor,
    model: Mapping,
    scores: Mapping[int, tuple[int, list]],
    now: datetime.datetime,
) -> int:
    """Replace the fitted model and every account's churn risk (``scores``: account id → (score,
    reasons)); accounts left out lose theirs. Returns how many were written."""
    actor_ensure_given(user)
    ChurnModel.objects.all().delete()
    ChurnModel.objects.create(fitted_at=now, **model)
    # Accounts no longer scored (no won deal any more) lose theirs; the others are rewritten below.
    AccountChurnRisk.objects.filter(scored_at__lt=now).delete()
    rows = [
        AccountChurnRisk(account_id=pk, score=score, reasons=reasons, scored_at=now)
        for pk, (score, reasons) in scores.items()
    ]
    for start in range(0, len(rows), WRITE_BATCH):
        AccountChurnRisk.objects.bulk_create(
            rows[start : start + WRITE_BATCH],
            update_conflicts=True,
            unique_fields=["account"],
            update_fields=["score", "reasons", "scored_at"],
        )
    return len(rows)


def account_churn_annotations(user: Actor) -> dict:
    """``churn_score`` and ``churn_reasons`` of each account, None where ``user`` may not change it."""
    if user_sees_everything(user) or getattr(user, "is_superuser", False):
        return {"churn_score": F("churn_risk__score"), "churn_reasons": F("churn_risk__reasons")}
    shown = shared_records_editable_condition(user)
    return {
        "churn_score": Case(
            When(shown, then=F("churn_risk__score")), default=Value(None), output_field=IntegerField()
        ),
        "churn_reasons": Case(
            When(shown, then=F("churn_risk__reasons")), default=Value(None), output_field=JSONField()
        ),
    }


def churn_band_filter(queryset: QuerySet, band: str) -> QuerySet:
    """high (70 and more), medium (40–69), low (under 40), none (no score)."""
    bands = {
        "high": Q(churn_score__gte=70),
        "medium": Q(churn_score__gte=40, churn_score__lt=70),
        "low": Q(churn_score__lt=40),
        "none": Q(churn_score__isnull=True),
    }
    return queryset.filter(bands[band]) if band in bands else queryset


@transaction.atomic
def stage_timings_store(
    *, user: Actor, timings: Mapping[int, tuple[float, int]], now: datetime.datetime
) -> int:
    """Replace every stage's usual time (``timings``: stage id → (usual days, stays))."""
    actor_ensure_given(user)
    StageTiming.objects.all().delete()
    StageTiming.objects.bulk_create(
        StageTiming(stage_id=pk, usual_days=days, stays=stays, computed_at=now)
        for pk, (days, stays) in timings.items()
    )
    return len(timings)
