"""A counted search page (the API's page-number list) reads its matches once: their
ids and their count together (``crm.search_indexes.match_count_and_ids``), and the page's queryset knows
its count (``KnownCountQuery``) until something changes what it counts. A search no trigram index can
serve (every word under three letters) reads a rep's leads on the owner key, from the index that carries
the search text (``crm_lead_owner_search``; its definition is checked in test_search_indexes)."""

import re

import pytest
from django.db import connection
from django.db.models import Count, Q
from django.test.utils import CaptureQueriesContext

from crm import search_indexes
from crm.filters import LeadFilter
from crm.models import LEAD_SEARCH_FIELDS, Lead
from crm.search_indexes import with_known_count
from crm.selectors import lead_visible_to
from tests.factories import LeadFactory

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the narrowed search is PostgreSQL's"
)

LEAD_COUNT = re.compile(r'^SELECT COUNT\(\*\) AS "__count" FROM "crm_lead"')
KEYED_OWNERS = re.compile(r'COALESCE\("crm_lead"\."owner_id", 0\) IN \((\d+(?:, \d+)*)\)')


def visible_matches(user, term: str) -> set[int]:
    """The leads ``user`` sees that ``term`` matches, through the visibility rule and a plain condition."""
    match = Q()
    for field in LEAD_SEARCH_FIELDS:
        match |= Q(**{f"{field}__icontains": term})
    return set(lead_visible_to(user).filter(match).values_list("pk", flat=True))


def lead_counts(queries) -> list[str]:
    return [q["sql"] for q in queries if LEAD_COUNT.match(q["sql"])]


def matches_read(queries) -> list[str]:
    """The reads of a counted search's matches: their count and the ids of the first 5,000."""
    return [q["sql"] for q in queries if "(array_agg(m.pk))" in q["sql"]]


def ids_read(queries) -> list[str]:
    """The read of a search's matching ids: counted, or up to 5,001 of them."""
    return matches_read(queries) or [
        q["sql"] for q in queries if "LIMIT 5001" in q["sql"] and not q["sql"].startswith("EXPLAIN")
    ]


@on_postgresql
@pytest.mark.django_db
@pytest.mark.parametrize("limit", [5000, 2], ids=["few matches: by id", "more than the id list"])
def test_a_counted_search_page_reads_its_matches_once_and_counts_none_again(
    people, api_as, monkeypatch, limit
):
    """The page's count is the one read with the ids: no ``COUNT(*)`` of the leads follows. With the
    id list limited to two, the manager's four matching leads (the team's and the unowned one) are
    past it: the page is then read with the search's conditions, still counted once."""
    monkeypatch.setattr(search_indexes, "SEARCH_ID_LIST_MAX", limit)
    for persona in ("owner", "manager", "crm_admin", "superuser"):
        expected = visible_matches(people.users[persona], "lead")
        with CaptureQueriesContext(connection) as queries:
            response = api_as(persona).get("/api/v1/crm/leads/", {"search": "lead"})
        assert response.status_code == 200, persona
        assert response.json()["count"] == len(expected), persona
        assert {row["id"] for row in response.json()["results"]} == expected, persona
        assert len(matches_read(queries)) == 1, persona
        assert lead_counts(queries) == [], (persona, lead_counts(queries))


@on_postgresql
@pytest.mark.django_db
def test_an_admin_search_is_not_counted_with_its_matches(people, admin_as):
    """An admin changelist of a big table counts at most 10,001 rows (CappedCountPaginator): reading
    every match to count them would cost more. Its ids are read as a cursor page's are."""
    expected = visible_matches(people.users["manager"], "lead")
    with CaptureQueriesContext(connection) as queries:
        response = admin_as("manager").get("/admin/crm/lead/", {"q": "lead"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == len(expected)
    assert {lead.pk for lead in response.context["cl"].result_list} == expected
    assert matches_read(queries) == []
    assert [q for q in queries if "LIMIT 5001" in q["sql"]]


@on_postgresql
@pytest.mark.django_db
@pytest.mark.parametrize("limit", [5000, 1])
def test_the_search_is_applied_after_the_lists_other_filters_so_its_count_is_the_lists(
    people, api_as, monkeypatch, limit
):
    """``?search=lead&owner=<id>&score_min=40``: the count read with the ids has the owner and the score
    in it (the search runs after every other filter, even those declared after it, as score_min is),
    and is the list's count."""
    monkeypatch.setattr(search_indexes, "SEARCH_ID_LIST_MAX", limit)
    owner = people.users["owner"]
    LeadFactory(name="Another lead", owner=owner, stage=people.stages["New"])
    LeadFactory(name="A cold lead", owner=owner, stage=people.stages["New"])
    Lead.objects.filter(owner=owner).update(score=50)
    Lead.objects.filter(name="A cold lead").update(score=10)
    Lead.objects.filter(pk=people.records["teammate"].lead.pk).update(score=90)
    with CaptureQueriesContext(connection) as queries:
        response = api_as("manager").get(
            "/api/v1/crm/leads/", {"search": "lead", "owner": owner.pk, "score_min": 40}
        )
    assert response.status_code == 200
    expected = set(
        Lead.objects.filter(owner=owner, score__gte=40, name__icontains="lead").values_list("pk", flat=True)
    )
    assert response.json()["count"] == len(expected) == 2
    assert {row["id"] for row in response.json()["results"]} == expected
    (read,) = matches_read(queries)
    assert '"crm_lead"."score" >= 40' in read and '"crm_lead"."owner_id" = ' in read, read
    assert lead_counts(queries) == []


@on_postgresql
@pytest.mark.django_db
def test_a_cursor_page_reads_no_more_than_the_id_list_and_counts_nothing(people, api_as):
    """A cursor page is not counted: its read of the matching ids stops at 5,001."""
    with CaptureQueriesContext(connection) as queries:
        response = api_as("manager").get("/api/v1/crm/leads/", {"search": "lead", "cursor": ""})
    assert response.status_code == 200
    assert {row["id"] for row in response.json()["results"]} == visible_matches(
        people.users["manager"], "lead"
    )
    assert matches_read(queries) == []
    assert [q for q in queries if "LIMIT 5001" in q["sql"]]
    assert lead_counts(queries) == []


@on_postgresql
@pytest.mark.django_db
@pytest.mark.parametrize("page", ["api", "admin"])
def test_a_search_no_trigram_serves_is_read_from_the_owner_key_index(people, api_as, admin_as, page):
    """ "an" has no trigram: the search tests every lead its reader may see. A rep's rule is then given on
    the owner key, which ``crm_lead_owner_search`` answers and whose entries carry every searched column
    and the id: the read needs no page of the table (at a million leads, a rep's 34,186 leads on 25,374
    table pages: 150-200 ms to count, 66-88 ms from the index). Each reader finds what the rule shows."""
    for lead in Lead.objects.all():
        Lead.objects.filter(pk=lead.pk).update(company_name=f"Danube {lead.name}")
    users = people.users
    listed = {
        "owner": {0, users["owner"].pk},
        "manager": {0, users["manager"].pk, users["owner"].pk, users["teammate"].pk},
        "crm_admin": None,
        "superuser": None,
    }
    for persona, owners in listed.items():
        with CaptureQueriesContext(connection) as queries:
            if page == "api":
                response = api_as(persona).get("/api/v1/crm/leads/", {"search": "an"})
                found = {row["id"] for row in response.json()["results"]}
            else:
                response = admin_as(persona).get("/admin/crm/lead/", {"q": "an"})
                found = {lead.pk for lead in response.context["cl"].result_list}
        assert response.status_code == 200, persona
        expected = visible_matches(users[persona], "an")
        assert found == expected and len(expected) > 1, persona
        (read,) = ids_read(queries)
        keyed = KEYED_OWNERS.search(read)
        assert (keyed and {int(pk) for pk in keyed.group(1).split(", ")}) == owners, (persona, read)
        if owners:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute("SET LOCAL enable_bitmapscan = off")
                cursor.execute(f"EXPLAIN {read}")
                plan = "\n".join(row[0] for row in cursor.fetchall())
                cursor.execute("RESET enable_seqscan")
                cursor.execute("RESET enable_bitmapscan")
            assert "Index Only Scan using crm_lead_owner_search" in plan, plan


@pytest.mark.django_db
def test_a_known_count_is_read_again_once_something_changes_what_it_counts(stages, django_assert_num_queries):
    """Ordering or choosing columns keeps the count known; a condition, a slice, distinct or a grouping
    has it read again (the known count, 7, would be wrong for each of those below)."""
    for n in range(4):
        LeadFactory(name=f"Known {n}", stage=stages["New"], priority="high" if n else "low")
    known = with_known_count(Lead.objects.all(), 7)
    with django_assert_num_queries(0):
        assert known.count() == 7
        assert known.order_by("name").count() == 7
        assert known.values("pk").count() == 7
        assert known.select_related("stage").count() == 7
    with django_assert_num_queries(1):
        assert known.filter(name="Known 1").count() == 1
    with django_assert_num_queries(1):
        assert known.exclude(name="Known 1").count() == 3
    with django_assert_num_queries(1):
        assert known.filter(priority="high").filter(priority="high").count() == 3
    assert known.none().count() == 0
    assert known[:2].count() == 2
    assert known.values("priority").distinct().count() == 2
    assert known.values("priority").annotate(n=Count("pk")).count() == 2
    assert known.filter(Q(name="Known 0") | Q(name="Known 2")).count() == 2


@on_postgresql
@pytest.mark.django_db
def test_a_reps_search_of_any_term_is_read_on_the_owner_key(people, api_as, monkeypatch):
    """Through the search text a row costs one LIKE, so testing a rep's rows one by one from the owner
    key's index is the cheap read for a common term, and the planner prices it right against the
    trigram index for a rare one. At five million leads, a rep's "mar", "son", "an", "Alexander" and
    "smith" took 37-65 ms that way, where the owner and trigram indexes' bitmaps took 60-620 ms (with
    five ``UPPER() LIKE`` a row, the read on the owner key had been 150-230 ms). Every term is read on
    it, rare or common, and finds what the rule shows."""
    stage = people.stages["New"]
    outsider = people.users["outsider"]
    owner = people.users["owner"]
    Lead.objects.bulk_create(
        Lead(name=f"Commonplace {n}", owner=outsider, pipeline=stage.pipeline, stage=stage, probability=10)
        for n in range(400)
    )
    mine = LeadFactory(name="Commonplace mine", owner=owner, stage=stage)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_lead")
    for term in ("commonplace", "owner", "zz"):
        with CaptureQueriesContext(connection) as queries:
            response = api_as("owner").get("/api/v1/crm/leads/", {"search": term})
        assert response.status_code == 200
        found = {row["id"] for row in response.json()["results"]}
        assert found == visible_matches(owner, term), term
        (read,) = ids_read(queries)
        assert {int(pk) for pk in KEYED_OWNERS.search(read).group(1).split(", ")} == {0, owner.pk}, read
        # One read of the matches, no EXPLAIN to choose how.
        assert not [q for q in queries if q["sql"].startswith("EXPLAIN")], term
    assert mine.pk in visible_matches(owner, "commonplace")


@pytest.mark.django_db
@pytest.mark.parametrize("search", ["an", "lead"])
@pytest.mark.parametrize("counted", [True, False])
def test_a_rule_that_matches_nothing_finds_nothing_without_an_error(people, search, counted):
    """An inactive reader's rule is ``pk IN ()``, which Django does not compile into SQL: the reads of
    the matches and the planner's estimates must not fail on it."""
    nothing = Q(pk__in=[])
    filterset = LeadFilter(
        data={"search": search},
        queryset=Lead.objects.all(),
        search_scope=nothing,
        search_keyed_scope=nothing,
        search_counted=counted,
    )
    assert filterset.is_valid()
    found = filterset.qs.filter(nothing)
    assert found.count() == 0
    assert list(found) == []
