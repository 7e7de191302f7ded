"""Importing accounts (matched by name) and contacts (by email): hierarchy and primary-contact rules."""

from decimal import Decimal

import pytest

from crm.actors import SYSTEM
from crm.importing import import_file
from crm.models import Account, Contact
from tests.crm.importing_helpers import csv_bytes
from tests.factories import AccountFactory, ContactFactory, UserFactory

pytestmark = pytest.mark.django_db


def run(kind, rows, **kwargs):
    kwargs.setdefault("user", SYSTEM)  # a system import unless a test names the importer
    return import_file(kind=kind, data=csv_bytes(rows), filename=f"{kind}.csv", **kwargs)


def test_accounts_are_matched_by_name_in_any_case():
    acme = AccountFactory(name="Acme Corp", industry="retail")
    result = run(
        "accounts",
        [
            ["name", "industry", "account_type", "employees", "annual_revenue", "website", "is_active"],
            ["ACME corp", "Technology", "customer", "250", "1000000.00", "acme.test", "no"],
            ["Globex", "finance", "Partner", "", "", "", ""],
        ],
    )
    assert result.ok, result.errors
    assert (result.new, result.updated) == (1, 1)
    acme.refresh_from_db()
    assert (acme.industry, acme.account_type, acme.employees, acme.annual_revenue, acme.is_active) == (
        "technology",
        "customer",
        250,
        Decimal("1000000.00"),
        False,
    )
    assert acme.website == "https://acme.test"
    globex = Account.objects.get(name="Globex")
    assert (globex.account_type, globex.is_active, globex.employees) == ("partner", True, None)


def test_parent_may_be_an_existing_account_or_a_new_row_of_the_file():
    holding = AccountFactory(name="Holding")
    result = run(
        "accounts",
        [["name", "parent"], ["Child", "Subsidiary"], ["Subsidiary", "holding"], ["Lone", ""]],
    )
    assert result.ok, result.errors
    subsidiary = Account.objects.get(name="Subsidiary")
    assert subsidiary.parent == holding
    assert Account.objects.get(name="Child").parent == subsidiary
    assert Account.objects.get(name="Lone").parent is None


def test_account_hierarchy_cannot_become_circular():
    top = AccountFactory(name="Top")
    AccountFactory(name="Middle", parent=top)
    result = run("accounts", [["name", "parent"], ["Top", "Middle"], ["Self", "self"]])
    found = {(e.row, e.column) for e in result.errors}
    assert found == {(2, "parent"), (3, "parent")}
    top.refresh_from_db()
    assert top.parent is None


def test_unknown_parent_is_reported():
    result = run("accounts", [["name", "parent"], ["Child", "Nobody"]])
    assert [(e.row, e.column, e.value) for e in result.errors] == [(2, "parent", "Nobody")]


def test_contacts_are_matched_by_email_and_linked_to_accounts_by_name():
    acme = AccountFactory(name="Acme")
    contact = ContactFactory(email="Ann@Acme.test", first_name="Ann")
    owner = UserFactory(username="olga")
    result = run(
        "contacts",
        [
            ["first_name", "last_name", "email", "account", "is_primary", "do_not_call", "owner"],
            ["Annie", "Smith", "ann@acme.TEST", "acme", "yes", "1", "olga"],
            ["Bob", "", "bob@acme.test", "ACME", "no", "", ""],
        ],
    )
    assert result.ok, result.errors
    assert (result.new, result.updated) == (1, 1)
    contact.refresh_from_db()
    assert (contact.first_name, contact.account, contact.is_primary, contact.do_not_call, contact.owner) == (
        "Annie",
        acme,
        True,
        True,
        owner,
    )
    bob = Contact.objects.get(email="bob@acme.test")
    assert (bob.is_primary, bob.is_active, bob.account) == (False, True, acme)


def test_unknown_account_is_reported():
    result = run("contacts", [["first_name", "email", "account"], ["Ann", "a@x.test", "Nowhere Inc"]])
    assert [(e.row, e.column, e.value) for e in result.errors] == [(2, "account", "Nowhere Inc")]
    assert not Contact.objects.exists()


def test_one_primary_contact_per_account_counting_stored_contacts():
    acme = AccountFactory(name="Acme")
    ContactFactory(account=acme, is_primary=True, first_name="Stored", email="stored@acme.test")
    AccountFactory(name="Globex")
    result = run(
        "contacts",
        [
            ["first_name", "email", "account", "is_primary"],
            ["New", "new@acme.test", "Acme", "true"],
            ["G1", "g1@globex.test", "Globex", "true"],
            ["G2", "g2@globex.test", "Globex", "true"],
            ["Loose", "loose@x.test", "", "true"],
        ],
    )
    messages = {(e.row, e.column): e.message for e in result.errors}
    assert set(messages) == {(2, "is_primary"), (4, "is_primary"), (5, "is_primary")}
    assert "already has a primary contact (Stored Person" in messages[2, "is_primary"]
    assert "Row 3" in messages[4, "is_primary"]
    assert Contact.objects.count() == 1


def test_primary_contact_can_move_within_one_file():
    acme = AccountFactory(name="Acme")
    old = ContactFactory(account=acme, is_primary=True, email="old@acme.test")
    result = run(
        "contacts",
        [
            ["first_name", "email", "account", "is_primary"],
            ["Old", "old@acme.test", "Acme", "false"],
            ["New", "new@acme.test", "Acme", "true"],
        ],
    )
    assert result.ok, result.errors
    old.refresh_from_db()
    assert not old.is_primary
    assert Contact.objects.get(is_primary=True).email == "new@acme.test"


def test_contacts_without_email_are_always_new():
    ContactFactory(first_name="Ann", email="")
    result = run("contacts", [["first_name", "email"], ["Ann", ""]])
    assert result.ok and result.new == 1
    assert Contact.objects.count() == 2
