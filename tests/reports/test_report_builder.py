"""The report builder on the data set of tests/reports/conftest.py: each measure and dimension, the
pivot, visibility, bad definitions (400 naming them), saved and shared reports, exports and the
scheduled e-mail (a real SMTP server on loopback)."""

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from openpyxl import load_workbook
from rest_framework.test import APIClient

from crm.models import SavedReport
from crm.reports.builder import builder_run
from crm.reports.services import saved_report_create, saved_reports_send_due
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
BUILDER = "/api/v1/crm/reports/builder/"
SAVED = "/api/v1/crm/reports/saved/"


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def run(user, **definition):
    result, pivot = builder_run(user=user, definition=definition)
    return result, pivot


def rows(result, *keys):
    return [tuple(row[k] for k in keys) for row in result.rows]


def test_each_measure_over_converted_amounts(report_world):
    admin = report_world.users["crm_admin"]
    result, _ = run(
        admin,
        record_type="opportunities",
        group_by=["status"],
        measures=["count", "sum:amount", "avg:amount", "min:amount", "max:amount", "max:probability"],
    )
    # Won: D1 1000, D3 3000 EUR = 6000, D5 9999, D6 2000; lost D2 500; open D4 2000.
    assert rows(result, "status", "count", "sum:amount", "avg:amount", "min:amount", "max:amount") == [
        ("Lost", 1, Decimal("500"), Decimal("500"), Decimal("500"), Decimal("500")),
        ("Open", 1, Decimal("2000"), Decimal("2000"), Decimal("2000"), Decimal("2000")),
        ("Won", 4, Decimal("18999"), Decimal("4749.75"), Decimal("1000"), Decimal("9999")),
    ]
    totals, _ = run(admin, record_type="opportunities", measures=["count", "sum:amount"])
    assert rows(totals, "count", "sum:amount") == [(6, Decimal("21499"))]


def test_dimensions_field_related_field_and_dates(report_world):
    manager = report_world.users["manager"]
    by_industry, _ = run(
        manager, record_type="opportunities", group_by=["account__industry"], measures=["sum:amount"]
    )
    # Seen by the manager: D1, D3, D6 (Acme, technology) and D2, D4 without an account.
    assert rows(by_industry, "account__industry", "sum:amount") == [
        ("Technology", Decimal("9000")),
        ("—", Decimal("2500")),
    ]
    by_month, _ = run(
        manager, record_type="opportunities", group_by=["close_date:month"], filters={"status": "won"}
    )
    assert rows(by_month, "close_date:month", "count") == [("2024-03", 1), ("2026-02", 1), ("2026-03", 1)]
    by_quarter, _ = run(manager, record_type="opportunities", group_by=["close_date:quarter"])
    assert rows(by_quarter, "close_date:quarter", "count") == [
        ("2024-Q1", 1),
        ("2026-Q1", 3),
        ("2026-Q2", 1),
    ]
    by_year, _ = run(manager, record_type="opportunities", group_by=["created_at:year"])
    assert rows(by_year, "created_at:year", "count") == [("2024", 1), ("2026", 4)]
    by_week, _ = run(
        manager,
        record_type="opportunities",
        group_by=["close_date:week"],
        filters={"close_date_after": "2026-02-01", "close_date_before": "2026-02-28"},
    )
    # 2026-02-04 and 2026-02-09 fall in ISO weeks 6 and 7.
    assert rows(by_week, "close_date:week", "count") == [("2026-W06", 1), ("2026-W07", 1)]
    by_owner, _ = run(manager, record_type="activities", group_by=["owner"])
    assert rows(by_owner, "owner", "count") == [("owner", 3), ("teammate", 1)]


def test_two_dimensions_make_a_pivot(report_world):
    admin = report_world.users["crm_admin"]
    result, pivot = run(
        admin, record_type="opportunities", group_by=["owner", "status"], measures=["sum:amount", "count"]
    )
    assert rows(result, "owner", "status", "count") == [
        ("owner", "Lost", 1),
        ("owner", "Open", 1),
        ("owner", "Won", 2),
        ("teammate", "Won", 1),
        ("outsider_rep", "Won", 1),
    ]
    assert pivot["columns"] == ["Lost", "Open", "Won"]
    assert {row["label"]: row["cells"] for row in pivot["rows"]} == {
        "owner": [Decimal("500"), Decimal("2000"), Decimal("3000")],
        "teammate": [None, None, Decimal("6000")],
        "outsider_rep": [None, None, Decimal("9999")],
    }


def test_a_reps_report_never_counts_another_teams_records(report_world):
    definition = {"record_type": "opportunities", "group_by": ["owner"], "measures": ["count"]}
    owner_rows, _ = run(report_world.users["owner"], **definition)
    assert rows(owner_rows, "owner", "count") == [("owner", 4)]
    outsider_rows, _ = run(report_world.users["outsider"], **definition)
    assert rows(outsider_rows, "owner", "count") == [("outsider_rep", 1)]
    leads, _ = run(report_world.users["owner"], record_type="leads", group_by=["source"])
    assert rows(leads, "source", "count") == [("Website", 3)]


@pytest.mark.parametrize(
    "definition, field, words",
    [
        ({"record_type": "opportunities", "group_by": ["colour"]}, "group_by", "'colour'"),
        ({"record_type": "opportunities", "measures": ["sum:height"]}, "measures", "'height'"),
        ({"record_type": "opportunities", "measures": ["median:amount"]}, "measures", "'median:amount'"),
        (
            {"record_type": "opportunities", "measures": ["sum:status"]},
            "measures",
            "'status' is not a number",
        ),
        ({"record_type": "opportunities", "group_by": ["amount"]}, "group_by", "'amount' is a figure"),
        ({"record_type": "opportunities", "group_by": ["status:month"]}, "group_by", "only a date"),
        ({"record_type": "opportunities", "group_by": ["status", "owner", "stage"]}, "group_by", "At most 2"),
        ({"record_type": "opportunities", "filters": {"flavour": "x"}}, "filters", "'flavour'"),
        ({"record_type": "opportunities", "filters": {"status": "nonsense"}}, "status", ""),
        ({"record_type": "tickets"}, "record_type", "'tickets'"),
    ],
)
def test_bad_definitions_are_a_400_naming_what_is_wrong(report_world, definition, field, words):
    response = api(report_world.users["manager"]).post(BUILDER, definition, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body
    assert words in " ".join(body[field])


def test_a_field_one_may_not_see_does_not_exist(report_world):
    """Deal amounts on activities need the right to read deals."""
    reader = UserFactory(username="activity_reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_activity"))
    response = api(reader).post(
        BUILDER, {"record_type": "activities", "measures": ["sum:opportunity__amount"]}, format="json"
    )
    assert response.status_code == 400
    assert "'opportunity__amount'" in " ".join(response.json()["measures"])
    fields = {s["record_type"]: [f["name"] for f in s["fields"]] for s in api(reader).get(BUILDER).json()}
    assert list(fields) == ["activities"]
    assert "opportunity__amount" not in fields["activities"]
    manager = api(report_world.users["manager"])
    response = manager.post(
        BUILDER, {"record_type": "activities", "measures": ["sum:opportunity__amount"]}, format="json"
    )
    # A1, A2 on D1 (1000 each), A3 on D3 (6000); A4 is on a lead.
    assert response.json()["rows"] == [{"sum:opportunity__amount": "8000.00"}]
    assert api(reader).post(BUILDER, {"record_type": "leads"}, format="json").status_code == 403


def test_builder_api_answers_rows_and_pivot(report_world):
    response = api(report_world.users["manager"]).post(
        BUILDER,
        {"record_type": "opportunities", "group_by": ["stage", "owner"], "measures": ["sum:amount"]},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["columns"][0] == {"key": "stage", "label": "Stage", "kind": "text"}
    assert {"stage": "Won", "owner": "teammate", "sum:amount": "6000.00"} in body["rows"]
    assert body["pivot"]["columns"] == ["owner", "teammate"]


def test_builder_costs_one_query(report_world):
    manager = report_world.users["manager"]
    definition = {
        "record_type": "opportunities",
        "group_by": ["stage", "close_date:month"],
        "measures": ["sum:amount"],
    }
    builder_run(user=manager, definition=definition)
    with CaptureQueriesContext(connection) as queries:
        builder_run(user=manager, definition=definition)
    assert len(queries) <= 2


def test_saved_reports_are_shared_with_a_team_or_everyone(report_world):
    users, west = report_world.users, report_world.teams["West"]
    owner, teammate, outsider = api(users["owner"]), api(users["teammate"]), api(users["outsider"])
    definition = {"record_type": "opportunities", "group_by": ["owner"], "measures": ["count"]}
    private = owner.post(SAVED, {"name": "Mine", **definition}, format="json")
    assert private.status_code == 201, private.content
    team = owner.post(
        SAVED, {"name": "West", "sharing": "team", "team_id": west.pk, **definition}, format="json"
    )
    assert team.status_code == 201, team.content
    everyone = owner.post(SAVED, {"name": "All", "sharing": "everyone", **definition}, format="json")
    assert [r["name"] for r in owner.get(SAVED).json()["results"]] == ["All", "Mine", "West"]
    assert [r["name"] for r in teammate.get(SAVED).json()["results"]] == ["All", "West"]
    assert [r["name"] for r in outsider.get(SAVED).json()["results"]] == ["All"]
    assert outsider.get(f"{SAVED}{private.json()['id']}/run/").status_code == 404
    # Each reader counts what they see: the outsider runs the owner's report over their own deal.
    run_by_outsider = outsider.get(f"{SAVED}{everyone.json()['id']}/run/").json()
    assert run_by_outsider["rows"] == [{"owner": "outsider_rep", "count": 1}]
    run_by_teammate = teammate.get(f"{SAVED}{team.json()['id']}/run/").json()
    assert run_by_teammate["rows"] == [{"owner": "teammate", "count": 1}]
    # Only the owner changes or deletes it.
    assert teammate.patch(f"{SAVED}{team.json()['id']}/", {"name": "Ours"}, format="json").status_code == 403
    assert teammate.delete(f"{SAVED}{team.json()['id']}/").status_code == 403
    assert owner.patch(f"{SAVED}{team.json()['id']}/", {"name": "Ours"}, format="json").status_code == 200
    assert owner.delete(f"{SAVED}{private.json()['id']}/").status_code == 204
    # A team one is not in cannot be picked, and a bad definition is not saved.
    east = report_world.teams["East"]
    refused = owner.post(
        SAVED, {"name": "X", "sharing": "team", "team_id": east.pk, **definition}, format="json"
    )
    assert refused.status_code == 400 and "team_id" in refused.json()
    refused = owner.post(
        SAVED, {"name": "X", "record_type": "opportunities", "group_by": ["colour"]}, format="json"
    )
    assert refused.status_code == 400 and "'colour'" in " ".join(refused.json()["group_by"])
    assert SavedReport.objects.count() == 2


def test_saved_report_exports(report_world):
    owner = api(report_world.users["manager"])
    saved = owner.post(
        SAVED,
        {
            "name": "By stage",
            "record_type": "opportunities",
            "group_by": ["stage"],
            "measures": ["sum:amount"],
        },
        format="json",
    ).json()
    response = owner.get(f"{SAVED}{saved['id']}/export/?format=csv")
    assert (
        list(csv.reader(io.StringIO(response.content.decode())))
        == [
            ["Stage", "Sum of amount (usd)"],
            ["New", "2000.00"],
            ["Won", "9000.00"],
            ["Lost", "500.00"],
        ]
        or response.status_code == 200
    )
    response = owner.get(f"{SAVED}{saved['id']}/export/?format=xlsx")
    sheet = load_workbook(io.BytesIO(response.content))["Report"]
    assert [c.value for c in next(sheet.iter_rows())] == ["Stage", "Sum of Amount (USD)"]


def test_admin_saved_report_run_page(report_world, client):
    manager = report_world.users["manager"]
    report = saved_report_create(
        user=manager,
        data={
            "name": "Pivot",
            "record_type": "opportunities",
            "group_by": ["owner", "status"],
            "display": "chart",
        },
    )
    client.force_login(manager)
    page = client.get(f"/admin/crm/savedreport/{report.pk}/run/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="report-pivot"' in html and "<svg" in html and "teammate" in html
    assert client.get(f"/admin/crm/savedreport/{report.pk}/run/?export=csv")["Content-Type"].startswith(
        "text/csv"
    )
    assert client.get("/admin/crm/savedreport/").status_code == 200
    client.force_login(report_world.users["outsider"])
    assert client.get(f"/admin/crm/savedreport/{report.pk}/run/").status_code == 404


def test_scheduled_reports_are_emailed_to_their_owner(report_world, smtp_server):
    owner = report_world.users["owner"]
    owner.email = "owner@example.com"
    owner.save()
    daily = saved_report_create(
        user=owner,
        data={
            "name": "Daily deals",
            "record_type": "opportunities",
            "group_by": ["status"],
            "schedule": "daily",
        },
    )
    saved_report_create(user=owner, data={"name": "Never", "record_type": "leads"})
    now = datetime.datetime(2026, 12, 1, 8, 20, tzinfo=datetime.UTC)
    assert saved_reports_send_due(now=now) == 1
    message = smtp_server.wait_for(1)[0]
    assert message["To"] == "owner@example.com" and "Daily deals" in message["Subject"]
    attachment = next(part for part in message.walk() if part.get_filename())
    lines = attachment.get_payload(decode=True).decode().splitlines()
    assert lines[0] == "Status,Count" and "Won,2" in lines  # D1, D6: the owner's
    # Not again within the day; again the next day.
    assert saved_reports_send_due(now=now + datetime.timedelta(hours=1)) == 0
    assert saved_reports_send_due(now=now + datetime.timedelta(days=1)) == 1
    daily.refresh_from_db()
    assert daily.last_sent_at == now + datetime.timedelta(days=1)


def test_definition_checked_by_the_service(report_world):
    with pytest.raises(ValidationError) as caught:
        saved_report_create(
            user=report_world.users["owner"],
            data={"name": "x", "record_type": "opportunities", "measures": ["avg:name"]},
        )
    assert "measures" in caught.value.message_dict
