"""Commissions (issue 18 item 8): a plan's tiers by quota attainment and its category rates on a rep's
won deals, checked by hand; the clawback of a deal reopened after its statement was approved; states;
who sees and computes which statement; the payroll export; bad plans refused; a fixed number of
queries for computing a statement and for the lists."""

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from crm.actors import SYSTEM
from sales import services
from sales.models import CommissionLine, CommissionPlan, CommissionStatement, ExchangeRate, Quota
from sales.services_commissions import (
    commission_assignment_create,
    commission_plan_create,
    commission_statement_approve,
    commission_statement_compute,
)
from sales.services_quotes import opportunity_line_create
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db
D = Decimal
Q4 = datetime.date(2026, 11, 15)
Q1 = datetime.date(2027, 2, 1)


def won(owner, name, *, close, amount=None, currency="USD", lines=()):
    deal = services.opportunity_create(
        user=SYSTEM,
        data={"name": name, "owner": owner, "close_date": close, "currency": currency, "amount": amount or 0},
    )
    for product, net in lines:
        opportunity_line_create(
            opportunity=deal, user=SYSTEM, data={"product": product, "quantity": 1, "unit_price": net}
        )
    return services.opportunity_mark_won(opportunity=deal, user=SYSTEM)


@pytest.fixture
def plan(db):
    return commission_plan_create(
        user=SYSTEM,
        data={"name": "Standard", "base_rate": D("4")},
        tiers=[
            {"attainment_from": D("0"), "attainment_to": D("100"), "rate": D("5")},
            {"attainment_from": D("100"), "attainment_to": None, "rate": D("8")},
        ],
        category_rates=[{"category": "Services", "rate": D("10")}],
    )


@pytest.fixture
def q4(people, plan):
    """The owner's Q4 2026: quota 100,000 USD, the Standard plan, three deals won (150,000 USD in
    all), and deals that do not count (next quarter, a teammate's, an open one, a lost one)."""
    owner, teammate = people.users["owner"], people.users["teammate"]
    Quota.objects.create(
        user=owner, period="quarter", period_start=datetime.date(2026, 10, 1),
        period_end=datetime.date(2026, 12, 31), target_amount=D("100000"),
    )  # fmt: skip
    for day in (Q4, Q1):
        commission_assignment_create(
            user=SYSTEM, data={"user": owner, "plan": plan, "period": "quarter", "period_start": day}
        )
    ExchangeRate.objects.create(currency="EUR", date=datetime.date(2026, 11, 1), rate=D("1.2"))
    services_product = ProductFactory(sku="SRV", category="Services", unit_price=0)
    hardware = ProductFactory(sku="HW", category="Hardware", unit_price=0)
    deals = {
        "D1": won(owner, "D1 licences", close=datetime.date(2026, 10, 15), amount=D("60000")),
        # 50,000 EUR at 1.2 on its close date: 60,000 USD.
        "D2": won(
            owner, "D2 euro deal", close=datetime.date(2026, 11, 10), amount=D("50000"), currency="EUR"
        ),
        # Lines: 10,000 of Services (10 % in the plan) and 20,000 of Hardware: a 30,000 deal.
        "D3": won(
            owner,
            "D3 project",
            close=datetime.date(2026, 12, 1),
            lines=[(services_product, 10000), (hardware, 20000)],
        ),
        "next quarter": won(owner, "D4 next quarter", close=datetime.date(2027, 1, 5), amount=D("10000")),
        "teammate's": won(teammate, "Teammate deal", close=datetime.date(2026, 11, 1), amount=D("99999")),
    }
    services.opportunity_create(
        user=SYSTEM, data={"name": "Still open", "owner": owner, "close_date": Q4, "amount": 5000}
    )
    return deals


def test_tiers_and_category_rates_checked_by_hand(q4, people):
    statement = commission_statement_compute(user=SYSTEM, rep=people.users["owner"], period="quarter", day=Q4)

    # Won 60,000 + 60,000 + 30,000 = 150,000 of a 100,000 quota: 150 % attainment.
    # Tiers: 100,000 × 5 % + 50,000 × 8 % = 9,000, an effective 6 % of the won amount.
    # D1: 60,000 × 6 % = 3,600. D2: 60,000 × 6 % = 3,600.
    # D3: its Services line 10,000 × 10 % = 1,000, the rest 20,000 × 6 % = 1,200: 2,200.
    assert (statement.won_amount, statement.quota_target, statement.attainment) == (
        D("150000.00"),
        D("100000.00"),
        D("150.00"),
    )
    lines = {line.description: (line.amount, line.commission) for line in statement.lines.all()}
    assert lines == {
        "D1 licences": (D("60000.00"), D("3600.00")),
        "D2 euro deal": (D("60000.00"), D("3600.00")),
        "D3 project": (D("30000.00"), D("2200.00")),
    }
    assert statement.total == D("9400.00")
    assert statement.status == "draft"


def test_without_a_quota_the_base_rate_applies(q4, people):
    Quota.objects.all().delete()
    statement = commission_statement_compute(user=SYSTEM, rep=people.users["owner"], period="quarter", day=Q4)
    # 4 % of 60,000 and 60,000; D3: 1,000 on Services, 20,000 × 4 % = 800.
    assert sorted(statement.lines.values_list("commission", flat=True)) == [
        D("1800.00"),
        D("2400.00"),
        D("2400.00"),
    ]
    assert statement.total == D("6600.00") and statement.attainment is None


def test_a_deal_reopened_after_approval_is_clawed_back_in_the_next_statement_once(q4, people):
    owner = people.users["owner"]
    q4_statement = commission_statement_compute(user=SYSTEM, rep=owner, period="quarter", day=Q4)
    commission_statement_approve(statement=q4_statement, user=SYSTEM)

    services.opportunity_reopen(opportunity=q4["D1"], user=SYSTEM)
    q1_statement = commission_statement_compute(user=SYSTEM, rep=owner, period="quarter", day=Q1)

    # Q1 has no quota: D4 at the base rate, 10,000 × 4 % = 400; D1's 3,600 is clawed back.
    rows = sorted(q1_statement.lines.values_list("kind", "description", "commission"))
    assert rows == [
        ("clawback", "Clawback: D1 licences (reopened after its statement was approved)", D("-3600.00")),
        ("deal", "D4 next quarter", D("400.00")),
    ]
    assert q1_statement.total == D("-3200.00")
    # Computing the draft again does not claw twice; the approved statement keeps its figures.
    again = commission_statement_compute(user=SYSTEM, rep=owner, period="quarter", day=Q1)
    assert again.pk == q1_statement.pk and again.total == D("-3200.00")
    assert CommissionLine.objects.filter(kind="clawback").count() == 1
    q4_statement.refresh_from_db()
    assert q4_statement.total == D("9400.00")


def test_states_move_forward_only(q4, people, api_as):
    owner = people.users["owner"]
    statement = commission_statement_compute(user=SYSTEM, rep=owner, period="quarter", day=Q4)
    api = api_as("crm_admin")
    url = f"/api/v1/crm/commission-statements/{statement.pk}/"
    assert api.post(url + "lock/").status_code == 400  # a draft is approved first
    response = api.post(url + "approve/")
    assert response.status_code == 200 and response.json()["status"] == "approved"
    assert response.json()["approved_by_id"] == people.users["crm_admin"].pk
    # An approved statement is neither computed again nor deleted.
    body = {"user_id": owner.pk, "period": "quarter", "date": "2026-11-15"}
    response = api.post("/api/v1/crm/commission-statements/compute/", body, format="json")
    assert response.status_code == 400 and "status" in response.json()
    assert api.delete(url).status_code == 400
    assert api.post(url + "lock/").json()["status"] == "locked"
    assert api.post(url + "approve/").status_code == 400
    statement.refresh_from_db()
    assert statement.status == "locked" and statement.total == D("9400.00")


def test_the_api_computes_and_reps_see_only_their_own(q4, people, api_as):
    owner = people.users["owner"]
    body = {"user_id": owner.pk, "period": "quarter", "date": "2026-11-15"}
    assert (
        api_as("owner").post("/api/v1/crm/commission-statements/compute/", body, format="json").status_code
        == 403
    )
    assert (
        api_as("manager").post("/api/v1/crm/commission-statements/compute/", body, format="json").status_code
        == 403
    )
    assert CommissionStatement.objects.count() == 0
    response = api_as("crm_admin").post("/api/v1/crm/commission-statements/compute/", body, format="json")
    assert response.status_code == 200, response.content
    statement = response.json()
    assert statement["total"] == "9400.00" and len(statement["lines"]) == 3
    url = f"/api/v1/crm/commission-statements/{statement['id']}/"
    assert api_as("owner").get(url).json()["total"] == "9400.00"
    assert api_as("manager").get(url).status_code == 200  # their team's rep
    assert api_as("outsider").get(url).status_code == 404
    assert api_as("teammate").get("/api/v1/crm/commission-statements/").json()["count"] == 0
    # A rep without a plan for the period: 400 on user_id, nothing written.
    body["user_id"] = people.users["teammate"].pk
    response = api_as("crm_admin").post("/api/v1/crm/commission-statements/compute/", body, format="json")
    assert response.status_code == 400 and "user_id" in response.json()
    assert CommissionStatement.objects.count() == 1


def test_the_payroll_export_lists_each_statement(q4, people, api_as):
    commission_statement_compute(user=SYSTEM, rep=people.users["owner"], period="quarter", day=Q4)
    response = api_as("crm_admin").get("/api/v1/crm/commission-statements/export/", {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["username"], r["period_start"], r["total"], r["deals"], r["attainment"]) for r in rows] == [
        ("owner", "2026-10-01", "9400.00", "3", "150.00")
    ]
    xlsx = api_as("crm_admin").get("/api/v1/crm/commission-statements/export/", {"format": "xlsx"})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert (
        api_as("crm_admin").get("/api/v1/crm/commission-statements/export/", {"format": "pdf"}).status_code
        == 400
    )
    # What a rep exports is what they see.
    assert api_as("outsider").get("/api/v1/crm/commission-statements/export/").content.count(b"\n") == 1


@pytest.mark.parametrize(
    "tiers,field",
    [
        (
            [{"attainment_from": 0, "attainment_to": 120, "rate": 5}, {"attainment_from": 100, "rate": 8}],
            "tiers",
        ),
        ([{"attainment_from": 0, "rate": 5}, {"attainment_from": 100, "rate": 8}], "tiers"),
        ([{"attainment_from": 50, "attainment_to": 10, "rate": 5}], "tiers"),
        ([{"attainment_from": 0, "rate": 150}], "tiers"),
    ],
)
def test_a_plan_with_overlapping_or_bad_tiers_is_refused(people, api_as, tiers, field):
    body = {"name": "Bad", "base_rate": "3", "tiers": tiers}
    response = api_as("crm_admin").post("/api/v1/crm/commission-plans/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not CommissionPlan.objects.exists()


def test_plans_are_read_by_all_and_changed_by_crm_admins(plan, api_as):
    assert api_as("owner").get("/api/v1/crm/commission-plans/").json()["count"] == 1
    assert (
        api_as("owner").post("/api/v1/crm/commission-plans/", {"name": "Mine"}, format="json").status_code
        == 403
    )
    url = f"/api/v1/crm/commission-plans/{plan.pk}/"
    response = api_as("crm_admin").patch(
        url, {"tiers": [{"attainment_from": 0, "attainment_to": None, "rate": "7"}]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["tiers"] == [{"attainment_from": "0.00", "attainment_to": None, "rate": "7.000"}]
    assert response.json()["category_rates"] == [{"category": "Services", "rate": "10.000"}]


def _more_won_deals(owner, n: int) -> None:
    for index in range(n):
        won(owner, f"Extra {index}", close=datetime.date(2026, 10, 2), amount=D("1000"))


def test_computing_a_statement_costs_a_fixed_number_of_queries(q4, people, django_assert_max_num_queries):
    owner = people.users["owner"]
    commission_statement_compute(user=SYSTEM, rep=owner, period="quarter", day=Q4)  # warm up
    with django_assert_max_num_queries(30) as few:
        commission_statement_compute(user=SYSTEM, rep=owner, period="quarter", day=Q4)
    _more_won_deals(owner, 12)
    with django_assert_max_num_queries(len(few.captured_queries)):
        statement = commission_statement_compute(user=SYSTEM, rep=owner, period="quarter", day=Q4)
    assert statement.lines.count() == 15


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/crm/commission-statements/",
        "/api/v1/crm/commission-plans/",
        "/api/v1/crm/commission-assignments/",
        "/admin/sales/commissionstatement/",
        "/admin/sales/commissionplan/",
        "/admin/sales/commissionassignment/",
    ],
)
def test_the_commission_lists_cost_a_fixed_number_of_queries(
    people, plan, api_as, admin_as, django_assert_max_num_queries, path
):
    client = api_as("crm_admin") if path.startswith("/api/") else admin_as("crm_admin")
    owner = people.users["owner"]

    def more(start: datetime.date, n: int):
        for index in range(n):
            day = datetime.date(start.year + index, start.month, 1)
            commission_assignment_create(
                user=SYSTEM, data={"user": owner, "plan": plan, "period": "quarter", "period_start": day}
            )
            commission_statement_compute(user=SYSTEM, rep=owner, period="quarter", day=day)
            commission_plan_create(
                user=SYSTEM,
                data={"name": f"Plan {start.year + index}"},
                tiers=[{"attainment_from": 0, "rate": 1}],
            )

    more(datetime.date(2030, 1, 1), 2)
    client.get(path)  # warm up
    with django_assert_max_num_queries(80) as few:
        assert client.get(path).status_code == 200
    more(datetime.date(2040, 1, 1), 8)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(path).status_code == 200


def test_the_admin_computes_approves_and_exports(q4, people, admin_as):
    client = admin_as("crm_admin")
    owner = people.users["owner"]
    url = reverse("admin:sales_commissionstatement_compute")
    assert client.get(url).status_code == 200
    response = client.post(url, {"user": owner.pk, "period": "quarter", "date": "2026-11-15"})
    statement = CommissionStatement.objects.get()
    assert response.status_code == 302 and statement.total == D("9400.00")
    page = client.get(reverse("admin:sales_commissionstatement_change", args=[statement.pk]))
    assert page.status_code == 200 and b"D3 project" in page.content
    changelist = reverse("admin:sales_commissionstatement_changelist")
    client.post(changelist, {"action": "approve_selected", "_selected_action": [statement.pk]})
    statement.refresh_from_db()
    assert statement.status == "approved"
    response = client.post(changelist, {"action": "export_csv", "_selected_action": [statement.pk]})
    assert response.status_code == 200 and b"9400.00" in response.content
    # A plan saved in the admin with overlapping tiers: refused, nothing kept.
    response = client.post(
        reverse("admin:sales_commissionplan_add"),
        {
            "name": "Overlap",
            "base_rate": "1",
            "is_active": "on",
            "tiers-TOTAL_FORMS": 2,
            "tiers-INITIAL_FORMS": 0,
            "tiers-0-attainment_from": "0",
            "tiers-0-attainment_to": "120",
            "tiers-0-rate": "5",
            "tiers-1-attainment_from": "100",
            "tiers-1-rate": "8",
            "category_rates-TOTAL_FORMS": 0,
            "category_rates-INITIAL_FORMS": 0,
        },
    )
    assert not CommissionPlan.objects.filter(name="Overlap").exists()
    # A rep neither computes nor approves.
    rep = admin_as("owner")
    assert rep.post(url, {"user": owner.pk, "period": "quarter", "date": "2026-11-15"}).status_code == 403
