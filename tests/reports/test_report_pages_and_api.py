"""The reports through the API (JSON, CSV, XLSX, 400/403/404) and the admin pages, at a fixed query count."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from openpyxl import load_workbook
from rest_framework.test import APIClient

from crm.reports import report_definitions

pytestmark = pytest.mark.django_db
Q1 = "date_from=2026-01-01&date_to=2026-03-31"
KEYS = [
    "funnel",
    "velocity",
    "cycle",
    "revenue",
    "win-loss",
    "lifetime-value",
    "lead-sources",
    "activity",
    "service-csat",
    "service-sla",
    "service-backlog",
    "service-times",
]


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_every_standard_report_is_registered():
    assert [d.key for d in report_definitions()] == KEYS


def test_list_names_the_reports_one_may_read(report_world):
    body = api(report_world.users["manager"]).get("/api/v1/crm/reports/").json()
    assert [item["key"] for item in body] == KEYS
    revenue = next(item for item in body if item["key"] == "revenue")
    assert revenue["group_by"][0] == "month" and "team" in revenue["filters"]


def test_revenue_by_source_in_json(report_world):
    response = api(report_world.users["manager"]).get(f"/api/v1/crm/reports/revenue/?{Q1}&group_by=source")
    assert response.status_code == 200
    body = response.json()
    assert body["filters"] == {"date_from": "2026-01-01", "date_to": "2026-03-31", "group_by": "source"}
    assert [(r["label"], r["won_amount"], r["share"]) for r in body["rows"]] == [
        ("Referral", "6000.00", 85.71),
        ("Website", "1000.00", 14.29),
    ]
    assert {s["key"]: s["value"] for s in body["summary"]}["won_amount"] == "7000.00"
    assert body["notes"]


def test_team_filter_and_a_rep_never_counts_another_team(report_world):
    east = report_world.teams["East"]
    admin = api(report_world.users["crm_admin"])
    body = admin.get(f"/api/v1/crm/reports/revenue/?{Q1}&team={east.pk}").json()
    assert {s["key"]: s["value"] for s in body["summary"]}["won_amount"] == "9999.00"
    # The outsider's deal (East) never counts for the owner (West), whatever the filters.
    rep = api(report_world.users["owner"])
    body = rep.get(f"/api/v1/crm/reports/revenue/?{Q1}").json()
    assert {s["key"]: s["value"] for s in body["summary"]}["won_amount"] == "1000.00"
    # Another team is not a choice for a rep: 400 naming the filter.
    response = rep.get(f"/api/v1/crm/reports/revenue/?team={east.pk}")
    assert response.status_code == 400 and "team" in response.json()
    response = rep.get(f"/api/v1/crm/reports/revenue/?owner={report_world.users['outsider'].pk}")
    assert response.status_code == 400 and "owner" in response.json()


@pytest.mark.parametrize(
    "query, field",
    [
        ("group_by=colour", "group_by"),
        ("date_from=2026-13-01", "date_from"),
        ("date_from=2026-03-01&date_to=2026-01-01", "date_to"),
        ("pipeline=999999", "pipeline"),
        ("source=carrier_pigeon", "source"),
        ("date_from=1990-01-01&date_to=2026-01-01", "date_from"),
    ],
)
def test_bad_filters_are_a_400_naming_them(report_world, query, field):
    response = api(report_world.users["manager"]).get(f"/api/v1/crm/reports/velocity/?{query}")
    if field == "group_by":  # velocity takes no group_by: revenue does
        response = api(report_world.users["manager"]).get(f"/api/v1/crm/reports/revenue/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_unknown_report_is_a_404_and_missing_permission_a_403(report_world):
    manager = api(report_world.users["manager"])
    assert manager.get("/api/v1/crm/reports/nothing/").status_code == 404
    from tests.factories import UserFactory

    nobody = api(UserFactory(username="no_perms"))
    assert nobody.get("/api/v1/crm/reports/revenue/").status_code == 403
    assert nobody.get("/api/v1/crm/reports/").json() == []
    assert APIClient().get("/api/v1/crm/reports/revenue/").status_code == 401


def test_export_csv_and_xlsx(report_world):
    client = api(report_world.users["manager"])
    response = client.get(f"/api/v1/crm/reports/win-loss/export/?{Q1}&group_by=owner&format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        ["Owner", "Won", "Lost", "Win rate %", "Won value", "Lost value", "Share of losses %"],
        ["owner", "1", "1", "50.0", "1000.00", "500.00", "100.0"],
        ["teammate", "1", "0", "100.0", "6000.00", "0.00", "0.0"],
    ]
    response = client.get(f"/api/v1/crm/reports/lead-sources/export/?{Q1}&format=xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content))["Report"]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][:3] == ["Source key", "Source", "Leads"]
    assert values[1][:3] == ["referral", "Referral", 1]
    assert client.get("/api/v1/crm/reports/revenue/export/?format=pdf").status_code == 400


@pytest.mark.parametrize("key", KEYS)
def test_each_report_costs_a_fixed_number_of_queries(report_world, key, django_assert_max_num_queries):
    """Twice the data, the same queries: nothing is read row by row."""
    client = api(report_world.users["manager"])
    query = "date_from=2026-01-01&date_to=2026-12-31"
    assert client.get(f"/api/v1/crm/reports/{key}/?{query}").status_code == 200  # warm up
    with CaptureQueriesContext(connection) as first:
        client.get(f"/api/v1/crm/reports/{key}/?{query}")
    from tests.reports.conftest import add_more_data

    add_more_data(report_world)
    with django_assert_max_num_queries(len(first)):
        assert client.get(f"/api/v1/crm/reports/{key}/?{query}").status_code == 200
    assert len(first) <= 8


def test_admin_pages_show_chart_table_and_export(report_world, client):
    client.force_login(report_world.users["manager"])
    index = client.get("/admin/reports/")
    assert index.status_code == 200
    for key in KEYS:
        assert f"/admin/reports/{key}/" in index.content.decode()
    page = client.get(f"/admin/reports/revenue/?{Q1}&group_by=customer")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and "Existing customer" in html and "$7,000" in html
    export = client.get(f"/admin/reports/revenue/?{Q1}&export=csv")
    assert export["Content-Type"].startswith("text/csv")
    assert "6000.00" in export.content.decode()
    bad = client.get("/admin/reports/revenue/?date_from=nope")
    assert bad.status_code == 200 and "errorlist" in bad.content.decode()
    assert client.get("/admin/reports/nothing/").status_code == 404
    dashboard = client.get("/admin/")
    assert "/admin/reports/" in dashboard.content.decode()


def test_every_admin_report_page_renders(report_world, client):
    client.force_login(report_world.users["crm_admin"])
    for key in KEYS:
        assert client.get(f"/admin/reports/{key}/?{Q1}").status_code == 200, key
        assert client.get(f"/admin/reports/{key}/").status_code == 200, key
