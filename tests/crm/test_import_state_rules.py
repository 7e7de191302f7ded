"""An imported lead reaches the state the services would give it (issue 14 finding 11, item 3).

A row's stage has the services' effect: a won stage converts, a lost stage loses (with the reason the
pipeline requires, an active one), a closed lead is not moved; status and converted_at are export-only.
"""

import pytest
from django.utils import timezone

from crm.actors import SYSTEM
from crm.importing import export_queryset, import_file
from crm.models import Account, Contact, Lead
from sales.models import Opportunity
from tests.crm.importing_helpers import csv_bytes
from tests.factories import AccountFactory, ContactFactory, LeadFactory, LostReasonFactory

pytestmark = pytest.mark.django_db


def run(rows, **kwargs):
    kwargs.setdefault("user", SYSTEM)  # a system import unless a test names the importer
    return import_file(kind="leads", data=csv_bytes(rows), filename="leads.csv", **kwargs)


def errors(result):
    return [(e.row, e.column, e.message) for e in result.errors]


def test_a_new_lead_in_a_won_stage_is_converted_like_lead_create(stages):
    """Issue 14 finding 11: it stayed open, with no opportunity."""
    result = run(
        [
            ["name", "email", "company_name", "contact_name", "stage", "expected_revenue"],
            ["Acme deal", "ann@acme.test", "Acme", "Ann Lee", "Won", "500"],
            ["Other", "o@x.test", "", "", "New", ""],
        ]
    )
    assert result.ok, result.errors
    lead = Lead.objects.get(email="ann@acme.test")
    assert (lead.status, lead.stage, lead.probability) == ("converted", stages["Won"], 100)
    assert lead.converted_at is not None
    opportunity = Opportunity.objects.get(lead=lead)
    assert (opportunity.name, opportunity.amount, opportunity.account.name) == ("Acme deal", 500, "Acme")
    assert lead.converted_account == Account.objects.get(name="Acme")
    assert lead.converted_contact == Contact.objects.get(email="ann@acme.test")
    assert Lead.objects.get(email="o@x.test").status == "open"


def test_an_open_lead_moved_to_a_won_stage_is_converted(stages):
    lead = LeadFactory(email="m@x.test", stage=stages["Proposal"], company_name="Moved Inc")
    assert run([["name", "email", "stage"], ["Moved", "m@x.test", "won"]]).ok
    lead.refresh_from_db()
    assert (lead.status, lead.stage) == ("converted", stages["Won"])
    assert Opportunity.objects.get(lead=lead).account.name == "Moved Inc"


def test_a_dry_run_says_which_rows_will_be_converted_and_writes_nothing(stages):
    result = run([["name", "email", "stage"], ["W", "w@x.test", "Won"]], dry_run=True)
    assert result.ok and not result.committed
    assert any("row 2" in notice and "converted" in notice for notice in result.notices), result.notices
    assert not Lead.objects.exists() and not Opportunity.objects.exists()


@pytest.mark.parametrize("status", ["converted", "lost"])
def test_a_closed_lead_is_not_moved_by_an_import(stages, status):
    """Issue 14 finding 11: a converted lead was moved to another stage (the service answers 409)."""
    closed_stage = stages["Won"] if status == "converted" else stages["Lost"]
    lead = LeadFactory(
        email="c@x.test",
        stage=closed_stage,
        status=status,
        converted_at=timezone.now() if status == "converted" else None,
    )
    result = run([["name", "email", "stage"], ["C", "c@x.test", "Qualified"]])
    assert errors(result) == [
        (
            2,
            "stage",
            f"This lead is already {status}: a closed lead cannot be moved, converted, won or "
            "lost again until it is reopened.",
        )
    ]
    lead.refresh_from_db()
    assert (lead.stage, lead.status) == (closed_stage, status)


def test_a_closed_lead_may_still_be_edited(stages):
    lead = LeadFactory(email="c@x.test", stage=stages["Won"], status="converted", converted_at=timezone.now())
    assert run([["name", "email", "stage", "phone"], ["Renamed", "c@x.test", "Won", "123"]]).ok
    lead.refresh_from_db()
    assert (lead.name, lead.phone, lead.status) == ("Renamed", "123", "converted")


def test_a_lost_stage_loses_the_lead_with_probability_0(stages):
    """Issue 14 finding 11: a lost lead kept its open stage and probability."""
    reason = LostReasonFactory(name="Too expensive")
    LeadFactory(email="old@x.test", stage=stages["Proposal"], probability=60)
    result = run(
        [
            ["name", "email", "stage", "lost_reason", "lost_note"],
            ["New lost", "new@x.test", "Lost", "too expensive", "went elsewhere"],
            ["Old lost", "old@x.test", "Lost", "Too expensive", ""],
        ]
    )
    assert result.ok, result.errors
    for lead in Lead.objects.all():
        assert (lead.status, lead.stage, lead.probability, lead.lost_reason) == (
            "lost",
            stages["Lost"],
            0,
            reason,
        )
    assert Lead.objects.get(email="new@x.test").lost_note == "went elsewhere"


def test_an_inactive_lost_reason_is_refused(stages):
    """Issue 14 finding 11: an inactive lost reason was accepted."""
    LostReasonFactory(name="Old reason", is_active=False)
    result = run([["name", "email", "stage", "lost_reason"], ["L", "l@x.test", "Lost", "Old reason"]])
    assert errors(result) == [
        (2, "lost_reason", "The lost reason “Old reason” is no longer in use: choose an active one.")
    ]
    assert not Lead.objects.exists()


def test_lost_without_the_reason_the_pipeline_requires_is_refused(pipeline, stages):
    """Issue 14 finding 11: "lost" without the reason the pipeline requires was accepted."""
    pipeline.lost_reason_required = True
    pipeline.save()
    lead = LeadFactory(email="l@x.test", stage=stages["New"])
    result = run([["name", "email", "stage"], ["L", "l@x.test", "Lost"], ["N", "n@x.test", "Lost"]])
    message = (
        f"The pipeline “{pipeline}” requires a lost reason to lose a lead: give one (moving to a lost "
        "stage needs one too)."
    )
    assert errors(result) == [(2, "lost_reason", message), (3, "lost_reason", message)]
    lead.refresh_from_db()
    assert (lead.status, lead.stage) == ("open", stages["New"])


def test_a_lost_reason_is_given_only_with_a_lost_stage(stages):
    LostReasonFactory(name="Too expensive")
    LeadFactory(email="o@x.test", stage=stages["New"])
    result = run([["name", "email", "lost_reason"], ["O", "o@x.test", "Too expensive"]])
    assert [(row, column) for row, column, _ in errors(result)] == [(2, "lost_reason")]


def test_status_and_converted_at_are_export_only(stages):
    """Issue 14 item 3: state fields are export-only; the import ignores them and says so."""
    lead = LeadFactory(email="o@x.test", stage=stages["New"])
    result = run(
        [
            ["name", "email", "status", "converted_at"],
            ["O", "o@x.test", "converted", "2026-01-01 10:00"],
            ["N", "n@x.test", "lost", ""],
        ]
    )
    assert result.ok, result.errors
    assert any("status, converted_at" in notice for notice in result.notices), result.notices
    lead.refresh_from_db()
    assert (lead.status, lead.converted_at) == ("open", None)
    assert Lead.objects.get(email="n@x.test").status == "open"


def test_an_export_of_open_converted_and_lost_leads_imports_back_unchanged(stages):
    reason = LostReasonFactory(name="Gone", is_active=True)
    LeadFactory(email="open@x.test", stage=stages["Qualified"])
    LeadFactory(email="lost@x.test", stage=stages["Lost"], status="lost", lost_reason=reason, probability=0)
    LeadFactory(
        email="conv@x.test",
        stage=stages["Won"],
        status="converted",
        probability=100,
        converted_at=timezone.now(),
    )
    reason.is_active = False  # a reason retired since: the leads it lost keep it
    reason.save()
    exported = export_queryset(kind="leads", queryset=Lead.objects.all(), fmt="csv", user=SYSTEM).content
    result = import_file(kind="leads", data=exported, filename="leads.csv", user=SYSTEM)
    assert result.ok, result.errors
    assert (result.new, result.updated, result.unchanged) == (0, 0, 3)


def test_a_conversion_the_service_refuses_is_a_row_error_and_nothing_is_written(stages):
    other = AccountFactory(name="Other")
    ContactFactory(first_name="Ann", email="ann@acme.test", account=other)
    result = run(
        [
            ["name", "email", "company_name", "stage"],
            ["Fine", "f@x.test", "", "New"],
            ["Acme deal", "ann@acme.test", "Acme", "Won"],
        ]
    )
    assert not result.ok and not result.committed
    assert [(e.row, e.column) for e in result.errors] == [(3, "stage")]
    assert "works for “Other”, not for “Acme”" in result.errors[0].message
    assert not Lead.objects.exists() and not Opportunity.objects.exists()
    assert not Account.objects.filter(name="Acme").exists()
