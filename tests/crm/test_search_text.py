"""The leads' search text (crm.search_indexes.SEARCH_TEXT_COLUMNS): on PostgreSQL a search word is one
LIKE on a column the database keeps (the searched columns upper-cased and joined), not five
``UPPER(column) LIKE``. It must find exactly what the five conditions find, at every door that searches
the leads (the API list, the admin changelist, the global search), and follow every change of a lead."""

import pytest
from django.contrib.admin.views.main import SEARCH_VAR
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from crm.models import LEAD_SEARCH_FIELDS, Lead
from crm.search import global_search
from crm.search_indexes import SEARCH_TEXT_SEPARATOR, search_condition
from crm.selectors import lead_visible_to
from crm.services.leads import lead_update
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

# (name, contact_name, email, company_name, phone)
LEADS = [
    ("Acme rollout", "Bob Stone", "bob@acme.test", "Acme Ltd", "+1 555 0100"),
    ("Crème brûlée supply", "Élodie Brûlé", "elodie@creme.test", "Pâtisserie Élysée", ""),
    ("Straße upgrade", "Jürgen Groß", "j@strasse.test", "Groß GmbH", "0049 30 1234"),
    ("100% uptime deal", "Per Cent", "per@percent.test", "Percent_Co", ""),
    ("Back\\slash tools", "Under_score", "u@under.test", "A_B Corp", "555-0199"),
    ("Plain", "", "", "", ""),
]
WORDS = [
    "acme",
    "ACME",
    "bob",
    # The end of one column and the start of the next (name, contact, email, company, phone): in neither.
    "rolloutbob",
    "stonebob@",
    "testacme",
    "ltd+1",
    "supplyélodie",
    "rollout bob",
    "stone acme",
    "crème",
    "CRÈME",
    "élodie",
    "ÉLYSÉE",
    "groß",
    "GROSS",
    "100%",
    "%",
    "_",
    "a_b",
    "t_co",
    "back\\slash",
    "\\",
    "555",
    "0100",
    "@acme.test",
    ".test",
    "plain",
    "zzz",
]


def reference(user, search: str) -> set[int]:
    """What the five ``icontains`` find: every word in one of the lead's searched columns."""
    found = lead_visible_to(user)
    for word in search.split():
        match = Q()
        for field in LEAD_SEARCH_FIELDS:
            match |= Q(**{f"{field}__icontains": word})
        found = found.filter(match)
    return set(found.values_list("pk", flat=True))


@pytest.fixture
def leads(people):
    owner = people.users["owner"]
    made = [
        LeadFactory(
            name=name, contact_name=contact, email=email, company_name=company, phone=phone, owner=owner
        )
        for name, contact, email, company, phone in LEADS
    ]
    return owner, made


def test_a_word_finds_through_the_search_text_what_the_five_columns_find(leads, people, api_as, admin_as):
    found_any = False
    for persona in ("owner", "manager", "superuser"):
        user = people.users[persona]
        api = api_as(persona)
        admin = admin_as(persona)
        for search in WORDS:
            expected = reference(user, search)
            found_any |= bool(expected)
            with CaptureQueriesContext(connection) as queries:
                response = api.get("/api/v1/crm/leads/", {"search": search})
            assert response.status_code == 200, response.content
            assert {row["id"] for row in response.json()["results"]} == expected, (user, search)
            if connection.vendor == "postgresql":
                assert any('"search_text"' in q["sql"] for q in queries), search
            response = admin.get("/admin/crm/lead/", {SEARCH_VAR: search})
            assert response.status_code == 200
            assert {lead.pk for lead in response.context["cl"].result_list} == expected, (user, search)
    assert found_any
    # The global search looks the whole term up as one phrase.
    for search in ("acme", "Élodie Brûlé", "per cent", "acme ltd", "zzz"):
        phrase = Q()
        for field in LEAD_SEARCH_FIELDS:
            phrase |= Q(**{f"{field}__icontains": search})
        expected = set(Lead.objects.filter(phrase).values_list("pk", flat=True))
        groups = {group.key: group for group in global_search(user=people.users["superuser"], term=search)}
        hits = groups["leads"].hits if "leads" in groups else []
        assert len(hits) == min(len(expected), 5), search
        assert not expected or groups["leads"].more is (len(expected) > 5), search


def test_a_quoted_admin_phrase_with_the_separator_is_not_found_across_two_columns(leads, admin_as):
    admin = admin_as("superuser")
    # "Acme Ltd" + separator + "+1 555": no column holds both, and no column holds the separator.
    phrase = f'"Ltd{SEARCH_TEXT_SEPARATOR}+1"'
    response = admin.get("/admin/crm/lead/", {SEARCH_VAR: phrase})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    # The condition falls back to the columns for such a word.
    condition = search_condition(Lead, LEAD_SEARCH_FIELDS, f"Ltd{SEARCH_TEXT_SEPARATOR}+1", "default")
    assert "search_text" not in str(Lead.objects.filter(condition).query)


def test_the_search_text_follows_every_change_of_a_lead(leads, api_as):
    owner, made = leads
    api = api_as("owner")
    lead = made[0]

    def found(word):
        response = api.get("/api/v1/crm/leads/", {"search": word})
        return {row["id"] for row in response.json()["results"]}

    assert lead.pk in found("rollout")
    lead_update(lead=lead, user=owner, data={"name": "Zephyr expansion", "phone": "+44 20 7946"})
    assert lead.pk not in found("rollout")
    assert lead.pk in found("zephyr") and lead.pk in found("7946")
    Lead.objects.filter(pk=lead.pk).update(email="new@quasar.test")
    assert found("quasar") == {lead.pk}
    assert lead.pk not in found("bob@acme")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the owner key's index is PostgreSQL's")
def test_a_reps_global_search_reads_the_leads_on_the_owner_key(leads, people):
    """The global search's read of a rep's matching leads carries the rule on the owner key too, so
    that the owner key's index (which carries the search text) answers it; whoever sees every lead
    reads without it. Each finds the leads the rule shows."""
    import re

    keyed = re.compile(r'COALESCE\("crm_lead"\."owner_id", 0\) IN \((\d+(?:, \d+)*)\)')
    LeadFactory(name="Acme elsewhere", owner=people.users["outsider"])
    for persona, owners in (("owner", {0, people.users["owner"].pk}), ("superuser", None)):
        user = people.users[persona]
        with CaptureQueriesContext(connection) as queries:
            groups = {group.key: group for group in global_search(user=user, term="acme")}
        (read,) = [
            q["sql"]
            for q in queries
            if q["sql"].startswith(
                ('SELECT "crm_lead"."id" AS "pk"', 'WITH matches AS MATERIALIZED (SELECT "crm_lead"')
            )
        ]
        found = keyed.search(read)
        assert (found and {int(pk) for pk in found.group(1).split(", ")}) == owners, (persona, read)
        expected = lead_visible_to(user).filter(search_condition(Lead, LEAD_SEARCH_FIELDS, "acme", "default"))
        assert len(groups["leads"].hits) == min(expected.count(), 5), persona
    outsiders = {hit.title for hit in groups["leads"].hits}
    assert "Acme elsewhere" in outsiders


def test_a_rules_contains_on_a_searched_column_finds_what_the_column_holds(leads):
    """An automation rule's "contains" on the name, email or phone (columns with no trigram index of
    their own on PostgreSQL) also looks the value up in the search text, for its index; the rows are
    those whose column holds it, not those whose other columns do, and "not contains" the rest."""
    from crm.automation.conditions import conditions_q

    for field, value in (("email", "ACME.test"), ("name", "rollout"), ("phone", "555"), ("name", "bob")):
        for op in ("contains", "not_contains"):
            condition = conditions_q(Lead, {"field": field, "op": op, "value": value})
            plain = Q(**{f"{field}__icontains": value})
            expected = Lead.objects.filter(~plain if op == "not_contains" else plain)
            found = Lead.objects.filter(condition)
            assert set(found.values_list("pk", flat=True)) == set(expected.values_list("pk", flat=True)), (
                field,
                op,
            )
            if connection.vendor == "postgresql":
                assert '"search_text"' in str(found.query), (field, op)
    # "bob" is the contact's, not the name's: a name condition does not find it through the search text.
    assert not Lead.objects.filter(conditions_q(Lead, {"field": "name", "op": "contains", "value": "bob"}))
