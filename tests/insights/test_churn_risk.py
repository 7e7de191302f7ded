"""Churn risk: the points model fitted by hand on a fixed history, and a fixed data set whose ranking is
known, shown in the API and the admin only to those who may change the account."""

import datetime
import math

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from activities.churn import churn_fit, churn_retrain, churn_score
from activities.models import Activity
from crm.actors import SYSTEM
from crm.models import Account, AccountChurnRisk, ChurnModel
from sales.models import Opportunity
from tests.factories import AccountFactory, ActivityFactory, OpportunityFactory

TODAY = datetime.date(2026, 12, 1)


def test_points_fitted_by_hand(settings):
    settings.CRM_CHURN_MIN_HISTORY = 5
    both, silent = {"no_activity", "no_recent_win"}, {"no_activity"}
    history = [(both, True)] * 4 + [(silent, True)] + [(set(), False)] * 5
    model = churn_fit(history)
    # 5 churned, 5 stayed. no_activity: 5/5 churned, 0/5 stayed: P = 6/7 and 1/7, points ln 6 − ln(1/6).
    assert model["fitted"] is True
    assert model["points"]["no_activity"] == pytest.approx(2 * math.log(6))
    # no_recent_win: 4/5 and 0/5: P = 5/7 and 1/7: ln 5 − ln((2/7) / (6/7)) = ln 5 + ln 3.
    assert model["points"]["no_recent_win"] == pytest.approx(math.log(15))
    assert model["points"]["falling_activity"] == pytest.approx(0)
    # Base: prior ln(6/6) plus each absent term: ln(1/6) + ln(1/3).
    assert model["base"] == pytest.approx(math.log(1 / 18))
    scores = {
        name: churn_score(model, {code: code for code in signals})[0]
        for name, signals in {"none": set(), "silent": silent, "both": both}.items()
    }
    # 100 / (1 + 18) = 5; 100 / (1 + 18/36) = 67; 100 / (1 + 18/540) = 97.
    assert scores == {"none": 5, "silent": 67, "both": 97}


def test_too_little_history_uses_the_default_points(settings):
    settings.CRM_CHURN_MIN_HISTORY = 20
    model = churn_fit([({"no_activity"}, True), (set(), False)])
    assert model["fitted"] is False
    assert churn_score(model, {})[0] == 12  # 100 / (1 + e^2)


def _activities(account, days):
    for day in days:
        item = ActivityFactory(account=account, subject=f"{account.name} {day}")
        Activity.objects.filter(pk=item.pk).update(
            created_at=datetime.datetime.fromisoformat(day).replace(tzinfo=datetime.UTC)
        )


@pytest.fixture
def customers(personas, stages):
    owner, outsider = personas.users["owner"], personas.users["outsider"]

    def deal(account, close, status="won", kind="new_business"):
        made = OpportunityFactory(
            account=account,
            owner=account.owner,
            stage=stages["Won" if status == "won" else "Lost"],
            close_date=datetime.date.fromisoformat(close),
            opportunity_type=kind,
        )
        closed = (
            datetime.datetime.fromisoformat(close).replace(tzinfo=datetime.UTC) if status != "open" else None
        )
        Opportunity.objects.filter(pk=made.pk).update(status=status, closed_at=closed)

    loyal = AccountFactory(name="Loyal", owner=owner)
    deal(loyal, "2026-10-01")
    _activities(loyal, ["2026-06-20", "2026-10-05", "2026-11-01", "2026-11-20"])
    fading = AccountFactory(name="Fading", owner=owner)
    deal(fading, "2026-03-01")
    _activities(fading, ["2026-06-10", "2026-07-01", "2026-08-01", "2026-08-20", "2026-10-10"])
    silent = AccountFactory(name="Silent", owner=outsider)
    deal(silent, "2025-06-01")
    deal(silent, "2026-09-01", status="lost", kind="renewal")
    prospect = AccountFactory(name="Prospect", owner=owner)
    deal(prospect, "2026-12-31", status="open")
    return {"loyal": loyal, "fading": fading, "silent": silent, "prospect": prospect}


@pytest.mark.django_db
def test_known_ranking_with_reasons(customers, settings):
    settings.CRM_CHURN_MIN_HISTORY = 20
    result = churn_retrain(user=SYSTEM, today=TODAY)
    assert result["scored"] == 3 and result["fitted"] is False
    risks = {r.account.name: r for r in AccountChurnRisk.objects.select_related("account")}
    # Loyal: no sign, sigmoid(−2) = 12. Fading: 1 activity in the last 90 days against 4 before,
    # sigmoid(−2 + 0.8) = 23. Silent: no activity, no win since 2025-06-01, a renewal lost:
    # sigmoid(−2 + 1.4 + 1.6 + 1.2) = 90. The prospect has won nothing: no score.
    assert {name: r.score for name, r in risks.items()} == {"Loyal": 12, "Fading": 23, "Silent": 90}
    assert [r["code"] for r in risks["Silent"].reasons] == ["no_recent_win", "no_activity", "lost_renewal"]
    assert risks["Silent"].reasons[0] == {
        "code": "no_recent_win",
        "text": "No won deal for 12 months (last on 2025-06-01)",
        "points": 16,
    }
    assert risks["Fading"].reasons[0]["text"] == "Activity fell: 1 in the last 90 days against 4 before"
    assert ChurnModel.objects.get().accounts == 2  # Fading and Silent were customers 180 days before
    # Retraining replaces, never duplicates.
    churn_retrain(user=SYSTEM, today=TODAY)
    assert AccountChurnRisk.objects.count() == 3 and ChurnModel.objects.count() == 1


@pytest.mark.django_db
def test_shown_filtered_and_sorted_only_where_one_may_change_the_account(customers, personas, client):
    churn_retrain(user=SYSTEM, today=TODAY)
    admin = APIClient()
    admin.force_authenticate(personas.users["crm_admin"])
    body = admin.get("/api/v1/crm/accounts/?ordering=-churn_risk").json()["results"]
    assert [(a["name"], a["churn_risk"]) for a in body] == [
        ("Silent", 90),
        ("Fading", 23),
        ("Loyal", 12),
        ("Prospect", None),
    ]
    high = admin.get("/api/v1/crm/accounts/?churn_risk=high").json()["results"]
    assert [a["name"] for a in high] == ["Silent"]
    at_least = admin.get("/api/v1/crm/accounts/?churn_min=20&ordering=name").json()["results"]
    assert [a["name"] for a in at_least] == ["Fading", "Silent"]
    # The owner (West) reads the outsider's account Silent but is not told its churn risk.
    rep = APIClient()
    rep.force_authenticate(personas.users["owner"])
    seen = {a["name"]: a["churn_risk"] for a in rep.get("/api/v1/crm/accounts/").json()["results"]}
    assert seen == {"Loyal": 12, "Fading": 23, "Silent": None, "Prospect": None}
    assert rep.get("/api/v1/crm/accounts/?churn_risk=high").json()["results"] == []
    client.force_login(personas.users["crm_admin"])
    listing = client.get("/admin/crm/account/?churn_risk=high").content.decode()
    assert "Silent" in listing and "Loyal" not in listing
    page = client.get(f"/admin/crm/account/{customers['silent'].pk}/change/").content.decode()
    assert "90 / 100" in page and "1 renewal lost in the last 12 months" in page


@pytest.mark.django_db
def test_the_command_retrains(customers, capsys):
    call_command("crm_churn_retrain")
    assert "3 accounts scored" in capsys.readouterr().out


@pytest.mark.django_db
def test_whether_a_rep_is_told_an_accounts_churn_risk_is_read_from_that_account_alone(personas):
    # Written as "the account is among those the rep may change", PostgreSQL hashed every such
    # account of the table before the first row, twice (score and reasons): 70 ms of a conversion's
    # 250 at 100,000 accounts. The rule is a condition on the account's own owner.
    from crm.insights import account_churn_annotations

    sql = str(Account.objects.annotate(**account_churn_annotations(personas.users["owner"])).query)
    assert sql.count('FROM "crm_account"') == 1, sql
