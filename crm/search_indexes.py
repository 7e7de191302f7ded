"""Trigram indexes for the ``icontains`` searches of the API lists and the admin changelists.

Django compiles ``field__icontains`` on PostgreSQL to ``UPPER("table"."column"::text) LIKE UPPER(%s)``.
A GIN index with ``gin_trgm_ops`` on exactly that expression lets the planner answer ``LIKE '%term%'``
from the index (a bitmap scan, OR-ed across a search's columns) instead of reading every row. The
indexes exist on PostgreSQL only (pg_trgm, migration crm 0004); other databases search by scanning.

``SEARCH_TRIGRAM_INDEXES`` lists them by table; the migrations create them and the tests check that
every searched column of every list and changelist has one.
"""

from django.db import migrations

SEARCH_TRIGRAM_INDEXES: dict[str, tuple[str, ...]] = {
    "crm_lead": ("name", "contact_name", "email", "company_name", "phone"),
    "crm_account": ("name", "website", "phone", "billing_city", "billing_country"),
    "crm_contact": ("first_name", "last_name", "email", "phone", "mobile"),
    "sales_opportunity": ("name", "description"),
    "activities_activity": ("subject", "description"),
}


def trigram_index_name(table: str, column: str) -> str:
    return f"{table}_{column}_trgm"


def trigram_index_sql(table: str, column: str) -> str:
    return (
        f'CREATE INDEX IF NOT EXISTS "{trigram_index_name(table, column)}" ON "{table}" '
        f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
    )


def create_trigram_indexes(*tables: str) -> migrations.RunPython:
    """A migration operation making the trigram indexes of ``tables``; a no-op off PostgreSQL."""

    def forward(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in tables:
            for column in SEARCH_TRIGRAM_INDEXES[table]:
                schema_editor.execute(trigram_index_sql(table, column))

    def backward(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in tables:
            for column in SEARCH_TRIGRAM_INDEXES[table]:
                schema_editor.execute(f'DROP INDEX IF EXISTS "{trigram_index_name(table, column)}"')

    return migrations.RunPython(forward, backward)
