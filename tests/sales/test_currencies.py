"""Currencies: a currency on each deal, exchange rates by date, and figures converted into the company
currency at the rate in force on each close date (the latest rate on or before it)."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from crm.actors import SYSTEM
from sales import selectors, services
from sales.currencies import exchange_rate_on
from sales.models import ExchangeRate, Opportunity
from sales.selectors import conversion_funnel
from tests.api.conftest import url
from tests.factories import LeadFactory

D = Decimal
day = datetime.date


@pytest.fixture
def api(crm_admin):
    client = APIClient()
    client.force_authenticate(crm_admin)
    return client


@pytest.fixture
def rates(db):
    for currency, date, rate in [
        ("EUR", day(2026, 1, 1), "1.10"),
        ("EUR", day(2026, 2, 1), "1.20"),
        ("GBP", day(2026, 1, 1), "1.30"),
    ]:
        services.exchange_rate_create(user=SYSTEM, data={"currency": currency, "date": date, "rate": D(rate)})


def deal(name, amount, currency, stage, close_date):
    return services.opportunity_create(
        user=SYSTEM,
        data={
            "name": name,
            "amount": D(amount),
            "currency": currency,
            "stage": stage,
            "close_date": close_date,
        },
    )


@pytest.fixture
def book(rates, stages):
    deal("A", "1000", "USD", stages["New"], day(2026, 1, 15))  # 1000.00, weighted 10% = 100.00
    deal("B", "1000", "EUR", stages["Qualified"], day(2026, 1, 20))  # × 1.10 = 1100.00, weighted 30% = 330.00
    won = deal("C", "500", "EUR", stages["New"], day(2026, 2, 10))  # won: × 1.20 (Feb rate) = 600.00
    services.opportunity_mark_won(opportunity=won, user=SYSTEM)
    deal("D", "200", "GBP", stages["Proposal"], day(2026, 2, 28))  # × 1.30 = 260.00, weighted 60% = 156.00


def test_the_rate_in_force_is_the_latest_on_or_before_the_day(rates):
    assert exchange_rate_on("EUR", day(2025, 12, 31)) is None
    assert exchange_rate_on("EUR", day(2026, 1, 1)) == D("1.10")
    assert exchange_rate_on("EUR", day(2026, 1, 31)) == D("1.10")
    assert exchange_rate_on("EUR", day(2026, 2, 1)) == D("1.20")
    assert exchange_rate_on("USD", day(2000, 1, 1)) == 1


def test_forecast_converts_at_the_close_date_rate_checked_by_hand(book, crm_admin):
    result = selectors.forecast(user=crm_admin)

    assert result["currency"] == "USD"
    assert "rate in force on its close date" in result["conversion"]
    january, february = result["groups"]
    assert (january["key"], january["count"], january["amount"], january["weighted_amount"]) == (
        "2026-01",
        2,
        D("2100.00"),  # 1000 + 1000 × 1.10
        D("430.00"),  # 100 + 330
    )
    assert (january["won_count"], january["won_amount"]) == (0, D("0.00"))
    assert (february["key"], february["count"], february["amount"], february["weighted_amount"]) == (
        "2026-02",
        1,
        D("260.00"),  # 200 × 1.30
        D("156.00"),
    )
    assert (february["won_count"], february["won_amount"]) == (1, D("600.00"))  # 500 × 1.20, not 1.10
    totals = result["totals"]
    assert (totals["count"], totals["amount"], totals["weighted_amount"]) == (3, D("2360.00"), D("586.00"))
    assert (totals["won_count"], totals["won_amount"]) == (1, D("600.00"))


def test_dashboard_and_forecast_api_convert_and_say_so(book, api):
    dashboard = api.get(url("dashboard/")).json()
    assert dashboard["currency"] == "USD"
    assert "converted" in dashboard["conversion"]
    assert dashboard["open_opportunities"] == {"count": 3, "value": "2360.00"}
    assert dashboard["won_opportunities"] == {"count": 1, "value": "600.00"}

    forecast = api.get(url("opportunities/forecast/")).json()
    assert forecast["totals"]["amount"] == "2360.00"
    assert forecast["currency"] == "USD"


def _opportunity_reads(queries) -> list[str]:
    """The queries that read deals (the reader's own quota attainment aside)."""
    sqls = [query["sql"] for query in queries]
    return [sql for sql in sqls if 'FROM "sales_opportunity"' in sql and "sales_quota" not in sql]


def test_with_rates_that_change_on_a_months_first_day_the_figures_convert_from_the_rollup(book, crm_admin):
    with CaptureQueriesContext(connection) as queries:
        forecast = selectors.forecast(user=crm_admin)
        dashboard = selectors.dashboard(user=crm_admin)

    # Every deal's figures come from its close month's row: no deal is read.
    assert _opportunity_reads(queries.captured_queries) == []
    totals = forecast["totals"]
    assert (totals["amount"], totals["weighted_amount"], totals["won_amount"]) == (
        D("2360.00"),
        D("586.00"),
        D("600.00"),
    )
    assert dashboard["open_opportunities"] == {"count": 3, "value": D("2360.00")}
    assert dashboard["won_opportunities"] == {"count": 1, "value": D("600.00")}


def test_a_month_in_which_the_rate_changes_converts_each_deal_at_its_days_rate(book, crm_admin, stages):
    services.exchange_rate_create(
        user=SYSTEM, data={"currency": "EUR", "date": day(2026, 1, 20), "rate": D("1.50")}
    )
    # Closing the day before the change: × 1.10 = 110.00, weighted 10% = 11.00.
    deal("E", "100", "EUR", stages["New"], day(2026, 1, 19))
    # B (1000 EUR, 30%, closing on the 20th) now converts at 1.50: 1500.00, weighted 450.00.

    with CaptureQueriesContext(connection) as queries:
        result = selectors.forecast(user=crm_admin)
        dashboard = selectors.dashboard(user=crm_admin)

    january, february = result["groups"]
    assert (january["count"], january["amount"], january["weighted_amount"]) == (
        3,
        D("2610.00"),  # 1000 + 1500 + 110
        D("561.00"),  # 100 + 450 + 11
    )
    # February's rate did not change inside the month: its deals still convert from the rollup.
    assert (february["amount"], february["won_amount"]) == (D("260.00"), D("600.00"))
    assert dashboard["open_opportunities"] == {"count": 4, "value": D("2870.00")}
    # One live read each, of January's euro deals only.
    reads = _opportunity_reads(queries.captured_queries)
    assert len(reads) == 2
    assert all("2026-01-01" in sql and "2026-01-31" in sql for sql in reads)


def test_the_funnels_won_deals_from_leads_convert_a_close_month_at_a_time(book, crm_admin, stages):
    lead = LeadFactory(stage=stages["New"], pipeline=stages["New"].pipeline)
    deal = services.lead_convert(lead=lead, user=SYSTEM, amount=D("300"), close_date=day(2026, 2, 14))
    deal = deal.opportunity
    services.opportunity_update(opportunity=deal, user=SYSTEM, data={"currency": "EUR"})
    services.opportunity_mark_won(opportunity=deal, user=SYSTEM)

    won = {step["key"]: step for step in conversion_funnel(user=crm_admin)}["won"]
    assert (won["count"], won["value"]) == (1, D("360.00"))  # 300 EUR × 1.20, February's rate

    services.exchange_rate_create(
        user=SYSTEM, data={"currency": "EUR", "date": day(2026, 2, 14), "rate": D("1.25")}
    )
    won = {step["key"]: step for step in conversion_funnel(user=crm_admin)}["won"]
    assert (won["count"], won["value"]) == (1, D("375.00"))  # read live: the rate changed that month


def test_forecast_page_says_how_it_converted(book, admin_as):
    page = admin_as("crm_admin").get("/admin/sales/opportunity/forecast/")
    assert page.status_code == 200
    assert "rate in force on its close date" in page.content.decode()
    assert "$2,100" in page.content.decode()  # January: 1000 + 1000 EUR × 1.10


def test_a_deal_in_a_currency_without_a_rate_at_its_close_date_is_refused(rates, api, stages):
    before = Opportunity.objects.count()

    body = {"name": "Yen deal", "amount": "100.00", "currency": "JPY", "close_date": "2026-03-01"}
    response = api.post(url("opportunities/"), body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["currency"]
    assert "JPY" in response.json()["currency"][0] and "2026-03-01" in response.json()["currency"][0]

    # EUR has rates, but none yet on the close date.
    body = {"name": "Early euro deal", "amount": "100.00", "currency": "EUR", "close_date": "2025-12-31"}
    response = api.post(url("opportunities/"), body, format="json")
    assert response.status_code == 400
    assert "currency" in response.json()
    assert Opportunity.objects.count() == before


def test_moving_the_close_date_before_any_rate_is_refused_and_changes_nothing(rates, api, stages):
    created = api.post(
        url("opportunities/"),
        {"name": "Euro deal", "amount": "100.00", "currency": "EUR", "close_date": "2026-03-01"},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["currency"] == "EUR"
    pk = created.json()["id"]

    response = api.patch(url(f"opportunities/{pk}/"), {"close_date": "2025-06-30"}, format="json")
    assert response.status_code == 400
    assert "currency" in response.json()
    assert Opportunity.objects.get(pk=pk).close_date == day(2026, 3, 1)


def test_a_new_deal_takes_the_company_currency(api, stages, settings):
    created = api.post(url("opportunities/"), {"name": "Plain", "amount": "5.00"}, format="json")
    assert created.status_code == 201
    assert created.json()["currency"] == "USD"
    empty = api.post(url("opportunities/"), {"name": "Empty", "currency": ""}, format="json")
    assert (empty.status_code, empty.json()["currency"]) == (201, "USD")
    response = api.post(url("opportunities/"), {"name": "Bad", "currency": "eu"}, format="json")
    assert response.status_code == 400 and "currency" in response.json()


def test_exchange_rates_api_create_list_and_refusals(api):
    response = api.post(url("exchange-rates/"), {"currency": "eur", "date": "2026-01-01", "rate": "1.1"})
    assert response.status_code == 201
    assert response.json()["currency"] == "EUR"
    assert api.get(url("exchange-rates/"), {"currency": "EUR"}).json()["count"] == 1

    again = api.post(url("exchange-rates/"), {"currency": "EUR", "date": "2026-01-01", "rate": "1.2"})
    assert again.status_code == 400 and "date" in again.json()
    company = api.post(url("exchange-rates/"), {"currency": "USD", "date": "2026-01-01", "rate": "1"})
    assert company.status_code == 400 and "currency" in company.json()
    zero = api.post(url("exchange-rates/"), {"currency": "GBP", "date": "2026-01-01", "rate": "0"})
    assert zero.status_code == 400 and "rate" in zero.json()
    assert ExchangeRate.objects.count() == 1


def _csv(text: str):
    import io

    upload = io.BytesIO(text.encode())
    upload.name = "rates.csv"
    return upload


def test_exchange_rates_import_creates_and_updates_all_or_nothing(api):
    services.exchange_rate_create(
        user=SYSTEM, data={"currency": "EUR", "date": day(2026, 1, 1), "rate": D("1.00")}
    )
    good = "currency,date,rate\nEUR,2026-01-01,1.10\nGBP,2026-01-01,1.30\n"
    response = api.post(url("exchange-rates/import/"), {"file": _csv(good)}, format="multipart")
    assert response.status_code == 200
    assert response.json() == {"created": 1, "updated": 1}
    assert exchange_rate_on("EUR", day(2026, 1, 1)) == D("1.10")

    bad = "currency,date,rate\nCHF,2026-01-01,0.9\nJPY,not a date,1\nUSD,2026-01-01,1\n"
    response = api.post(url("exchange-rates/import/"), {"file": _csv(bad)}, format="multipart")
    assert response.status_code == 400
    assert set(response.json()) == {"row 3", "row 4"}
    assert not ExchangeRate.objects.filter(currency="CHF").exists()

    response = api.post(url("exchange-rates/import/"), {"file": _csv("a,b\n1,2\n")}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()


def test_reps_read_rates_but_do_not_write_them(api_as):
    assert api_as("owner").get(url("exchange-rates/")).status_code == 200
    response = api_as("owner").post(
        url("exchange-rates/"), {"currency": "EUR", "date": "2026-01-01", "rate": "1"}
    )
    assert response.status_code == 403


def test_rate_import_page_and_changelist(admin_as):
    client = admin_as("crm_admin")
    assert client.get("/admin/sales/exchangerate/").status_code == 200
    page = client.post(
        "/admin/sales/exchangerate/import/", {"file": _csv("currency,date,rate\nEUR,2026-01-01,1.1\n")}
    )
    assert page.status_code == 302
    assert ExchangeRate.objects.get().rate == D("1.1")
    refused = client.post(
        "/admin/sales/exchangerate/import/", {"file": _csv("currency,date,rate\nEUR,x,1\n")}
    )
    assert refused.status_code == 200 and "row 2" in refused.content.decode()


def test_an_accounts_open_and_won_value_are_converted(rates, api, stages):
    account = api.post(url("accounts/"), {"name": "Euro GmbH"}, format="json").json()
    deal("Open", "100", "EUR", stages["New"], day(2026, 1, 10))  # not this account's
    for name, amount, close in (("Open euro", "100", day(2026, 1, 10)), ("Won euro", "50", day(2026, 2, 2))):
        opportunity = services.opportunity_create(
            user=SYSTEM,
            data={
                "name": name,
                "amount": D(amount),
                "currency": "EUR",
                "close_date": close,
                "account": Opportunity._meta.get_field("account").related_model.objects.get(pk=account["id"]),
            },
        )
    services.opportunity_mark_won(opportunity=opportunity, user=SYSTEM)
    body = api.get(url(f"accounts/{account['id']}/")).json()
    assert (body["open_value"], body["won_value"]) == (
        "110.00",
        "60.00",
    )  # × 1.10 in January, × 1.20 in February
