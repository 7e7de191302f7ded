"""Exports: the import's columns, relations by name, formula cells escaped, numbers numeric in XLSX."""

import json
from datetime import date
from decimal import Decimal

import pytest

from activities.models import Activity
from crm.actors import SYSTEM
from crm.importing import export_queryset, import_file
from crm.models import Account, Contact, Lead
from sales.models import Opportunity
from tests.crm.importing_helpers import read_csv, read_xlsx
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    LostReasonFactory,
    OpportunityFactory,
    TagFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

DANGEROUS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR", "'quoted"]


def lead_snapshot(lead: Lead) -> dict:
    return {
        "name": lead.name,
        "contact_name": lead.contact_name,
        "email": lead.email,
        "phone": lead.phone,
        "company_name": lead.company_name,
        "job_title": lead.job_title,
        "pipeline": lead.pipeline.name,
        "stage": lead.stage.name,
        "priority": lead.priority,
        "rating": lead.rating,
        "source": lead.source,
        "expected_revenue": lead.expected_revenue,
        "probability": lead.probability,
        "description": lead.description,
        "status": lead.status,
        "lost_reason": lead.lost_reason and lead.lost_reason.name,
        "lost_note": lead.lost_note,
        "converted_at": lead.converted_at,
        "owner": lead.owner and lead.owner.username,
        "tags": sorted(lead.tags.values_list("name", flat=True)),
    }


def make_leads(stages):
    owner = UserFactory(username="owner-1")
    reason = LostReasonFactory(name="Price")
    tags = [TagFactory(name="VIP"), TagFactory(name="Has, comma")]
    first = LeadFactory(
        name='=HYPERLINK("http://evil")',
        email="a@x.test",
        phone="+1 555 0100",
        company_name="-Minus Corp",
        description="@mention\nsecond line",
        stage=stages["Qualified"],
        expected_revenue=Decimal("1234.50"),
        probability=35,
        owner=owner,
        source="cold_call",
        rating="hot",
    )
    first.tags.set(tags)
    LeadFactory(name="Lost one", email="b@x.test", stage=stages["Lost"], status="lost", lost_reason=reason)
    LeadFactory(name="Plain", email="", stage=stages["New"], expected_revenue=None)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_then_import_into_an_empty_database_gives_the_same_records(stages, fmt):
    make_leads(stages)
    before = sorted((lead_snapshot(lead) for lead in Lead.objects.all()), key=lambda s: s["name"])
    exported = export_queryset(kind="leads", queryset=Lead.objects.all(), fmt=fmt, user=SYSTEM)
    Lead.objects.all().delete()
    result = import_file(kind="leads", data=exported.content, filename=exported.filename, user=SYSTEM)
    assert result.ok, (result.errors, result.file_errors)
    assert result.new == 3
    after = sorted((lead_snapshot(lead) for lead in Lead.objects.all()), key=lambda s: s["name"])
    assert after == before


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_reimporting_an_export_changes_nothing(stages, fmt):
    make_leads(stages)
    AccountFactory(name="@Acme", annual_revenue=Decimal("10.00"), parent=AccountFactory(name="Parent"))
    acme = Account.objects.get(name="@Acme")
    ContactFactory(first_name="=Ann", email="ann@acme.test", account=acme, is_primary=True)
    for kind, model in (("leads", Lead), ("accounts", Account), ("contacts", Contact)):
        exported = export_queryset(kind=kind, queryset=model.objects.all(), fmt=fmt, user=SYSTEM)
        result = import_file(kind=kind, data=exported.content, filename=exported.filename, user=SYSTEM)
        assert result.ok, (kind, result.errors, result.file_errors)
        # The lead without an email has no natural key, so it comes back as a new record.
        expected_new = 1 if kind == "leads" else 0
        assert (result.new, result.updated, result.unchanged) == (
            expected_new,
            0,
            model.objects.count() - expected_new * 2,
        ), kind


@pytest.mark.parametrize("value", DANGEROUS)
def test_csv_escapes_every_formula_prefix(stages, value):
    LeadFactory(name=value, email="f@x.test", stage=stages["New"])
    row = read_csv(
        export_queryset(kind="leads", queryset=Lead.objects.all(), fmt="csv", user=SYSTEM).content
    )[0]
    assert row["name"] == "'" + value


@pytest.mark.parametrize("value", DANGEROUS)
def test_xlsx_escapes_every_formula_prefix(stages, value):
    LeadFactory(name=value, email="f@x.test", stage=stages["New"])
    header, rows = read_xlsx(
        export_queryset(kind="leads", queryset=Lead.objects.all(), fmt="xlsx", user=SYSTEM).content
    )
    cell = rows[0][header.index("name")]
    assert cell.data_type == "s"
    # (XML stores a carriage return as a line feed.)
    assert cell.value == "'" + value.replace("\r", "\n")


def test_tags_and_relations_are_escaped_too(stages):
    lead = LeadFactory(email="t@x.test", stage=stages["New"])
    lead.tags.set([TagFactory(name="=cmd|' /C calc'!A0")])
    row = read_csv(
        export_queryset(kind="leads", queryset=Lead.objects.all(), fmt="csv", user=SYSTEM).content
    )[0]
    assert row["tags"].startswith("'=")


def test_xlsx_numbers_stay_numbers(stages):
    LeadFactory(email="n@x.test", stage=stages["New"], expected_revenue=Decimal("1500.25"), probability=40)
    header, rows = read_xlsx(
        export_queryset(kind="leads", queryset=Lead.objects.all(), fmt="xlsx", user=SYSTEM).content
    )
    revenue, probability, pk = (rows[0][header.index(c)] for c in ("expected_revenue", "probability", "id"))
    assert (revenue.data_type, probability.data_type, pk.data_type) == ("n", "n", "n")
    assert (revenue.value, probability.value) == (1500.25, 40)


def test_headers_are_field_names_and_relations_are_names(stages):
    make_leads(stages)
    rows = read_csv(
        export_queryset(kind="leads", queryset=Lead.objects.order_by("name"), fmt="csv", user=SYSTEM).content
    )
    assert list(rows[0])[:4] == ["id", "name", "contact_name", "email"]
    lost = next(r for r in rows if r["name"] == "Lost one")
    assert (lost["pipeline"], lost["stage"], lost["lost_reason"], lost["status"]) == (
        "Sales",
        "Lost",
        "Price",
        "lost",
    )
    first = next(r for r in rows if r["email"] == "a@x.test")
    assert first["owner"] == "owner-1"
    assert first["tags"] == '"Has, comma", VIP'


def test_export_takes_the_callers_filtered_queryset(stages):
    make_leads(stages)
    exported = export_queryset(
        kind="leads", queryset=Lead.objects.filter(status="lost"), fmt="json", user=SYSTEM
    )
    records = json.loads(exported.content)
    assert [r["name"] for r in records] == ["Lost one"]
    assert exported.rows == 1 and exported.content_type == "application/json"


def test_json_keeps_types(stages):
    make_leads(stages)
    records = json.loads(
        export_queryset(kind="leads", queryset=Lead.objects.all(), fmt="json", user=SYSTEM).content
    )
    first = next(r for r in records if r["email"] == "a@x.test")
    assert first["expected_revenue"] == "1234.50"
    assert first["probability"] == 35
    assert first["tags"] == ["Has, comma", "VIP"]
    assert first["name"] == '=HYPERLINK("http://evil")'  # JSON is data for programs: not escaped


def test_export_query_count_does_not_grow_with_rows(stages, django_assert_max_num_queries):
    make_leads(stages)
    for _ in range(30):
        LeadFactory(stage=stages["New"]).tags.set([TagFactory()])
    with django_assert_max_num_queries(3):
        export_queryset(kind="leads", queryset=Lead.objects.all(), fmt="csv", user=SYSTEM)


def test_opportunities_and_activities_export(stages):
    acme = AccountFactory(name="Acme")
    opp = OpportunityFactory(
        name="+Deal",
        account=acme,
        stage=stages["Proposal"],
        amount=Decimal("900.00"),
        close_date=date(2026, 5, 1),
    )
    ActivityFactory(subject="Call", opportunity=opp, account=acme)
    rows = read_csv(
        export_queryset(
            kind="opportunities", queryset=Opportunity.objects.all(), fmt="csv", user=SYSTEM
        ).content
    )
    assert (
        rows[0]["name"],
        rows[0]["account"],
        rows[0]["stage"],
        rows[0]["amount"],
        rows[0]["close_date"],
    ) == (
        "'+Deal",
        "Acme",
        "Proposal",
        "900.00",
        "2026-05-01",
    )
    header, cells = read_xlsx(
        export_queryset(kind="activities", queryset=Activity.objects.all(), fmt="xlsx", user=SYSTEM).content
    )
    row = {name: cell.value for name, cell in zip(header, cells[0], strict=True)}
    assert (row["subject"], row["opportunity"], row["account"], row["activity_type"]) == (
        "Call",
        "'+Deal",
        "Acme",
        "call",
    )
