"""Duplicate detection: each rule, the public-domain exception, the API and the admin."""

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.duplicates import PUBLIC_EMAIL_DOMAINS, find_duplicates
from tests.factories import AccountFactory, ContactFactory, LeadFactory

pytestmark = pytest.mark.django_db


def found(record) -> dict[str, list[str]]:
    return {str(m.record): m.reasons for m in find_duplicates(record)}


# --- rules ----------------------------------------------------------------------------------------


def test_same_email_in_any_case(stages):
    lead = LeadFactory(name="A", email="Ann.Lee@Acme.test", company_name="", contact_name="")
    LeadFactory(name="B", email="ann.lee@acme.TEST", company_name="", contact_name="")
    LeadFactory(name="C", email="bob@other.test", company_name="", contact_name="")
    assert found(lead) == {"B": ["same email", "same company domain (acme.test)"]}


def test_same_company_domain_for_contacts(db):
    contact = ContactFactory(first_name="Ann", last_name="Lee", email="ann@acme.test")
    ContactFactory(first_name="Bob", last_name="Stone", email="bob@ACME.test")
    ContactFactory(first_name="Cid", last_name="Moss", email="cid@notacme.test")
    assert found(contact) == {"Bob Stone": ["same company domain (acme.test)"]}


def test_a_public_email_domain_does_not_match(db):
    assert {"gmail.com", "outlook.com", "yahoo.com"} <= PUBLIC_EMAIL_DOMAINS
    contact = ContactFactory(first_name="Ann", last_name="Lee", email="ann.lee@gmail.com")
    ContactFactory(first_name="Bob", last_name="Stone", email="bob.stone@gmail.com")
    ContactFactory(first_name="Cid", last_name="Moss", email="cid@Outlook.com")
    assert found(contact) == {}


def test_same_phone_digits_whatever_the_formatting(db):
    contact = ContactFactory(first_name="Ann", last_name="Lee", email="", phone="+1 (555) 123-4567")
    ContactFactory(first_name="Bob", last_name="Stone", email="", phone="", mobile="1.555.123.4567")
    ContactFactory(first_name="Cid", last_name="Moss", email="", phone="1 555 123 4568")
    ContactFactory(first_name="Dee", last_name="Park", email="", phone="12")
    assert found(contact) == {"Bob Stone": ["same phone"]}


def test_short_phone_numbers_do_not_match(db):
    account = AccountFactory(name="Alpha", phone="123")
    AccountFactory(name="Beta", phone="1-2-3")
    assert found(account) == {}


def test_similar_names(db):
    account = AccountFactory(name="Acme Corporation")
    AccountFactory(name="ACME Corporation Ltd")
    AccountFactory(name="Globex Industries")
    matches = find_duplicates(account)
    assert [str(m.record) for m in matches] == ["ACME Corporation Ltd"]
    assert matches[0].reasons[0].startswith("similar name (")
    assert 0.5 <= matches[0].similarity <= 1


def test_similar_contact_and_lead_names(stages):
    contact = ContactFactory(first_name="Jonathan", last_name="Smith", email="")
    ContactFactory(first_name="Jonathon", last_name="Smith", email="")
    ContactFactory(first_name="Maria", last_name="Garcia", email="")
    assert list(found(contact)) == ["Jonathon Smith"]
    lead = LeadFactory(name="L1", email="", contact_name="", company_name="Initech Software")
    LeadFactory(name="L2", email="", contact_name="", company_name="Initech Software Inc")
    LeadFactory(name="L3", email="", contact_name="", company_name="Umbrella")
    assert list(found(lead)) == ["L2"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigram indexes are PostgreSQL's")
@pytest.mark.parametrize("kind", ["lead", "contact", "account"])
def test_likely_duplicates_are_found_through_indexes_not_by_reading_every_record(stages, kind):
    # similarity(name, value) >= 0.5 alone is answered by reading every row: 300 ms for each name of
    # a lead created among a million, 400 ms for a contact's page among 300,000. So was a phone
    # compared without its separators (720 ms), and a domain searched in the trigram index (90 ms).
    record = {
        "lead": lambda: LeadFactory(
            email="Jon@Initech.test",
            phone="+1 (555) 123-4567",
            contact_name="Jonathan Smith",
            company_name="Initech Software",
        ),
        "contact": lambda: ContactFactory(
            first_name="Jonathan",
            last_name="Smith",
            email="Jon@Initech.test",
            phone="555.123.4567",
            mobile="+44 7700 900123",
        ),
        "account": lambda: AccountFactory(name="Initech Software", phone="+1 555 123 4567"),
    }[kind]()
    indexes = {
        "lead": {"crm_lead_contact_name_trgm", "crm_lead_company_name_trgm"},
        "contact": {"crm_contact_full_name_trgm"},
        "account": {"crm_account_name_trgm"},
    }[kind]
    with CaptureQueriesContext(connection) as ctx:
        find_duplicates(record)
    similar = [q["sql"] for q in ctx.captured_queries if "SIMILARITY(" in q["sql"]]
    assert len(similar) == len(indexes)
    similar += [q["sql"] for q in ctx.captured_queries if "REPLACE(" in q["sql"]]
    indexes |= {
        "lead": {"crm_lead_phone_digits"},
        "contact": {"crm_contact_phone_digits", "crm_contact_mobile_digits"},
        "account": {"crm_account_phone_digits"},
    }[kind]
    if kind != "account":
        # The same email in any case: the LOWER(email) index, not the trigram one (12 ms at 1M).
        similar += [q["sql"] for q in ctx.captured_queries if f'LOWER("crm_{kind}"."email") =' in q["sql"]]
        # The same domain: the index of the address's domain.
        similar += [q["sql"] for q in ctx.captured_queries if "STRPOS(" in q["sql"]]
        indexes |= {f"crm_{kind}_email_lower", f"crm_{kind}_email_domain"}
    used = set()
    with connection.cursor() as cursor:
        # A handful of rows would be read faster without an index: ask what the planner can use.
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in similar:
            cursor.execute(f"EXPLAIN {sql}")
            text = "\n".join(row[0] for row in cursor.fetchall())
            used |= {name for name in indexes if name in text}
        # The threshold the index answers at is ours for the statement only.
        cursor.execute("SELECT current_setting('pg_trgm.similarity_threshold')")
        assert cursor.fetchone()[0] == "0.3"
    assert used == indexes


def test_an_account_website_domain_matches_unless_public(db):
    account = AccountFactory(name="Alpha", website="https://www.acme.test/about")
    AccountFactory(name="Beta", website="http://acme.test")
    AccountFactory(name="Gamma", website="https://notacme.test")
    assert found(account) == {"Beta": ["same company domain (acme.test)"]}


def test_matches_with_more_reasons_come_first(db):
    contact = ContactFactory(first_name="Ann", last_name="Lee", email="ann@acme.test", phone="5551234567")
    ContactFactory(first_name="Zed", last_name="Zulu", email="zed@acme.test")
    ContactFactory(first_name="Ann", last_name="Lee", email="ANN@acme.test", phone="555-123-4567")
    matches = find_duplicates(contact)
    assert [len(m.reasons) for m in matches] == [4, 1]
    assert matches[0].reasons[:3] == ["same email", "same company domain (acme.test)", "same phone"]


# --- API ------------------------------------------------------------------------------------------


def test_api_duplicates_of_a_lead_contact_and_account(admin_client, stages):
    lead = LeadFactory(email="ann@acme.test")
    twin = LeadFactory(email="ANN@acme.test")
    body = admin_client.get(f"/api/v1/crm/leads/{lead.pk}/duplicates/").json()
    assert [(r["id"], r["reasons"][0]) for r in body["results"]] == [(twin.pk, "same email")]
    assert set(body["results"][0]) == {"id", "label", "reasons", "similarity"}

    contact = ContactFactory(email="x@gmail.com")
    assert admin_client.get(f"/api/v1/crm/contacts/{contact.pk}/duplicates/").json() == {"results": []}
    account = AccountFactory(name="Acme Corporation")
    AccountFactory(name="Acme Corporation Ltd")
    response = admin_client.get(f"/api/v1/crm/accounts/{account.pk}/duplicates/")
    assert response.status_code == 200 and len(response.json()["results"]) == 1
    assert admin_client.get("/api/v1/crm/accounts/999999/duplicates/").status_code == 404


def test_api_create_names_the_likely_duplicates_in_a_header(admin_client, stages):
    existing = ContactFactory(email="ann@acme.test")
    response = admin_client.post(
        "/api/v1/crm/contacts/",
        {"first_name": "Ann", "email": "Ann@Acme.test"},
        content_type="application/json",
    )
    assert response.status_code == 201
    assert response["X-Likely-Duplicates"] == str(existing.pk)
    unique = admin_client.post(
        "/api/v1/crm/contacts/",
        {"first_name": "Zed", "email": "zed@else.test"},
        content_type="application/json",
    )
    assert unique.status_code == 201 and "X-Likely-Duplicates" not in unique


# --- admin ----------------------------------------------------------------------------------------


def test_record_page_lists_possible_duplicates(admin_client, db):
    contact = ContactFactory(first_name="Ann", last_name="Lee", email="ann@acme.test")
    twin = ContactFactory(first_name="Annie", last_name="Lee", email="ann@ACME.test")
    response = admin_client.get(reverse("admin:crm_contact_change", args=[contact.pk]))
    html = response.content.decode()
    assert "Possible duplicates" in html
    assert reverse("admin:crm_contact_change", args=[twin.pk]) in html
    lonely = ContactFactory(first_name="Zed", last_name="Zulu", email="zed@else.test")
    html = admin_client.get(reverse("admin:crm_contact_change", args=[lonely.pk])).content.decode()
    assert "Possible duplicates" not in html


def test_adding_a_record_warns_of_likely_duplicates(admin_client, db):
    AccountFactory(name="Acme Corporation", phone="555 123 4567")
    response = admin_client.post(
        reverse("admin:crm_account_add"),
        {
            "name": "Acme Corp.",
            "account_type": "prospect",
            "tier": "standard",
            "phone": "(555) 123-4567",
            "contacts-TOTAL_FORMS": "0",
            "contacts-INITIAL_FORMS": "0",
            "opportunities-TOTAL_FORMS": "0",
            "opportunities-INITIAL_FORMS": "0",
            "activities-TOTAL_FORMS": "0",
            "activities-INITIAL_FORMS": "0",
            "consents-TOTAL_FORMS": "0",
            "consents-INITIAL_FORMS": "0",
            "channel_preferences-TOTAL_FORMS": "0",
            "channel_preferences-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(m.startswith("Possible duplicates of “Acme Corp.”") and "same phone" in m for m in shown), (
        shown
    )


def test_duplicates_report_groups_shared_emails_and_phones(admin_client, stages):
    a = LeadFactory(name="A", email="ann@acme.test", phone="555-000-1111")
    b = LeadFactory(name="B", email="ANN@acme.test", phone="")
    c = LeadFactory(name="C", email="c@x.test", phone="(555) 000 1111")
    LeadFactory(name="D", email="d@x.test")
    changelist = admin_client.get(reverse("admin:crm_lead_changelist")).content.decode()
    assert reverse("admin:crm_lead_duplicates") in changelist

    response = admin_client.get(reverse("admin:crm_lead_duplicates"))

    groups = {
        (g["reason"], g["key"]): [i["record"].pk for i in g["records"]] for g in response.context["groups"]
    }
    assert groups == {
        ("same email", "ann@acme.test"): [a.pk, b.pk],
        ("same phone", "5550001111"): [a.pk, c.pk],
    }
