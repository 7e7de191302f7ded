"""The API over the demo data that `make run` loads: what a first-time user sees."""

import pytest
from django.core.management import call_command

from tests.api.conftest import url


@pytest.fixture
def demo(db):
    call_command("loaddata", "demo", verbosity=0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "count"),
    [
        ("leads/", 5),
        ("opportunities/", 4),
        ("accounts/", 5),
        ("contacts/", 5),
        ("activities/", 6),
        ("pipelines/", 2),
        ("stages/", 12),
        ("tags/", 8),
        ("lost-reasons/", 5),
    ],
)
def test_demo_lists(api, demo, path, count):
    response = api.get(url(path))
    assert response.status_code == 200
    assert response.json()["count"] == count


@pytest.mark.django_db
def test_demo_boards_forecast_and_dashboard(api, demo):
    board = api.get(url("leads/kanban/")).json()
    assert board["pipeline"]["name"] == "Sales Pipeline"
    assert [column["stage"]["name"] for column in board["columns"]] == [
        "New",
        "Qualified",
        "Proposal",
        "Negotiation",
        "Won",
        "Lost",
    ]
    assert sum(column["count"] for column in board["columns"]) == 4  # the fifth lead is in Enterprise Deals

    opportunities = api.get(url("opportunities/kanban/")).json()
    assert sum(column["count"] for column in opportunities["columns"]) >= 1

    forecast = api.get(url("opportunities/forecast/")).json()
    assert forecast["totals"]["count"] == 3
    assert forecast["totals"]["amount"] == "334000.00"
    assert (forecast["totals"]["won_count"], forecast["totals"]["won_amount"]) == (1, "72000.00")
    assert [group["key"] for group in forecast["groups"]] == ["2026-10", "2026-12", "2027-01", "2027-02"]

    dashboard = api.get(url("dashboard/")).json()
    assert dashboard["total_leads"] == 5
    assert dashboard["open_opportunities"] == {"count": 3, "value": "334000.00"}
    assert dashboard["won_opportunities"] == {"count": 1, "value": "72000.00"}
    assert dashboard["conversion_rate"] == 0.0


@pytest.mark.django_db
def test_a_demo_lead_converts(api, demo):
    lead = api.get(url("leads/"), {"search": "Northwind"}).json()["results"][0]

    response = api.post(url(f"leads/{lead['id']}/convert/"))

    assert response.status_code == 200, response.json()
    assert response.json()["lead"]["status"] == "converted"
