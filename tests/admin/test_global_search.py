"""Global search: grouped by kind, only what the reader sees, JSON for the header's box, fixed cost."""

import pytest
from django.urls import reverse

from crm.search import SearchSource, global_search, register_search_source, search_sources
from tests.factories import AccountFactory, ContactFactory, LeadFactory, OpportunityFactory

URL = reverse("admin:search")


@pytest.mark.django_db
def test_search_finds_every_kind_by_part_of_a_column(admin_client, stages):
    LeadFactory(name="Website inquiry", email="laura.callahan@northwind.example.com", stage=stages["New"])
    ContactFactory(first_name="Laura", last_name="Callahan", email="laura@other.example.com")
    AccountFactory(name="Northwind Traders")
    OpportunityFactory(name="Northwind renewal", stage=stages["New"])
    LeadFactory(name="Unrelated", email="x@y.test")

    response = admin_client.get(URL, {"q": "northWIND", "format": "json"})

    assert response.status_code == 200
    groups = {group["key"]: [hit["title"] for hit in group["hits"]] for group in response.json()["groups"]}
    assert groups == {
        "leads": ["Website inquiry"],
        "accounts": ["Northwind Traders"],
        "deals": ["Northwind renewal"],
    }
    by_email = admin_client.get(URL, {"q": "callahan@north", "format": "json"}).json()
    assert [group["key"] for group in by_email["groups"]] == ["leads"]
    hit = by_email["groups"][0]["hits"][0]
    assert hit["url"].startswith("/admin/crm/lead/") and "laura.callahan@northwind" in hit["subtitle"]


@pytest.mark.django_db
def test_search_page_groups_hits_and_says_more(admin_client, stages):
    for i in range(22):
        LeadFactory(name=f"Acme {i}", stage=stages["New"])
    page = admin_client.get(URL, {"q": "acme"})
    assert page.status_code == 200
    (group,) = page.context["groups"]
    assert (group.key, len(group.hits), group.more) == ("leads", 20, True)
    assert "All matching leads" in page.content.decode()
    assert admin_client.get(URL, {"q": "a"}).context["too_short"] is True


@pytest.mark.django_db
def test_search_never_finds_what_the_reader_cannot_see(admin_as, people):
    secret = people.records["outsider"].lead
    mine = people.records["owner"].lead
    client = admin_as("owner")
    found = client.get(URL, {"q": secret.name, "format": "json"}).json()
    titles = [hit["title"] for group in found["groups"] for hit in group["hits"]]
    assert secret.name not in titles
    assert mine.name in [
        hit["title"]
        for group in client.get(URL, {"q": mine.name, "format": "json"}).json()["groups"]
        for hit in group["hits"]
    ]


@pytest.mark.django_db
def test_search_takes_odd_input_without_failing(admin_client):
    for term in ("", "%", "_", "x" * 5000, "'; drop table crm_lead; --"):
        assert admin_client.get(URL, {"q": term}).status_code == 200
        assert admin_client.get(URL, {"q": term, "format": "json"}).status_code == 200
    # A null character is refused at the door of every page (crm_project.input_guard), with a 400.
    assert admin_client.get(URL, {"q": "\x00\x00"}).status_code == 400


@pytest.mark.django_db
def test_search_needs_a_login(client):
    assert client.get(URL, {"q": "acme"}).status_code == 302


@pytest.mark.django_db
def test_search_costs_a_fixed_number_of_queries_a_kind(admin_user, stages, django_assert_max_num_queries):
    """The matching ids and their records; on PostgreSQL first the planner's estimate of the term,
    which chooses how the ids are read (crm.search_indexes.first_match_ids): at most three a kind."""

    def run():
        return global_search(user=admin_user, term="zed")

    for i in range(3):
        LeadFactory(name=f"Zed {i}", stage=stages["New"])
        OpportunityFactory(name=f"Zed deal {i}", stage=stages["New"])
    run()
    with django_assert_max_num_queries(3 * len(search_sources())) as few:
        run()
    for i in range(20):
        LeadFactory(name=f"Zed more {i}", stage=stages["New"])
        ContactFactory(first_name=f"Zed{i}")
    with django_assert_max_num_queries(len(few.captured_queries) + 2):  # the contacts group joins
        run()


@pytest.mark.django_db
def test_another_app_registers_a_kind(admin_user):
    from crm.models import Tag

    before = list(search_sources())
    try:
        register_search_source(SearchSource(key="tags", label="Tags", model=Tag, fields=("name",)))
        Tag.objects.create(name="Searchable tag")
        groups = global_search(user=admin_user, term="searchable")
        assert [(group.key, group.hits[0].title) for group in groups] == [("tags", "Searchable tag")]
    finally:
        from crm import search

        search._sources.clear()
        for source in before:
            register_search_source(source)


@pytest.mark.django_db
def test_a_common_term_is_read_in_table_order_and_a_rare_one_through_the_trigram_indexes(admin_user, stages):
    """PostgreSQL: the planner's estimate of the term's matches chooses the read (a LIMIT over the table
    for a term in thousands of rows, the materialized CTE over the indexes for a rare one); both find."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from crm.models import Lead

    if connection.vendor != "postgresql":
        pytest.skip("the planner's estimate is PostgreSQL's")
    stage = stages["New"]
    Lead.objects.bulk_create(
        Lead(name=f"Common lead {n}", pipeline=stage.pipeline, stage=stage, probability=10)
        for n in range(3000)
    )
    LeadFactory(name="Quixotic venture", stage=stage)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_lead")

    def lead_reads(term):
        with CaptureQueriesContext(connection) as queries:
            groups = {group.key: group for group in global_search(user=admin_user, term=term)}
        (read,) = [
            q["sql"]
            for q in queries
            if q["sql"].lstrip().startswith(("SELECT", "WITH"))
            and 'FROM "crm_lead"' in q["sql"]
            and "LIMIT" in q["sql"]
        ]
        return groups["leads"], read

    common, read = lead_reads("common lead")
    assert len(common.hits) == 5 and common.more
    assert "MATERIALIZED" not in read
    rare, read = lead_reads("quixotic")
    assert [hit.title for hit in rare.hits] == ["Quixotic venture"] and not rare.more
    assert read.startswith("WITH matches AS MATERIALIZED")


def test_a_term_is_common_by_its_share_of_the_table_not_by_a_number_of_rows():
    """The planner's estimate of a long pattern grows with the table: at 5,000,000 leads an email address
    was expected in 2,421 rows and found in 52, and reading the table in its order for the first six went
    through 300,000 rows. A term is common when it is expected in one row in a thousand or more."""
    from crm.search_indexes import COMMON_TERM_ROWS, COMMON_TERM_SHARE, common_term

    assert COMMON_TERM_SHARE == 0.001
    assert not common_term(2_421, 5_000_000)
    assert common_term(2_421, 1_000_000)
    assert common_term(3_000, 3_001) and not common_term(1, 3_001)
    # A table never analysed: the planner's estimate alone decides.
    assert common_term(COMMON_TERM_ROWS, -1) and not common_term(COMMON_TERM_ROWS - 1, 0)
