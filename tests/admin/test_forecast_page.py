"""The forecast page: sales.selectors.forecast's figures as a table and a chart, with its filters."""

import datetime
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.actors import SYSTEM
from sales import selectors, services
from tests.factories import OpportunityFactory, PipelineFactory, StageFactory, UserFactory

D = Decimal
FORECAST = "admin:sales_opportunity_forecast"


@pytest.fixture
def book(stages):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    scoping = StageFactory(pipeline=PipelineFactory(name="Enterprise"), name="Scoping", probability=50)

    def opp(amount, stage, close, owner):
        return OpportunityFactory(amount=D(amount), stage=stage, close_date=close, owner=owner)

    opp("1000", stages["New"], datetime.date(2026, 1, 15), alice)  # weighted 100
    opp("2000", stages["Qualified"], datetime.date(2026, 1, 31), bob)  # weighted 600
    opp("500", stages["Proposal"], datetime.date(2026, 2, 10), alice)  # weighted 300
    services.opportunity_mark_won(
        opportunity=opp("4000", stages["New"], datetime.date(2026, 2, 20), bob), user=SYSTEM
    )
    services.opportunity_mark_lost(
        opportunity=opp("9999", stages["New"], datetime.date(2026, 1, 10), alice), user=SYSTEM
    )
    opp("10000", scoping, datetime.date(2026, 3, 1), None)  # weighted 5000
    return {"alice": alice, "bob": bob, "scoping": scoping}


def forecast_page(client, **params):
    response = client.get(reverse(FORECAST), params)
    assert response.status_code == 200
    return response


def rows(response) -> dict[str, list[str]]:
    html = response.content.decode()
    table = re.search(r'<section class="crm-panel" id="forecast-table">(.*?)</section>', html, re.S)[1]
    result = {}
    for key, cells in re.findall(r'<tr data-group="([^"]+)">(.*?)</tr>', table, re.S):
        result[key] = [
            " ".join(re.sub(r"<[^>]+>", " ", cell).split())
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)
        ]
    return result


@pytest.mark.django_db
def test_forecast_by_month_shows_the_hand_computed_figures(admin_client, book):
    response = forecast_page(admin_client)

    assert rows(response) == {
        "2026-01": ["January 2026", "2", "$3,000", "$700", "0", "$0"],
        "2026-02": ["February 2026", "1", "$500", "$300", "1", "$4,000"],
        "2026-03": ["March 2026", "1", "$10,000", "$5,000", "0", "$0"],
        "total": ["Total", "4", "$13,500", "$6,000", "1", "$4,000"],
    }
    assert response.context["forecast"] == selectors.forecast(user=response.wsgi_request.user)
    html = response.content.decode()
    chart = re.search(r'<section class="crm-panel" id="forecast-chart">(.*?)</section>', html, re.S)[1]
    assert chart.count("<rect") == 9  # three months × open, weighted, won
    assert "series-won" in chart


@pytest.mark.django_db
def test_forecast_grouped_by_owner_and_by_stage(admin_client, book, stages):
    by_owner = rows(forecast_page(admin_client, group_by="owner"))
    assert by_owner[str(book["alice"].pk)][:4] == ["alice", "2", "$1,500", "$400"]
    assert by_owner[str(book["bob"].pk)] == ["bob", "1", "$2,000", "$600", "1", "$4,000"]
    assert by_owner["none"][:3] == ["Unassigned", "1", "$10,000"]

    by_stage = forecast_page(admin_client, group_by="stage")
    assert rows(by_stage)[str(stages["Won"].pk)] == [
        "Sales › Won",
        "0",
        "$0",
        "$0",
        "1",
        "$4,000",
    ]
    assert by_stage.context["group_by"] == "stage"


@pytest.mark.django_db
def test_forecast_filters_by_pipeline_owner_and_close_dates(admin_client, book, pipeline):
    response = forecast_page(
        admin_client,
        pipeline=pipeline.pk,
        owner=book["alice"].pk,
        date_from="2026-01-01",
        date_to="2026-01-31",
    )
    assert rows(response) == {
        "2026-01": ["January 2026", "1", "$1,000", "$100", "0", "$0"],
        "total": ["Total", "1", "$1,000", "$100", "0", "$0"],
    }


@pytest.mark.django_db
def test_a_reversed_period_is_a_form_error_and_the_rest_still_applies(admin_client, book, pipeline):
    response = forecast_page(admin_client, pipeline=pipeline.pk, date_from="2026-03-01", date_to="2026-01-01")
    assert response.context["form"].errors["date_to"] == ["The end of the period comes before its start."]
    # Only the start of the period and the pipeline apply: nothing in Sales closes after 1 March.
    assert rows(response)["total"][1] == "0"


@pytest.mark.django_db
def test_forecast_costs_a_fixed_number_of_queries(admin_client, stages):
    owners = [UserFactory() for _ in range(3)]

    def make(n):
        for i in range(n):
            OpportunityFactory(
                stage=stages["Proposal"],
                amount=100,
                owner=owners[i % 3],
                close_date=datetime.date(2026, 1 + i % 12, 1),
            )

    make(3)
    forecast_page(admin_client, group_by="owner")
    with CaptureQueriesContext(connection) as small:
        forecast_page(admin_client, group_by="owner")
    make(30)
    with CaptureQueriesContext(connection) as large:
        forecast_page(admin_client, group_by="owner")
    assert len(large) == len(small) <= 12
