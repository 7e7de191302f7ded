"""EXPLAIN ANALYZE the key queries of the lists, boards, search, changelists and dashboard at full volume,
as they were before the indexes and rewrites of issue 8 item 2 and as they are now.

Run against a seeded PostgreSQL database (see BENCHMARKS.md, "Indexes and query plans"):

    DATABASE_URL=postgres://... .venv/bin/python benchmarks/explain_key_queries.py

"Before" runs the earlier SQL (the ROW_NUMBER board, the funnel's join, COUNT(*), SELECT DISTINCT
date_trunc, OFFSET paging) inside a transaction that drops the indexes added since, then rolls back;
"after" runs what the code emits now. Each is run three times; the median execution time is printed.
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")

import django

django.setup()

from decimal import Decimal  # noqa: E402

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count, DecimalField, F, OuterRef, Q, Subquery, Sum, Value, Window  # noqa: E402
from django.db.models.functions import Coalesce, RowNumber  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from crm import search_indexes, selectors  # noqa: E402
from crm.models import Lead, Pipeline, Stage  # noqa: E402
from crm.search_indexes import SEARCH_ID_LIST_MAX, SEARCH_TRIGRAM_INDEXES, trigram_index_name  # noqa: E402
from sales import selectors as sales_selectors  # noqa: E402

RUNS = 3
MONEY = DecimalField(max_digits=16, decimal_places=2)
# The leads' trigram indexes: the search text's (crm 0046) and the columns' own.
LEAD_TRIGRAMS = [
    "crm_lead_search_text_trgm",
    *(trigram_index_name("crm_lead", column) for column in SEARCH_TRIGRAM_INDEXES["crm_lead"]),
]


def sql_of(queryset) -> str:
    import psycopg

    sql, params = queryset.query.sql_with_params()
    connection.ensure_connection()
    # A client-side cursor: with prepared statements on (DATABASE_PREPARED_STATEMENTS), Django's
    # cursors bind on the server and cannot write the values into the SQL.
    return psycopg.ClientCursor(connection.connection).mogrify(sql, params)


def execution_ms(sql: str, hide: tuple[str, ...] = ()) -> float:
    times = []
    for _ in range(RUNS):
        with transaction.atomic(), connection.cursor() as cursor:
            for index in hide:
                cursor.execute(f'DROP INDEX IF EXISTS "{index}"')
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
            times.append(cursor.fetchone()[0][0]["Execution Time"])
            transaction.set_rollback(True)
    return statistics.median(times)


def old_board_cards(queryset, pipeline, limit=20):
    queryset = queryset.filter(pipeline=pipeline)
    ranked = queryset.annotate(
        kanban_rank=Window(
            RowNumber(), partition_by=[F("stage_id")], order_by=[F("created_at").desc(), F("id").desc()]
        )
    )
    return ranked.filter(kanban_rank__lte=limit).order_by("stage_id", "kanban_rank")


def old_board_totals(queryset, pipeline, value_field):
    return (
        queryset.filter(pipeline=pipeline)
        .order_by()
        .values("stage_id")
        .annotate(
            count=Count("pk"), total=Coalesce(Sum(value_field), Value(Decimal("0")), output_field=MONEY)
        )
    )


def old_funnel():
    first_open_sequence = Subquery(
        Stage.objects.filter(pipeline=OuterRef("pipeline"), is_won=False, is_lost=False)
        .order_by("sequence", "id")
        .values("sequence")[:1]
    )
    later = Stage.objects.annotate(f=first_open_sequence).filter(sequence__gt=F("f")).values("pk")
    qualified = Q(status="converted") | Q(status="open", stage__in=later)
    won = Q(converted_opportunity__status="won")
    zero = Value(Decimal("0"))
    return {
        "leads": Count("pk"),
        "leads_value": Coalesce(Sum("expected_revenue"), zero, output_field=MONEY),
        "qualified": Count("pk", filter=qualified),
        "qualified_value": Coalesce(Sum("expected_revenue", filter=qualified), zero, output_field=MONEY),
        "converted": Count("pk", filter=Q(status="converted")),
        "won": Count("pk", filter=won),
        "won_value": Coalesce(Sum("converted_opportunity__amount", filter=won), zero, output_field=MONEY),
    }


def main():
    user = get_user_model().objects.filter(is_superuser=True).first() or get_user_model()(
        is_superuser=True, is_active=True
    )
    pipeline = Pipeline.objects.default()
    leads = selectors.lead_list(user=user)
    opportunities = sales_selectors.opportunity_list(user=user)

    def compare(label, before_sql, after_sql, hide=()):
        before = execution_ms(before_sql, hide)
        after = execution_ms(after_sql)
        print(f"| {label} | {before:,.1f} ms | {after:,.1f} ms |", flush=True)

    print("| query | before | after |\n|---|---:|---:|")

    # Boards: first 20 cards a column, and the columns' count and total.
    new_board = selectors._kanban_first_cards(leads.filter(stage__in=pipeline.stages.all()), pipeline, 20)
    compare(
        "lead board: first 20 cards of each column",
        sql_of(old_board_cards(leads, pipeline)),
        sql_of(new_board),
        ("crm_lead_stage_created",),
    )
    stage_ids = list(pipeline.stages.values_list("pk", flat=True))
    new_totals = (
        leads.filter(stage__in=stage_ids)
        .order_by()
        .values("stage_id")
        .annotate(
            count=Count("pk"),
            total=Coalesce(Sum("expected_revenue"), Value(Decimal("0")), output_field=MONEY),
        )
    )
    compare(
        "lead board: column counts and totals",
        sql_of(old_board_totals(leads, pipeline, "expected_revenue")),
        sql_of(new_totals),
        ("crm_lead_stage_created",),
    )
    new_opp_board = selectors._kanban_first_cards(opportunities.filter(stage__in=stage_ids), pipeline, 20)
    compare(
        "opportunity board: first 20 cards of each column",
        sql_of(old_board_cards(opportunities, pipeline)),
        sql_of(new_opp_board),
        ("sales_opp_stage_created",),
    )

    # Search (the API list and the admin changelist compile to the same WHERE): a common word (2,316
    # matches in the seeded data) and a rare one (one person's email). Before: the plain condition
    # without trigram indexes. After: the matching ids (at most 5,000, from the trigram indexes), then
    # the page by primary key; the count is the count of those ids.
    for term in ("acme", "mei.cummings"):
        search_indexes.SEARCH_ID_LIST_MAX = 0
        plain = selectors.lead_list(user=user, filters={"search": term})
        search_indexes.SEARCH_ID_LIST_MAX = SEARCH_ID_LIST_MAX
        narrowed = selectors.lead_list(user=user, filters={"search": term})
        ids_ms = execution_ms(sql_of(plain.order_by().values_list("pk", flat=True)[: SEARCH_ID_LIST_MAX + 1]))
        plain_count = f"SELECT COUNT(*) FROM ({sql_of(plain.order_by().values('pk'))}) matches"
        before = execution_ms(plain_count, tuple(LEAD_TRIGRAMS))
        after = ids_ms + execution_ms(
            f"SELECT COUNT(*) FROM ({sql_of(narrowed.order_by().values('pk'))}) matches"
        )
        print(f"| lead search '{term}': count (after: ids + count) | {before:,.1f} ms | {after:,.1f} ms |")
        before = execution_ms(sql_of(plain[:25]), tuple(LEAD_TRIGRAMS))
        after = ids_ms + execution_ms(sql_of(narrowed[:25]))
        label = f"lead search '{term}': first page of 25 (after: ids + page)"
        print(f"| {label} | {before:,.1f} ms | {after:,.1f} ms |")

    # Admin changelist, unfiltered: the count, the date hierarchy.
    compare(
        "lead changelist: row count",
        "SELECT COUNT(*) FROM crm_lead",
        "SELECT reltuples::bigint FROM pg_class WHERE oid = 'crm_lead'::regclass",
    )
    compare(
        "lead changelist: date hierarchy years",
        "SELECT DISTINCT date_trunc('year', created_at AT TIME ZONE 'UTC') FROM crm_lead"
        " WHERE created_at IS NOT NULL ORDER BY 1",
        "SELECT MIN(created_at), MAX(created_at) FROM crm_lead",
    )

    # Deep pages of the API list: OFFSET 500,000 against the cursor's keyset.
    deep = Lead.objects.order_by("-created_at", "-id").values_list("created_at", "id")[500_000]
    after_position = leads.order_by("-created_at", "-pk").filter(
        Q(created_at__lte=deep[0]) & (Q(created_at__lt=deep[0]) | Q(pk__lt=deep[1]))
    )[:26]
    compare(
        "lead list: page 20,001 (OFFSET 500,000) vs ?cursor=",
        sql_of(leads[500_000:500_025]),
        sql_of(after_position),
    )

    # Dashboard: funnel, forecast, last won deals (the SQL is taken from the query log).
    with CaptureQueriesContext(connection) as log:
        sales_selectors.conversion_funnel(user=user)
    new_funnel_sql = log.captured_queries[-1]["sql"]
    with CaptureQueriesContext(connection) as log:
        Lead.objects.aggregate(**old_funnel())
    compare(
        "dashboard: conversion funnel",
        log.captured_queries[-1]["sql"],
        new_funnel_sql,
        ("crm_lead_stage_created",),
    )

    with CaptureQueriesContext(connection) as log:
        sales_selectors.forecast(user=user)
    groups_sql = log.captured_queries[-1]["sql"]
    # Before: the same groups, then the same figures again over every row for the totals.
    totals_sql = "SELECT " + groups_sql.split("SELECT ", 1)[1].split(", COUNT(", 1)[1].join(["COUNT(", ""])
    totals_sql = totals_sql.rsplit(" GROUP BY ", 1)[0]
    before = execution_ms(groups_sql, ("sales_opp_status_close_inc",)) + execution_ms(
        totals_sql, ("sales_opp_status_close_inc",)
    )
    after = execution_ms(groups_sql)
    label = "forecast by month: groups, then totals (before) / groups only (after)"
    print(f"| {label} | {before:,.1f} ms | {after:,.1f} ms |")
    won = sales_selectors.opportunity_recent_won(user=user)
    compare("dashboard: last 5 deals won", sql_of(won), sql_of(won), ("sales_opp_status_closed",))


if __name__ == "__main__":
    main()
