"""Trigram indexes for the ``icontains`` searches of the API lists and the admin changelists.

Django compiles ``field__icontains`` on PostgreSQL to ``UPPER("table"."column"::text) LIKE UPPER(%s)``.
A GIN index with ``gin_trgm_ops`` on exactly that expression lets the planner answer ``LIKE '%term%'``
from the index (a bitmap scan, OR-ed across a search's columns) instead of reading every row. The
indexes exist on PostgreSQL only (pg_trgm, migration crm 0004); other databases search by scanning.

``SEARCH_TRIGRAM_INDEXES`` lists them by table (sales and activities register theirs with
``register_trigram_indexes``); the migrations create them and the tests check that
every searched column of every list and changelist has one.
"""

from django.db import connection, migrations
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

SEARCH_TRIGRAM_INDEXES: dict[str, tuple[str, ...]] = {
    "crm_lead": ("name", "contact_name", "email", "company_name", "phone"),
    "crm_account": ("name", "website", "phone", "billing_city", "billing_country"),
    "crm_contact": ("first_name", "last_name", "email", "phone", "mobile"),
}


def register_trigram_indexes(table: str, columns: tuple[str, ...]) -> None:
    """The searched columns of another app's table (from its AppConfig.ready(), so its migrations and
    the tests find them)."""
    SEARCH_TRIGRAM_INDEXES[table] = tuple(columns)


def trigram_index_name(table: str, column: str) -> str:
    return f"{table}_{column}_trgm"


# How many values ANALYZE keeps of a searched expression (PostgreSQL's default is 100). The planner
# guesses how many rows ``LIKE '%term%'`` matches by trying the term on that histogram: with 100 values
# one hit stands for 1% of the table, and at five million leads a contact's name matching 0.26% was
# sometimes (depending on ANALYZE's sample) guessed at 2%, which made reading the whole table to
# collect narrow_to_matches' ids look cheaper than the trigram indexes: 3.8 s instead of 0.1 s.
SEARCH_STATISTICS_TARGET = 1000


def trigram_index_sql(table: str, column: str) -> str:
    return (
        f'CREATE INDEX IF NOT EXISTS "{trigram_index_name(table, column)}" ON "{table}" '
        f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
    )


def search_statistics_sql(table: str, column: str) -> str:
    """Gives a search index, where it exists, ``SEARCH_STATISTICS_TARGET`` (ANALYZE then reads it)."""
    return (
        f'ALTER INDEX IF EXISTS "{trigram_index_name(table, column)}" '
        f"ALTER COLUMN 1 SET STATISTICS {SEARCH_STATISTICS_TARGET}"
    )


def set_search_statistics(*tables: str) -> migrations.RunPython:
    """A migration operation giving the search indexes of ``tables`` (default: every registered one)
    their statistics target, then analyzing the tables; a no-op off PostgreSQL."""

    def forward(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        chosen = list(tables or SEARCH_TRIGRAM_INDEXES)
        for table in chosen:
            for column in SEARCH_TRIGRAM_INDEXES[table]:
                schema_editor.execute(search_statistics_sql(table, column))
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'", [chosen])
            present = [name for (name,) in cursor.fetchall()]
        if present:
            schema_editor.execute(f"ANALYZE {', '.join(present)}")

    return migrations.RunPython(forward, migrations.RunPython.noop)


def create_trigram_indexes(*tables: str) -> migrations.RunPython:
    """A migration operation making the trigram indexes of ``tables``; a no-op off PostgreSQL."""

    def forward(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in tables:
            for column in SEARCH_TRIGRAM_INDEXES[table]:
                schema_editor.execute(trigram_index_sql(table, column))
                schema_editor.execute(search_statistics_sql(table, column))

    def backward(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in tables:
            for column in SEARCH_TRIGRAM_INDEXES[table]:
                schema_editor.execute(f'DROP INDEX IF EXISTS "{trigram_index_name(table, column)}"')

    return migrations.RunPython(forward, backward)


# A search matching at most this many records is answered from their ids (see narrow_to_matches).
SEARCH_ID_LIST_MAX = 5000


def narrow_to_matches(queryset: QuerySet) -> QuerySet:
    """``queryset`` (already filtered by a search) restricted to the ids of its matches, when they are few.

    PostgreSQL cannot estimate how many rows ``LIKE '%term%'`` matches. Ordered by the list's index
    (created_at) with a LIMIT, it guesses hundreds of matches and walks that index backwards hoping to
    meet 25 of them soon: for a rare term that reads the whole table (2 s at a million leads). Asked for
    the matching ids without an order, it uses the trigram indexes, and a LIMIT bounds the work for a
    common term. Up to SEARCH_ID_LIST_MAX matches, the page and its count are then read by primary
    key; beyond that, matches are common enough for the index walk to find a page quickly.
    """
    if connection.vendor != "postgresql":
        return queryset
    ids = list(queryset.order_by().values_list("pk", flat=True)[: SEARCH_ID_LIST_MAX + 1])
    if len(ids) > SEARCH_ID_LIST_MAX:
        return queryset
    # One array parameter rather than an IN list of up to SEARCH_ID_LIST_MAX placeholders, which
    # the count and the page would each build, send and have parsed.
    return queryset.filter(pk__in=RawSQL("SELECT unnest(%s::bigint[])", (ids,)))
