"""The trigram indexes behind ``icontains`` search: one on UPPER(column::text) for every column the API
lists and the admin changelists search, and the planner uses them for both (PostgreSQL only)."""

import re
from functools import reduce
from operator import or_
from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.db import connection
from django.db.models import Q
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from activities.filters import ActivityFilter
from activities.models import Activity
from activities.selectors import activity_list
from crm import selectors
from crm.filters import AccountFilter, ContactFilter, LeadFilter
from crm.models import LEAD_SEARCH_FIELDS, Account, Contact, Lead
from crm.search_indexes import (
    SEARCH_STATISTICS_TARGET,
    SEARCH_TEXT_COLUMNS,
    SEARCH_TRIGRAM_INDEXES,
    TRIGRAM_PENDING_LIST_KB,
    trigram_index_name,
)
from sales import selectors as sales_selectors
from sales.filters import OpportunityFilter
from sales.models import Opportunity
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    OpportunityFactory,
    UserFactory,
)

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's"),
    pytest.mark.django_db,
]

SEARCHES = [
    (Lead, LeadFilter),
    (Account, AccountFilter),
    (Contact, ContactFilter),
    (Opportunity, OpportunityFilter),
    (Activity, ActivityFilter),
]


def index_definitions(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


def searched_columns(model, search_fields) -> set[tuple[str, str]]:
    """(table, column) of every field ``search_fields`` names, following relations (account__name)."""
    columns = set()
    for path in search_fields:
        path = path.lstrip("^=@")
        current = model
        *relations, name = path.split("__")
        for relation in relations:
            current = current._meta.get_field(relation).related_model
        columns.add((current._meta.db_table, current._meta.get_field(name).column))
    return columns


@pytest.mark.parametrize("model, filterset", SEARCHES, ids=lambda value: getattr(value, "__name__", ""))
def test_every_searched_column_has_a_trigram_index_on_the_icontains_expression(model, filterset):
    model_admin = admin.site._registry[model]
    columns = searched_columns(model, filterset.search_fields) | searched_columns(
        model, model_admin.search_fields
    )
    for table, column in columns:
        if column in SEARCH_TEXT_COLUMNS.get(table, ()):
            # Found through the table's search text, which has its own index (the next test).
            continue
        assert column in SEARCH_TRIGRAM_INDEXES.get(table, ()), (
            f"{table}.{column} is searched but not indexed"
        )
        definition = index_definitions(table)[trigram_index_name(table, column)]
        assert "USING gin" in definition
        # PostgreSQL writes UPPER("col"::text) as upper((col)::text), or upper(col) for a text column.
        assert (
            f"upper(({column})::text) gin_trgm_ops" in definition
            or f"upper({column}) gin_trgm_ops" in definition
        )


def test_the_leads_search_text_joins_what_their_search_matches_and_is_indexed():
    """The search text joins exactly the columns a search of the leads names, in the API, the admin
    and the global search; it carries a trigram index and the owner key's index carries it."""
    from crm.search import search_sources

    (source,) = [source for source in search_sources() if source.model is Lead]
    assert SEARCH_TEXT_COLUMNS["crm_lead"] == LEAD_SEARCH_FIELDS == LeadFilter.search_fields
    assert tuple(admin.site._registry[Lead].search_fields) == LEAD_SEARCH_FIELDS == source.fields
    definitions = index_definitions("crm_lead")
    assert "USING gin (search_text gin_trgm_ops)" in definitions["crm_lead_search_text_trgm"]
    assert definitions["crm_lead_owner_search"].endswith(
        "(COALESCE(owner_id, 0)) INCLUDE (id, owner_id, search_text)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstattarget FROM pg_attribute WHERE attrelid = 'crm_lead'::regclass "
            "AND attname = 'search_text'"
        )
        assert cursor.fetchone()[0] == SEARCH_STATISTICS_TARGET


def statistics_targets(names) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, a.attstattarget FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE c.relname = ANY(%s) AND a.attnum = 1",
            [list(names)],
        )
        return dict(cursor.fetchall())


def test_every_search_index_keeps_a_fine_histogram_for_the_planner():
    # With PostgreSQL's 100 values, one histogram hit stood for 1% of the table: a contact's name
    # matching 0.26% of five million leads was at times guessed at 2%, and reading the whole table to
    # collect the matches' ids looked cheaper than the trigram indexes (3.8 s instead of 0.1 s).
    names = {
        trigram_index_name(table, column)
        for table, columns in SEARCH_TRIGRAM_INDEXES.items()
        for column in columns
    }
    assert statistics_targets(names) == dict.fromkeys(names, SEARCH_STATISTICS_TARGET)


def test_every_trigram_index_keeps_a_short_pending_list():
    """A search of a GIN index reads all of its pending list (the entries of rows not yet merged): at
    PostgreSQL's 4 MB, a lead created after a few thousand others doubled its duplicate check's cost.
    Every trigram index of the schema, the searches', the search text's and the duplicate rules', is
    made or altered (activities 0026) with 128 kB."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT c.relname, c.reloptions FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_opclass o ON o.oid = ANY(i.indclass) WHERE o.opcname = 'gin_trgm_ops'"
        )
        found = dict(cursor.fetchall())
    expected = {
        trigram_index_name(table, column)
        for table, columns in SEARCH_TRIGRAM_INDEXES.items()
        for column in columns
    } | {"crm_lead_search_text_trgm", "crm_contact_full_name_trgm"}
    assert expected <= set(found)
    setting = [f"gin_pending_list_limit={TRIGRAM_PENDING_LIST_KB}"]
    assert [index for index, options in found.items() if options != setting] == []


@pytest.fixture
def plain_search(monkeypatch):
    """Searches stay a condition on the table (as for a common term, and as the id lookup runs it)."""
    from crm import search_indexes

    monkeypatch.setattr(search_indexes, "SEARCH_ID_LIST_MAX", 0)


def plan(queryset) -> str:
    with connection.cursor() as cursor:
        # A handful of rows would be read faster without an index: ask what the planner can use.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
    return queryset.explain()


def admin_search(model, term: str):
    request = RequestFactory().get("/")
    request.user = UserFactory(is_superuser=True, is_staff=True)
    model_admin = admin.site._registry[model]
    queryset, _duplicates = model_admin.get_search_results(request, model._default_manager.all(), term)
    return queryset


def test_lead_search_of_the_api_and_the_admin_uses_the_trigram_indexes(stages, plain_search):
    LeadFactory(name="Acme rollout")
    user = UserFactory(is_superuser=True)

    for queryset in (selectors.lead_list(user=user, filters={"search": "acme"}), admin_search(Lead, "acme")):
        text = plan(queryset)
        # One index for the five columns: the search text's.
        assert "crm_lead_search_text_trgm" in text, text
        assert "search_text ~~ '%ACME%'" in text, text


def test_account_and_contact_searches_use_the_trigram_indexes(plain_search):
    ContactFactory(first_name="Ada", account=AccountFactory(name="Acme"))
    user = UserFactory(is_superuser=True)

    text = plan(selectors.account_list(user=user, filters={"search": "acme"}))
    assert trigram_index_name("crm_account", "name") in text, text
    text = plan(selectors.contact_list(user=user, filters={"search": "ada"}))
    assert trigram_index_name("crm_contact", "first_name") in text, text


def test_activity_search_uses_the_trigram_indexes(stages, plain_search):
    ActivityFactory(subject="Call about renewal", lead=LeadFactory())
    user = UserFactory(is_superuser=True)

    for queryset in (
        activity_list(user=user, filters={"search": "renewal"}),
        admin_search(Activity, "renewal"),
    ):
        text = plan(queryset)
        assert trigram_index_name("activities_activity", "subject") in text, text
        assert trigram_index_name("activities_activity", "description") in text, text


def test_a_search_with_few_matches_is_read_by_id(stages, monkeypatch):
    from crm import search_indexes

    matches = [LeadFactory(name="Acme one"), LeadFactory(email="x@acme.example")]
    LeadFactory(name="Other")
    user = UserFactory(is_superuser=True)

    narrowed = selectors.lead_list(user=user, filters={"search": "acme"})
    assert '"crm_lead"."id" IN (' in str(narrowed.query)
    # The page and its count read the ids found, without planning and rechecking the patterns again.
    assert "LIKE" not in str(narrowed.query)
    assert sorted(lead.pk for lead in narrowed) == sorted(lead.pk for lead in matches)

    # More matches than the id list takes: the search stays a plain condition, same records.
    monkeypatch.setattr(search_indexes, "SEARCH_ID_LIST_MAX", 1)
    plain = selectors.lead_list(user=user, filters={"search": "acme"})
    assert '"crm_lead"."id" IN (' not in str(plain.query)
    assert sorted(lead.pk for lead in plain) == sorted(lead.pk for lead in matches)

    request = RequestFactory().get("/")
    request.user = user
    queryset, _duplicates = admin.site._registry[Lead].get_search_results(
        request, Lead.objects.all(), "other"
    )
    assert [lead.name for lead in queryset] == ["Other"]


def test_a_term_expected_in_a_few_hundredths_of_the_table_is_read_through_the_trigram_indexes(stages):
    """At a million leads a rep's search for "Alexander" was expected in 2.5% of the leads and 496 of them
    were the rep's: collecting up to 5,001 ids, the planner read the table in its order hoping to meet
    them soon, and went through every row (252 ms; 45 ms through the trigram indexes). A term expected
    in a tenth of the table or more is still read in table order, which stops at 5,001."""
    from django.test.utils import CaptureQueriesContext

    from crm.search_indexes import SEARCH_ID_LIST_COMMON_SHARE

    stage = stages["New"]
    names = [f"Common lead {n}" for n in range(3000)] + [f"Alexander {n}" for n in range(100)]
    Lead.objects.bulk_create(
        Lead(name=name, pipeline=stage.pipeline, stage=stage, probability=10) for name in names
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_lead")
    user = UserFactory(is_superuser=True)

    def id_read(term):
        with CaptureQueriesContext(connection) as queries:
            narrowed = selectors.lead_list(user=user, filters={"search": term})
        (read,) = [
            q["sql"]
            for q in queries
            if 'FROM "crm_lead"' in q["sql"] and "LIMIT" in q["sql"] and not q["sql"].startswith("EXPLAIN")
        ]
        return narrowed, read

    narrowed, read = id_read("alexander")
    assert read.startswith("WITH matches AS MATERIALIZED"), read
    assert narrowed.count() == 100
    assert SEARCH_ID_LIST_COMMON_SHARE == 0.1
    narrowed, read = id_read("common lead")
    assert "MATERIALIZED" not in read
    assert narrowed.count() == 3000


def test_lookups_by_a_lost_reason_or_a_conversion_use_the_partial_indexes(stages):
    """Open leads have no lost reason and no conversion, and the indexes on those keys leave them out;
    a lookup by a value (a filter, or what deleting the reason, account or contact looks for) still
    uses them."""
    LeadFactory()
    indexes = index_definitions("crm_lead")
    for name, column in [
        ("crm_lead_lost_reason", "lost_reason_id"),
        ("crm_lead_converted_account", "converted_account_id"),
        ("crm_lead_converted_contact", "converted_contact_id"),
    ]:
        assert f"WHERE ({column} IS NOT NULL)" in indexes[name], indexes[name]
        text = plan(Lead.objects.filter(**{f"{column}__in": [1, 2]}))
        assert name in text, text


# The owners listed: ``"owner_id" IN (...)``, or on the owner key (the leads: ``COALESCE(...) IN (0, ...)``,
# 0 for no owner).
LISTED_OWNERS = re.compile(r'"owner_id"(?:, 0\))? IN \((\d+(?:, \d+)*)\)')


def id_reads(queries, table: str) -> list[str]:
    """The reads of a search's matching ids (narrow_to_matches) among ``queries``: up to 5,001 of them,
    or (a page that is counted) their count and the first 5,000."""
    return [
        q["sql"]
        for q in queries
        if f'FROM "{table}"' in q["sql"]
        and ("LIMIT 5001" in q["sql"] or "(array_agg(m.pk))[1:5000]" in q["sql"])
        and not q["sql"].startswith("EXPLAIN")
    ]


@pytest.mark.parametrize(
    "url, table, word",
    [
        ("/api/v1/crm/leads/", "crm_lead", "lead"),
        ("/api/v1/crm/opportunities/", "sales_opportunity", "deal"),
        ("/api/v1/crm/activities/", "activities_activity", "call"),
        ("/admin/crm/lead/", "crm_lead", "lead"),
        ("/admin/sales/opportunity/", "sales_opportunity", "deal"),
    ],
)
def test_a_reps_search_reads_its_matches_with_the_owners_the_rep_sees_listed(
    people, api_as, admin_as, url, table, word
):
    """At a million leads a rep sees one lead in fifty. Reading the ids of the leads matching "mar",
    PostgreSQL took every lead that matched, everyone's, and dropped those the visibility rule's
    subquery hid: 217-316 ms. With the owners the rep sees listed in that read, it combines the owner
    index with the trigram indexes: 30 ms (the leads list them on the owner key, whose index carries
    the search text). Whoever sees everything reads without the list; each reader finds what the rule
    lets them see."""
    from django.test.utils import CaptureQueriesContext

    users = people.users
    everyone = {"owner", "teammate", "west_manager", "outsider_rep", "crm_admin", "nobody"}
    readers = {
        # persona: (the owners listed, the owners of the records found; "nobody": the unowned ones)
        "owner": ({users["owner"].pk}, {"owner", "nobody"}),
        "manager": (
            {users["manager"].pk, users["owner"].pk, users["teammate"].pk},
            {"owner", "teammate", "west_manager", "nobody"},
        ),
        "crm_admin": (None, everyone),
        "superuser": (None, everyone),
    }
    admin_page = url.startswith("/admin/")
    for persona, (listed, found) in readers.items():
        client = admin_as(persona) if admin_page else api_as(persona)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, {"q" if admin_page else "search": word})
        assert response.status_code == 200, persona
        (read,) = id_reads(queries, table)
        owners = LISTED_OWNERS.search(read)
        assert (owners and {int(pk) for pk in owners.group(1).split(", ")} - {0}) == listed, (persona, read)
        page = response.content.decode()
        shown = {name for name in everyone if f"{name} {word}" in page}
        assert shown == found, (persona, shown)


# --- a search across a foreign key (the deal's or the contact's account name) ---------------------------


@pytest.fixture
def across(stages):
    """Deals and contacts, some found by their own columns, some by their account's name only."""
    acme, other = AccountFactory(name="Acme Industries"), AccountFactory(name="Zenith")
    deals = {
        "own name": OpportunityFactory(name="Acme rollout", account=other, stage=stages["New"]),
        "account": OpportunityFactory(name="Renewal", account=acme, stage=stages["New"]),
        "neither": OpportunityFactory(name="Renewal", account=other, stage=stages["New"]),
        "no account": OpportunityFactory(name="Walk-in", account=None, stage=stages["New"]),
    }
    contacts = {
        "own name": ContactFactory(last_name="Acmeson", account=other),
        "account": ContactFactory(last_name="Baker", account=acme),
        "neither": ContactFactory(last_name="Baker", account=other),
        "no account": ContactFactory(last_name="Walker", account=None),
    }
    return SimpleNamespace(deals=deals, contacts=contacts, user=UserFactory(is_superuser=True))


def joined(model, fields, terms) -> set[int]:
    """The records Django's own search finds (each term in one of ``fields``, across joins)."""
    queryset = model.objects.all()
    for term in terms:
        queryset = queryset.filter(reduce(or_, (Q(**{f"{field}__icontains": term}) for field in fields)))
    return set(queryset.values_list("pk", flat=True))


SEARCHED_ACROSS = [
    (
        "api deals",
        Opportunity,
        lambda d, term: sales_selectors.opportunity_list(user=d.user, filters={"search": term}),
    ),
    ("admin deals", Opportunity, lambda d, term: admin_search(Opportunity, term)),
    ("admin contacts", Contact, lambda d, term: admin_search(Contact, term)),
]


@pytest.mark.parametrize("_label, model, search", SEARCHED_ACROSS, ids=[s[0] for s in SEARCHED_ACROSS])
def test_a_search_across_the_account_finds_what_the_join_finds_without_joining(
    across, monkeypatch, _label, model, search
):
    """Django joined the account to OR its name with the record's own columns: no index answers that,
    and every deal or contact search read the whole table (200,000 deals at a million leads: 220-340
    ms a word). The accounts that match are now read first and the records looked up by their key."""
    from crm import search_indexes

    records = across.deals if model is Opportunity else across.contacts
    fields = OpportunityFilter.search_fields if "api" in _label else admin.site._registry[model].search_fields
    assert any("__" in field for field in fields)
    table = model._meta.db_table
    for terms in (["acme"], ["acme", "renewal"], ["acme", "baker"], ["zzqx"], ["walk"]):
        with CaptureQueriesContext(connection) as queries:
            found = set(search(across, " ".join(terms)).values_list("pk", flat=True))
        assert found == joined(model, fields, terms), terms
        # The account's name is tested where the accounts are read, never beside the record's columns.
        searched = [q["sql"] for q in queries if f'FROM "{table}"' in q["sql"] and "LIKE" in q["sql"]]
        assert searched and not [sql for sql in searched if "crm_account" in sql], searched
    found = search(across, "acme")
    assert set(found.values_list("pk", flat=True)) == {
        records["own name"].pk,
        records["account"].pk,
    }

    # An account name in more rows than the ids read takes: Django's join, the same records.
    monkeypatch.setattr(search_indexes, "SEARCH_RELATED_KEYS_MAX", 0)
    with CaptureQueriesContext(connection) as queries:
        found = set(search(across, "acme").values_list("pk", flat=True))
    assert found == {records["own name"].pk, records["account"].pk}
    assert [q for q in queries if f'FROM "{table}" LEFT OUTER JOIN "crm_account"' in q["sql"]]


def test_a_deal_search_across_the_account_uses_the_key_and_trigram_indexes(across, plain_search):
    text = plan(sales_selectors.opportunity_list(user=across.user, filters={"search": "acme"}))
    assert "BitmapOr" in text, text
    assert "account_id = ANY" in text, text
    assert trigram_index_name("sales_opportunity", "name") in text, text
    # The accounts were read before (their own trigram index); the deals' read only joins them to show them.
    assert trigram_index_name("crm_account", "name") not in text, text


ODD_TERMS = ["%", "_", "\\", "'", '"unterminated', "   ", "a" * 5000, "ac%me", "é", "ß", '"acme industries"']


@pytest.mark.parametrize("term", ODD_TERMS)
def test_an_odd_search_across_the_account_finds_what_the_admins_own_search_finds(across, client, term):
    """Wildcards, quotes, accents and a long word: the changelists answer, and find the records
    Django's own admin search (the join) finds."""
    AccountFactory(name="Acme Industries 100% _x\\y é ß")
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    request = RequestFactory().get("/")
    request.user = across.user
    for model in (Contact, Opportunity):
        model_admin = admin.site._registry[model]
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url, {"q": term}).status_code == 200, (url, term)
        ours, _ = model_admin.get_search_results(request, model.objects.all(), term)
        django, _ = admin.ModelAdmin.get_search_results(model_admin, request, model.objects.all(), term)
        assert set(ours.values_list("pk", flat=True)) == set(django.values_list("pk", flat=True)), model
