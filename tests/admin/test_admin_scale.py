"""Changelists of big tables: an estimated count when unfiltered or past a cap (PostgreSQL), a date
hierarchy without a DISTINCT over every row, a tie-break in the sort's direction, and a stage filter named
in one query."""

import datetime

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.models import Lead
from tests.factories import LeadFactory, OpportunityFactory

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row estimate")
LEADS = reverse("admin:crm_lead_changelist")


def analyze_leads():
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_lead")


def get(client, path):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return response, [query["sql"] for query in queries.captured_queries]


def whole_table_counts(sqls):
    return [
        sql
        for sql in sqls
        if sql.startswith('SELECT COUNT(*) AS "__count" FROM "crm_lead"') and "WHERE" not in sql
    ]


@on_postgresql
@pytest.mark.django_db
def test_unfiltered_changelist_shows_the_estimate_without_counting_the_table(
    admin_client, stages, settings, monkeypatch
):
    settings.CRM_ADMIN_ESTIMATED_COUNT_MIN = 1
    monkeypatch.setattr(admin.site._registry[Lead], "list_per_page", 2)
    LeadFactory.create_batch(5)
    analyze_leads()

    response, sqls = get(admin_client, LEADS)

    assert whole_table_counts(sqls) == []
    changelist = response.context["cl"]
    assert changelist.paginator.count_is_estimate and changelist.result_count == 5
    content = response.content.decode()
    assert "about 5" in content
    assert "?p=2" in content and "?p=3" in content  # page links from the estimate
    assert len(changelist.result_list) == 2


@on_postgresql
@pytest.mark.django_db
def test_filtered_or_searched_changelist_counts_exactly(admin_client, stages, settings):
    settings.CRM_ADMIN_ESTIMATED_COUNT_MIN = 1
    LeadFactory.create_batch(3, rating="hot")
    LeadFactory(rating="cold", name="Zebra deal")
    analyze_leads()

    for query, expected in (("?rating__exact=hot", 3), ("?q=zebra", 1)):
        response, sqls = get(admin_client, LEADS + query)
        changelist = response.context["cl"]
        assert not getattr(changelist.paginator, "count_is_estimate", False)
        assert changelist.result_count == expected
        assert "about" not in response.content.decode().split('class="paginator"')[1]
        # Counted, up to CRM_ADMIN_EXACT_COUNT_MAX rows and one more.
        assert any(
            sql.startswith('SELECT COUNT(*) FROM (SELECT "crm_lead"."id"')
            and sql.endswith("LIMIT 10001) subquery")
            for sql in sqls
        )


def capped_counts(sqls):
    return [
        sql
        for sql in sqls
        if sql.startswith("SELECT COUNT(*) FROM (SELECT") and sql.endswith("LIMIT 3) subquery")
    ]


@on_postgresql
@pytest.mark.django_db
def test_a_filtered_list_past_the_cap_shows_the_estimate_of_its_rows_without_counting_them(
    admin_client, stages, settings, monkeypatch
):
    settings.CRM_ADMIN_ESTIMATED_COUNT_MIN = 1
    settings.CRM_ADMIN_EXACT_COUNT_MAX = 2
    monkeypatch.setattr(admin.site._registry[Lead], "list_per_page", 2)
    LeadFactory.create_batch(40, rating="hot")
    LeadFactory.create_batch(10, rating="cold")
    analyze_leads()

    response, sqls = get(admin_client, LEADS + "?rating__exact=hot")

    changelist = response.context["cl"]
    assert changelist.paginator.count_is_estimate
    assert 20 <= changelist.result_count <= 60  # the planner's figure from the statistics: not counted
    assert len(capped_counts(sqls)) == 1
    assert not [sql for sql in sqls if sql.startswith('SELECT COUNT(*) AS "__count" FROM "crm_lead"')]
    content = response.content.decode().split('class="paginator"')[1]
    assert f"about {changelist.result_count}" in content
    assert len(changelist.result_list) == 2
    assert {lead.rating for lead in changelist.result_list} == {"hot"}


@on_postgresql
@pytest.mark.django_db
def test_a_filtered_list_the_planner_thinks_small_says_more_than_the_cap(admin_client, stages, settings):
    settings.CRM_ADMIN_ESTIMATED_COUNT_MIN = 1
    settings.CRM_ADMIN_EXACT_COUNT_MAX = 2
    LeadFactory.create_batch(30, rating="cold")
    analyze_leads()  # no hot lead in the statistics
    LeadFactory.create_batch(4, rating="hot")

    response, _sqls = get(admin_client, LEADS + "?rating__exact=hot")

    changelist = response.context["cl"]
    assert changelist.paginator.count_is_lower_bound and not changelist.paginator.count_is_estimate
    assert changelist.result_count == 3
    assert "more than 2" in response.content.decode().split('class="paginator"')[1]


@on_postgresql
@pytest.mark.django_db
def test_a_filtered_list_within_the_cap_is_counted_exactly(admin_client, stages, settings):
    settings.CRM_ADMIN_ESTIMATED_COUNT_MIN = 1
    settings.CRM_ADMIN_EXACT_COUNT_MAX = 2
    LeadFactory.create_batch(30, rating="cold")
    LeadFactory.create_batch(2, rating="hot")
    analyze_leads()

    response, _sqls = get(admin_client, LEADS + "?rating__exact=hot")

    changelist = response.context["cl"]
    assert changelist.result_count == 2
    assert not changelist.paginator.count_is_estimate and not changelist.paginator.count_is_lower_bound
    assert "about" not in response.content.decode().split('class="paginator"')[1]


@pytest.mark.django_db
def test_small_tables_and_other_databases_count_exactly(admin_client, stages):
    LeadFactory.create_batch(3)
    if connection.vendor == "postgresql":
        analyze_leads()  # 3 rows: below CRM_ADMIN_ESTIMATED_COUNT_MIN

    response, sqls = get(admin_client, LEADS)

    assert response.context["cl"].result_count == 3
    assert not getattr(response.context["cl"].paginator, "count_is_estimate", False)
    assert len(whole_table_counts(sqls)) == 1


@pytest.mark.django_db
def test_date_hierarchy_offers_the_years_between_the_first_and_last_record_without_distinct(
    admin_client, stages
):
    now = timezone.now()
    old, new = LeadFactory(), LeadFactory()
    Lead.objects.filter(pk=old.pk).update(created_at=now.replace(year=now.year - 2))

    response, sqls = get(admin_client, LEADS)

    assert not [sql for sql in sqls if "DISTINCT" in sql and "crm_lead" in sql]
    # The first and last dates choose the hierarchy's level and list its years: read once for both.
    bounds = [sql for sql in sqls if 'MIN("crm_lead"."created_at")' in sql and "MAX(" in sql]
    assert len(bounds) == 1, bounds
    content = response.content.decode()
    for year in (now.year - 2, now.year - 1, now.year):
        assert f"created_at__year={year}" in content

    response, sqls = get(admin_client, f"{LEADS}?created_at__year={now.year}")
    assert not [sql for sql in sqls if "DISTINCT" in sql and "crm_lead" in sql]
    assert f"created_at__month={now.month}" in response.content.decode()
    assert [lead.pk for lead in response.context["cl"].result_list] == [new.pk]


@pytest.mark.django_db
def test_date_hierarchy_of_a_date_field_drills_down_to_days(admin_client, stages):
    OpportunityFactory(close_date=datetime.date(2030, 3, 28))
    OpportunityFactory(close_date=datetime.date(2030, 3, 30))
    OpportunityFactory(close_date=datetime.date(2030, 4, 2))

    url = reverse("admin:sales_opportunity_changelist")
    content = get(admin_client, f"{url}?close_date__year=2030")[0].content.decode()
    assert "close_date__month=3" in content and "close_date__month=4" in content
    content = get(admin_client, f"{url}?close_date__year=2030&close_date__month=3")[0].content.decode()
    # Every day from the first to the last of the month's records, the empty 29th included.
    for day in (28, 29, 30):
        assert f"close_date__day={day}" in content
    assert "close_date__day=27" not in content and "close_date__day=31" not in content


@pytest.mark.django_db
def test_sorted_changelist_breaks_ties_by_id_in_the_same_direction(admin_client, stages):
    LeadFactory.create_batch(3)
    # ?o= counts the changelist's columns, the action checkbox first.
    column = admin.site._registry[Lead].list_display.index("score") + 1

    for order, tie_break in ((f"{column}", '"crm_lead"."id" ASC'), (f"-{column}", '"crm_lead"."id" DESC')):
        _response, sqls = get(admin_client, f"{LEADS}?o={order}")
        listing = next(sql for sql in sqls if sql.startswith('SELECT "crm_lead"."id"') and "ORDER BY" in sql)
        assert listing.split("ORDER BY")[1].split("LIMIT")[0].strip().endswith(tie_break)


@pytest.mark.django_db
def test_stage_filter_names_every_stage_from_one_query(admin_client, stages):
    LeadFactory()

    response, sqls = get(admin_client, LEADS)

    content = response.content.decode()
    for stage in stages.values():
        assert str(stage) in content
    assert len([sql for sql in sqls if 'FROM "crm_pipeline"' in sql and '"crm_pipeline"."id" =' in sql]) == 0
