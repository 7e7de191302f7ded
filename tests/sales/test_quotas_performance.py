"""Quotas (attainment from won deals in the period, converted) and the performance board (figures per
user and team, checked by hand; who sees which rows; a fixed number of queries)."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from activities.models import Activity
from crm.actors import SYSTEM
from sales import selectors, services
from sales.models import Opportunity, Quota, period_bounds
from sales.performance import performance_board
from sales.quotas import quota_attainment
from tests.factories import ActivityFactory, OpportunityFactory, SalesTeam, UserFactory

D = Decimal
day = datetime.date
Q4 = day(2026, 11, 15)


def at(date: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(date, datetime.time(12)))


def closed(owner, amount, status, stages, *, created, close, currency="USD"):
    deal = OpportunityFactory(
        owner=owner,
        amount=D(amount),
        currency=currency,
        stage=stages["Won" if status == "won" else "Lost"],
        status=status,
        probability=100 if status == "won" else 0,
        closed_at=at(close),
        close_date=close,
    )
    Opportunity.objects.filter(pk=deal.pk).update(created_at=at(created))
    return deal


@pytest.fixture
def quarter(people, stages):
    """Q4 2026. West: owner and teammate (manager west_manager); East: outsider."""
    users = people.users
    services.exchange_rate_create(
        user=SYSTEM, data={"currency": "EUR", "date": day(2026, 1, 1), "rate": D("1.2")}
    )
    owner, teammate, outsider = users["owner"], users["teammate"], users["outsider"]
    # The personas' own activities were logged today: move them out of any quarter counted here.
    Activity.objects.update(created_at=at(day(2020, 1, 1)))
    closed(owner, "300", "won", stages, created=day(2026, 10, 1), close=day(2026, 10, 5))  # 4 days
    closed(owner, "500", "won", stages, created=day(2026, 10, 10), close=day(2026, 11, 10), currency="EUR")
    closed(owner, "700", "lost", stages, created=day(2026, 10, 1), close=day(2026, 10, 20))
    closed(owner, "999", "won", stages, created=day(2026, 12, 1), close=day(2027, 1, 3))  # next quarter
    closed(teammate, "100", "won", stages, created=day(2026, 10, 1), close=day(2026, 10, 3))  # 2 days
    closed(outsider, "1000", "won", stages, created=day(2026, 9, 1), close=day(2026, 10, 31))
    for who, count in ((owner, 3), (teammate, 1), (outsider, 2)):
        for _ in range(count):
            activity = ActivityFactory(owner=who, lead=people.records["owner"].lead)
            Activity.objects.filter(pk=activity.pk).update(created_at=at(day(2026, 11, 1)))
    early = ActivityFactory(owner=owner, lead=people.records["owner"].lead)
    Activity.objects.filter(pk=early.pk).update(created_at=at(day(2026, 9, 30)))  # Q3: not counted
    west, east = people.teams["West"], people.teams["East"]
    quotas = {
        "owner": Quota.objects.create(
            user=owner,
            period="quarter",
            period_start=day(2026, 10, 1),
            period_end=day(2026, 12, 31),
            target_amount=D("1000"),
            target_count=2,
        ),
        "west": Quota.objects.create(
            team=west,
            period="quarter",
            period_start=day(2026, 10, 1),
            period_end=day(2026, 12, 31),
            target_amount=D("2000"),
        ),
        "outsider": Quota.objects.create(
            user=outsider,
            period="quarter",
            period_start=day(2026, 10, 1),
            period_end=day(2026, 12, 31),
            target_count=4,
        ),
    }
    return {"users": users, "west": west, "east": east, "quotas": quotas}


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- quotas ---------------------------------------------------------------------------------------


def test_quota_attainment_checked_by_hand(quarter):
    rows = {row["quota_id"]: row for row in quota_attainment(user=quarter["users"]["crm_admin"], day=Q4)}
    owner = rows[quarter["quotas"]["owner"].pk]
    # 300 USD + 500 EUR × 1.2 = 900 won in Q4; the lost deal and January's win do not count.
    assert (owner["won_amount"], owner["won_count"]) == (D("900.00"), 2)
    assert (owner["amount_attainment"], owner["count_attainment"]) == (90.0, 100.0)
    west = rows[quarter["quotas"]["west"].pk]
    assert (west["won_amount"], west["won_count"], west["amount_attainment"]) == (D("1000.00"), 3, 50.0)
    assert west["count_attainment"] is None
    outsider = rows[quarter["quotas"]["outsider"].pk]
    assert (outsider["won_count"], outsider["count_attainment"]) == (1, 25.0)


def test_a_rep_sees_their_quota_and_their_teams_not_another_teams(quarter):
    response = client_for(quarter["users"]["owner"]).get(
        "/api/v1/crm/quotas/attainment/", {"date": "2026-11-15"}
    )
    assert response.status_code == 200
    assert {row["quota_id"] for row in response.json()} == {
        quarter["quotas"]["owner"].pk,
        quarter["quotas"]["west"].pk,
    }
    listed = client_for(quarter["users"]["owner"]).get("/api/v1/crm/quotas/").json()
    assert listed["count"] == 2


def test_my_attainment_is_my_quotas_among_those_i_see(quarter):
    """``quota_attainment_of`` for one's own quotas reads them without the visibility rule: for every
    persona, the same rows as the rule's quotas held by them; an inactive user's, none; another
    holder's, only where the rule shows them."""
    from django.contrib.auth import get_user_model

    from sales.quotas import quota_attainment_of, quota_visible_to

    users = quarter["users"]
    inactive = UserFactory(is_active=False)
    Quota.objects.create(
        user=inactive,
        period="quarter",
        period_start=day(2026, 10, 1),
        period_end=day(2026, 12, 31),
        target_count=1,
    )
    for name, reader in {**users, "inactive": inactive}.items():
        reader = get_user_model().objects.get(pk=reader.pk)
        for holder in (reader, users["owner"], users["outsider"]):
            mine = {row["quota_id"] for row in quota_attainment_of(user=reader, holder=holder, day=Q4)}
            seen = set(
                quota_visible_to(reader)
                .filter(user=holder, period_start__lte=Q4, period_end__gte=Q4)
                .values_list("pk", flat=True)
            )
            assert mine == seen, (name, holder.username)
    owner = users["owner"]
    assert [row["quota_id"] for row in quota_attainment_of(user=owner, holder=owner, day=Q4)] == [
        quarter["quotas"]["owner"].pk
    ]
    assert quota_attainment_of(user=owner, holder=users["outsider"], day=Q4) == []
    assert quota_attainment_of(user=inactive, holder=inactive, day=Q4) == []


def test_my_attainment_read_by_its_compiled_statement_is_what_the_orm_reads(quarter, settings):
    """One's own attainment is read by a statement compiled once a day and currency (crm.prepared): for
    each day and each company currency, the figures the ORM's query gives the same quotas."""
    from sales.quotas import quota_attainment_of

    users = quarter["users"]
    owner = users["owner"]

    def by_orm(when):
        return [
            row for row in quota_attainment(user=users["crm_admin"], day=when) if row["user_id"] == owner.pk
        ]

    figures = {}
    for currency in ("USD", "EUR"):
        settings.CRM_CURRENCY = currency
        for when in (Q4, day(2026, 1, 15), Q4):
            mine = quota_attainment_of(user=owner, holder=owner, day=when)
            assert mine == by_orm(when), (currency, when)
            figures[currency, when] = [(row["won_amount"], row["won_count"]) for row in mine]
    assert figures["USD", Q4] == [(D("900.00"), 2)]
    assert figures["EUR", Q4] != figures["USD", Q4]


def test_attainment_reads_of_the_won_deals_only_what_their_covering_index_holds(quarter):
    """Both figures of a quota's attainment (its won amount and its won count) read of the won deals only
    columns of their covering index, so PostgreSQL answers them from the index alone: counting the
    deals' ids read every deal closing in the period from the table (94 ms for a rep's quarter at a
    million deals, against 4 for the amount beside it)."""
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sales.quotas import quota_attainment_of

    (index,) = [i for i in Opportunity._meta.indexes if i.name == "sales_opp_status_close_inc"]
    covered = {Opportunity._meta.get_field(name).column for name in (*index.fields, *index.include)}
    owner = quarter["users"]["owner"]
    with CaptureQueriesContext(connection) as queries:
        assert quota_attainment_of(user=owner, holder=owner, day=Q4)[0]["won_count"] == 2
    (statement,) = [q["sql"] for q in queries.captured_queries if "won_count" in q["sql"]]
    read = set(re.findall(r'V0\."(\w+)"', statement))
    assert {"close_date", "status", "amount", "currency"} <= read
    assert read <= covered, read - covered


def test_a_manager_sets_quotas_for_their_team_only(quarter):
    manager = client_for(quarter["users"]["manager"])
    body = {"user_id": quarter["users"]["teammate"].pk, "period": "month", "period_start": "2026-11-20"}
    created = manager.post("/api/v1/crm/quotas/", {**body, "target_amount": "500.00"}, format="json")
    assert created.status_code == 201
    assert (created.json()["period_start"], created.json()["period_end"]) == ("2026-11-01", "2026-11-30")

    before = Quota.objects.count()
    other = {**body, "user_id": quarter["users"]["outsider"].pk, "target_amount": "1.00"}
    refused = manager.post("/api/v1/crm/quotas/", other, format="json")
    assert refused.status_code == 400 and "user_id" in refused.json()
    no_target = manager.post("/api/v1/crm/quotas/", {**body, "period_start": "2026-12-01"}, format="json")
    assert no_target.status_code == 400 and "target_amount" in no_target.json()
    assert Quota.objects.count() == before
    rep = client_for(quarter["users"]["owner"]).post("/api/v1/crm/quotas/", other, format="json")
    assert rep.status_code == 403


def test_the_forecast_carries_the_quota_target_line(quarter, admin_as):
    owner = quarter["users"]["owner"]
    result = selectors.forecast(user=quarter["users"]["crm_admin"], owner=owner, group_by="quarter")
    q4 = next(group for group in result["groups"] if group["key"] == "2026-Q4")
    assert q4["target_amount"] == D("1000.00")
    teams = selectors.forecast(user=quarter["users"]["crm_admin"], group_by="quarter")
    assert next(g for g in teams["groups"] if g["key"] == "2026-Q4")["target_amount"] == D("2000.00")
    page = admin_as("crm_admin").get("/admin/sales/opportunity/forecast/", {"group_by": "quarter"})
    assert 'class="target-line"' in page.content.decode()


def test_the_dashboard_shows_my_attainment(people, stages, admin_as):
    owner = people.users["owner"]
    today = timezone.localdate()
    start, end = period_bounds("month", today)
    Quota.objects.create(
        user=owner, period="month", period_start=start, period_end=end, target_amount=D("4000")
    )
    closed(owner, "1000", "won", stages, created=start, close=today)
    body = client_for(owner).get("/api/v1/crm/dashboard/").json()
    assert [(row["won_amount"], row["amount_attainment"]) for row in body["my_attainment"]] == [
        ("1000.00", 25.0)
    ]
    page = admin_as("owner").get("/admin/").content.decode()
    assert "My attainment" in page and "25.0%" in page


# --- the performance board ------------------------------------------------------------------------


def test_performance_figures_checked_by_hand(quarter):
    board = performance_board(user=quarter["users"]["crm_admin"], period="quarter", day=Q4)
    assert (board["date_from"], board["date_to"]) == (day(2026, 10, 1), day(2026, 12, 31))
    users = {row["username"]: row for row in board["users"]}
    owner = users["owner"]
    assert owner["won_amount"] == D("900.00")  # 300 + 500 EUR × 1.2
    assert (owner["won_count"], owner["lost_count"], owner["win_rate"]) == (2, 1, 66.67)
    assert owner["average_deal"] == D("450.00")
    assert owner["cycle_days"] == 17.5  # (4 + 31) / 2
    assert owner["activities"] == 3  # the September one is Q3's
    assert (owner["amount_attainment"], owner["count_attainment"]) == (90.0, 100.0)
    west = {row["name"]: row for row in board["teams"]}["West"]
    assert (west["won_amount"], west["won_count"], west["lost_count"]) == (D("1000.00"), 3, 1)
    assert (west["win_rate"], west["average_deal"], west["cycle_days"]) == (75.0, D("333.33"), 12.3)
    assert (west["activities"], west["amount_attainment"], west["member_count"]) == (4, 50.0, 2)
    # The leaderboard: by won revenue.
    assert [row["username"] for row in board["users"]][:2] == ["outsider_rep", "owner"]


def test_a_rep_sees_themselves_and_their_team_totals_only(quarter):
    response = client_for(quarter["users"]["owner"]).get(
        "/api/v1/crm/performance/", {"period": "quarter", "date": "2026-11-15"}
    )
    assert response.status_code == 200
    body = response.json()
    assert [row["username"] for row in body["users"]] == ["owner"]
    assert [(row["name"], row["won_amount"]) for row in body["teams"]] == [("West", "1000.00")]


def test_a_manager_sees_their_teams_members_not_another_team(quarter):
    board = performance_board(user=quarter["users"]["manager"], period="quarter", day=Q4)
    assert {row["username"] for row in board["users"]} == {"owner", "teammate", "west_manager"}
    assert [row["name"] for row in board["teams"]] == ["West"]
    admin_board = performance_board(user=quarter["users"]["crm_admin"], period="quarter", day=Q4)
    assert [row["name"] for row in admin_board["teams"]] == ["East", "West"]  # East's 1000 = West's 1000


def test_performance_page_draws_the_leaderboard(quarter, admin_as):
    page = admin_as("manager").get(
        "/admin/sales/opportunity/performance/", {"period": "quarter", "date": "2026-11-15"}
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert 'aria-label="Leaderboard"' in html and "$900" in html and "outsider_rep" not in html
    assert (
        admin_as("manager")
        .get("/admin/sales/opportunity/performance/", {"period": "x", "date": "y"})
        .status_code
        == 200
    )
    bad = client_for(quarter["users"]["owner"]).get("/api/v1/crm/performance/", {"period": "decade"})
    assert bad.status_code == 400 and "period" in bad.json()


@pytest.mark.parametrize("members", [2, 12])
def test_the_board_costs_a_fixed_number_of_queries(quarter, stages, members, django_assert_num_queries):
    team = SalesTeam.objects.create(name="Big")
    for index in range(members):
        user = UserFactory(username=f"rep{index}")
        team.members.add(user)
        closed(user, "10", "won", stages, created=day(2026, 10, 1), close=day(2026, 10, 2))
    user = quarter["users"]["crm_admin"]
    performance_board(user=user, period="quarter", day=Q4)  # warm-up (and the CRM Admin group, read once)
    with django_assert_num_queries(6):
        board = performance_board(user=user, period="quarter", day=Q4)
    assert len(board["users"]) == 3 + members


def test_quota_admin_lets_a_manager_set_their_teams_quotas_only(quarter, admin_as):
    client = admin_as("manager")
    listing = client.get("/admin/sales/quota/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "$900 (90%)" in html  # the owner's quota and what was won towards it
    outsider_quota = quarter["quotas"]["outsider"]
    assert client.get(f"/admin/sales/quota/{outsider_quota.pk}/change/").status_code in (302, 404)
    body = {
        "user": quarter["users"]["teammate"].pk,
        "team": "",
        "period": "quarter",
        "period_start": "2026-11-02",
        "target_amount": "700",
        "target_count": "",
    }
    assert client.post("/admin/sales/quota/add/", body).status_code == 302
    added = Quota.objects.get(user=quarter["users"]["teammate"])
    assert (added.period_start, added.period_end) == (day(2026, 10, 1), day(2026, 12, 31))
    refused = client.post("/admin/sales/quota/add/", {**body, "user": quarter["users"]["outsider"].pk})
    assert refused.status_code == 200
    assert Quota.objects.filter(user=quarter["users"]["outsider"]).count() == 1


@pytest.mark.parametrize("when", ["0001-01-01", "9999-12-31"])
def test_the_first_and_last_days_of_the_calendar_are_answered(quarter, when):
    client = client_for(quarter["users"]["crm_admin"])
    for period in ("month", "quarter", "year"):
        assert client.get("/api/v1/crm/performance/", {"period": period, "date": when}).status_code == 200
    assert client.get("/api/v1/crm/quotas/attainment/", {"date": when}).status_code == 200
    body = {"team_id": quarter["west"].pk, "period": "year", "period_start": when, "target_count": 1}
    assert client.post("/api/v1/crm/quotas/", body, format="json").status_code == 201
