"""An empty cell leaves a field unchanged on update, unless the user chooses "empty cells clear fields"
(issue 14 finding 12, item 3); the preview lists each field an update would clear."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from crm.actors import SYSTEM
from crm.importing import import_file
from crm.models import Account, Contact, Lead
from tests.crm.importing_helpers import csv_bytes
from tests.factories import AccountFactory, ContactFactory, LeadFactory, TagFactory, UserFactory

pytestmark = pytest.mark.django_db

HEADER = ["name", "email", "phone", "tags", "expected_revenue", "owner", "rating"]


@pytest.fixture
def lead(stages):
    lead = LeadFactory(
        email="k@x.test",
        stage=stages["New"],
        phone="555-1234",
        expected_revenue=Decimal("10.00"),
        owner=UserFactory(username="alice"),
        rating="hot",
    )
    lead.tags.set([TagFactory(name="VIP")])
    return lead


def run(rows, **kwargs):
    kwargs.setdefault("user", SYSTEM)  # a system import unless a test names the importer
    return import_file(kind="leads", data=csv_bytes(rows), filename="leads.csv", **kwargs)


def state(lead):
    lead.refresh_from_db()
    return (
        lead.name,
        lead.phone,
        lead.expected_revenue,
        lead.owner.username if lead.owner else None,
        lead.rating,
        sorted(lead.tags.values_list("name", flat=True)),
    )


def test_empty_cells_of_an_update_leave_the_fields_unchanged(lead):
    """Issue 14 finding 12: an empty cell silently cleared the phone and the tags."""
    result = run([HEADER, ["Renamed", "k@x.test", "", "", "", "", ""]])
    assert result.ok, result.errors
    assert state(lead) == ("Renamed", "555-1234", Decimal("10.00"), "alice", "hot", ["VIP"])
    assert result.cleared == []


def test_empty_cells_clear_fields_when_the_user_chooses_it(lead):
    result = run([HEADER, ["Renamed", "k@x.test", "", "", "", "", ""]], clear_empty=True)
    assert result.ok, result.errors
    assert state(lead) == ("Renamed", "", None, None, "", [])


def test_the_preview_lists_each_field_an_update_would_clear(lead):
    """Issue 14 finding 12: the preview did not say the value would be cleared."""
    LeadFactory(email="other@x.test", phone="", stage=lead.stage)
    rows = [
        HEADER,
        ["Renamed", "k@x.test", "", "", "", "", "hot"],
        ["Other", "other@x.test", "", "", "", "", ""],
    ]
    result = run(rows, clear_empty=True, dry_run=True)
    assert result.ok and not result.committed
    assert [(c.row, c.column) for c in result.cleared] == [
        (2, "phone"),
        (2, "expected_revenue"),
        (2, "owner"),
        (2, "tags"),
    ]
    assert result.preview[0].cleared == ("phone", "expected_revenue", "owner", "tags")
    assert any("4 fields" in notice and "cleared" in notice for notice in result.notices), result.notices
    assert state(lead)[1] == "555-1234"  # a dry run writes nothing


def test_new_records_get_their_defaults_from_empty_cells(stages):
    assert run([HEADER, ["New", "n@x.test", "", "", "", "", ""]]).ok
    lead = Lead.objects.get()
    assert (lead.phone, lead.expected_revenue, lead.owner, lead.rating) == ("", None, None, "")


def test_contacts_and_accounts_keep_fields_too(db):
    account = AccountFactory(name="Acme", website="https://acme.test", billing_city="Paris")
    contact = ContactFactory(first_name="Ann", email="ann@acme.test", phone="1", account=account)
    assert import_file(
        kind="accounts",
        data=csv_bytes([["name", "website", "billing_city"], ["ACME", "", ""]]),
        filename="a.csv",
        user=SYSTEM,
    ).ok
    assert import_file(
        kind="contacts",
        data=csv_bytes([["first_name", "email", "phone", "account"], ["Ann", "ann@acme.test", "", ""]]),
        filename="c.csv",
        user=SYSTEM,
    ).ok
    account = Account.objects.get()
    contact = Contact.objects.get()
    assert (account.website, account.billing_city) == ("https://acme.test", "Paris")
    assert (contact.phone, contact.account) == ("1", account)


def test_the_command_offers_the_choice(lead, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_bytes(csv_bytes([HEADER, ["Renamed", "k@x.test", "", "", "", "", ""]]))
    call_command("crm_import", "leads", str(path), "--no-progress")
    assert state(lead)[1] == "555-1234"
    call_command("crm_import", "leads", str(path), "--no-progress", "--clear-empty")
    assert state(lead)[1] == ""
