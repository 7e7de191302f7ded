"""Duplicate detection: each rule, the public-domain exception, the API and the admin."""

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.db.models import Value
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.duplicates import PUBLIC_EMAIL_DOMAINS, TRIGRAM_THRESHOLD, company_name_key, find_duplicates
from crm.models import Account
from crm.models.base import CompanyNameKey
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


def test_a_domain_of_many_records_reads_only_as_many_as_are_listed(stages):
    """Of a company domain with more records than a list of matches holds, only that many are read: the
    domain's index gives those of the domain alone (the load test's leads, all of one domain, read 100
    to list 20)."""
    from crm.duplicates import MAX_MATCHES

    lead = LeadFactory(name="New", email="new@bigco.test", company_name="", contact_name="", phone="")
    for n in range(MAX_MATCHES + 5):
        LeadFactory(name=f"Old {n}", email=f"old{n}@BigCo.test", company_name="", contact_name="", phone="")
    LeadFactory(name="Other", email="x@bigco.test.example", company_name="", contact_name="", phone="")

    with CaptureQueriesContext(connection) as queries:
        matches = find_duplicates(lead)

    assert len(matches) == MAX_MATCHES
    assert all(m.reasons == ["same company domain (bigco.test)"] for m in matches)
    (domain_read,) = [q["sql"] for q in queries.captured_queries if "'bigco.test'" in q["sql"]]
    assert domain_read.rstrip().endswith(f"LIMIT {MAX_MATCHES}"), domain_read


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
    account = AccountFactory(name="Acme Analytics")
    AccountFactory(name="ACME Analytix")
    AccountFactory(name="Globex Industries")
    matches = find_duplicates(account)
    assert [str(m.record) for m in matches] == ["ACME Analytix"]
    assert matches[0].reasons[0].startswith("similar name (")
    assert TRIGRAM_THRESHOLD <= matches[0].similarity <= 1


@pytest.mark.parametrize(
    "name, key",
    [
        ("Globex Corporation", "globex"),
        ("GLOBEX, Inc.", "globex"),
        ("The Globex Corp.", "globex"),
        ("Acme GmbH & Co. KG", "acme"),
        ("Rivera-Peterson Co", "rivera peterson"),
        ("Acme Coffee", "acme coffee"),
        ("Theory Labs Ltd", "theory labs"),
        ("  Initech   Software  ", "initech software"),
        ("Inc", "inc"),
        ("", ""),
    ],
)
def test_a_company_names_key_sets_aside_case_punctuation_a_leading_the_and_legal_forms(db, name, key):
    assert company_name_key(name) == key
    if connection.vendor == "postgresql":
        # The indexed SQL says the same.
        query = Account.objects.all().query
        sql, params = query.get_compiler(connection=connection).compile(
            CompanyNameKey(Value(name)).resolve_expression(query)
        )
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {sql}", params)
            assert cursor.fetchone()[0] == key


def test_the_same_company_whatever_its_legal_form_case_and_punctuation(stages):
    account = AccountFactory(name="Globex Corporation")
    AccountFactory(name="GLOBEX, Inc.")
    AccountFactory(name="The Globex Corp.")
    AccountFactory(name="Globex Industries")  # another company of the group, not a duplicate
    AccountFactory(name="Globe")
    assert found(account) == {
        "GLOBEX, Inc.": ["same company name"],
        "The Globex Corp.": ["same company name"],
    }
    lead = LeadFactory(name="L1", email="", contact_name="", company_name="Acme Analytics Inc")
    LeadFactory(name="L2", email="", contact_name="", company_name="acme analytics ltd")
    LeadFactory(name="L3", email="", contact_name="", company_name="Acme Analytics Europe")
    matches = find_duplicates(lead)
    assert [(str(m.record), m.reasons, m.similarity) for m in matches] == [("L2", ["same company name"], 1.0)]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigram similarity is PostgreSQL's")
def test_similar_names_at_the_threshold_not_every_namesake(db):
    # At 0.5 every "Cheryl W…" was a duplicate of Cheryl Wilson: 20 or more for each name at a million.
    contact = ContactFactory(first_name="Cheryl", last_name="Wilson", email="")
    ContactFactory(first_name="Sheryl", last_name="Wilson", email="")  # 0.65
    ContactFactory(first_name="Cheryl", last_name="Wilkins", email="")  # 0.53
    ContactFactory(first_name="Cheryl", last_name="Watson", email="")  # 0.56
    assert found(contact) == {"Sheryl Wilson": ["similar name (65%)"]}


def test_when_the_same_company_name_fills_the_list_similar_names_are_asked_only_of_the_others_found(stages):
    lead = LeadFactory(name="L0", email="ann@acme.test", contact_name="", company_name="Acme Analytics Inc")
    for i in (1, 2):
        LeadFactory(name=f"L{i}", email="", contact_name="", company_name="ACME Analytics")
    LeadFactory(name="Typo", email="", contact_name="", company_name="Acme Analytix Inc")
    LeadFactory(name="Domain", email="bob@acme.test", contact_name="", company_name="Acme Analytic Inc")
    with CaptureQueriesContext(connection) as ctx:
        matches = find_duplicates(lead, limit=2)
    # The lead of the same domain and a similar name has two reasons and comes first; the typo, a
    # similar name alone, would rank below the same company name and is not looked for.
    assert [(str(m.record), m.reasons[:1]) for m in matches] == [
        ("Domain", ["same company domain (acme.test)"]),
        ("L1", ["same company name"]),
    ]
    assert matches[0].reasons[1].startswith("similar name (")
    if connection.vendor == "postgresql":
        similar = [
            q["sql"] for q in ctx.captured_queries if "SIMILARITY(" in q["sql"] and "company_name" in q["sql"]
        ]
        assert len(similar) == 1 and ' "crm_lead"."id" IN (' in similar[0]


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
        "lead": {"crm_lead_phone_digits", "crm_lead_company_name_key"},
        "contact": {"crm_contact_phone_digits", "crm_contact_mobile_digits"},
        "account": {"crm_account_phone_digits", "crm_account_name_key"},
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


@pytest.mark.parametrize(
    "path, body, twin",
    [
        (
            "leads",
            {
                "name": "Enquiry",
                "email": "ann@acme.test",
                "phone": "+1 555 010 999",
                "company_name": "Acme Ltd",
            },
            {"email": "ANN@acme.test", "phone": "(555) 010-999", "company_name": "The ACME Inc."},
        ),
        (
            "contacts",
            {"first_name": "Ann", "last_name": "Lee", "email": "ann@acme.test", "mobile": "555 010 999"},
            {"email": "bob@ACME.test", "phone": "555-010-999"},
        ),
        ("accounts", {"name": "Acme Ltd", "website": "https://acme.test", "phone": "555 010 999"}, {}),
    ],
)
def test_a_create_reads_each_rule_of_its_matches_and_no_query_a_match(admin_client, stages, path, body, twin):
    """The header compares every rule on the fields it reads of the matches (only those are read) and
    costs the same whatever the number of matches."""
    factory = {"leads": LeadFactory, "contacts": ContactFactory, "accounts": AccountFactory}[path]
    twins = {"leads": {"name": "Other"}, "contacts": {"first_name": "Bob", "last_name": "Stone"}}.get(
        path, {"name": "Acme Limited", "website": "www.acme.test/about", "phone": "+1 (555) 010-999"}
    )

    def create():
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.post(f"/api/v1/crm/{path}/", body, content_type="application/json")
        assert response.status_code == 201, response.content
        return response, len(queries)

    warm_up, _ = create()  # reads what a process reads once, such as the scoring rules
    first = factory(**twins, **twin)
    second, two_matches = create()
    assert set(second["X-Likely-Duplicates"].split(", ")) == {str(warm_up.json()["id"]), str(first.pk)}
    more = [factory(**twins, **twin) for _ in range(3)]
    response, six_matches = create()
    expected = {warm_up.json()["id"], first.pk, second.json()["id"], *(record.pk for record in more)}
    assert set(response["X-Likely-Duplicates"].split(", ")) == {str(pk) for pk in expected}
    assert six_matches == two_matches


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


@pytest.mark.parametrize("persona", ["owner", "manager", "crm_admin", "superuser", "outsider"])
def test_a_creates_likely_duplicates_are_those_its_author_sees_read_with_the_owners_listed(
    people, api_as, persona
):
    """The header names only the matches the author may see; for a user who sees some owners' records,
    each rule's query lists those owners rather than repeating the rule's subqueries (issue 24: a
    rep's create)."""
    from crm.models import Lead
    from crm.selectors import lead_visible_to

    user = people.users[persona]
    twins = {
        name: LeadFactory(name=f"{name} twin", email="pat@twin.test", owner=people.users.get(name))
        for name in ("owner", "teammate", "outsider", "manager")
    }
    unowned = LeadFactory(name="unowned twin", email="pat@twin.test", owner=None)
    client = api_as(persona)
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/api/v1/crm/leads/",
            {"name": "Enquiry", "email": "PAT@twin.test", "owner_id": user.pk},
            content_type="application/json",
        )
    assert response.status_code == 201, response.content
    created = response.json()["id"]
    seen = set(
        lead_visible_to(user)
        .exclude(pk=created)
        .filter(email__iexact="pat@twin.test")
        .values_list("pk", flat=True)
    )
    assert seen <= {record.pk for record in [*twins.values(), unowned]}
    assert {int(pk) for pk in response["X-Likely-Duplicates"].split(", ")} == seen
    assert unowned.pk in seen
    if persona == "owner":
        assert twins["outsider"].pk not in seen and twins["owner"].pk in seen
    matching = [q["sql"] for q in queries.captured_queries if 'LOWER("crm_lead"."email") =' in q["sql"]]
    assert len(matching) == 1
    if persona in ("owner", "manager", "outsider"):
        assert "sales_salesteam" not in matching[0] and '"crm_lead"."owner_id" IN (' in matching[0]
    assert Lead.objects.filter(pk=created).exists()
