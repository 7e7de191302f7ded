"""The knowledge base's words stored: ``search_vector`` (title and keywords weigh A, the body B), kept
by a trigger on PostgreSQL and indexed with GIN there, in place of 0019's index on the expression
(ranking a match then recomputed ``to_tsvector`` of its whole body). Elsewhere a plain column, empty."""

import django.contrib.postgres.search
from django.db import migrations

INDEX_NAME = "activities_article_search_gin"
CONFIG = "english"
VECTOR = (
    "setweight(to_tsvector('{config}'::regconfig, COALESCE({row}title, '')), 'A') || "
    "setweight(to_tsvector('{config}'::regconfig, COALESCE({row}keywords, '')), 'A') || "
    "setweight(to_tsvector('{config}'::regconfig, COALESCE({row}body, '')), 'B')"
)

FORWARDS = [
    f"DROP INDEX IF EXISTS {INDEX_NAME}",
    f"""
    CREATE FUNCTION activities_article_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.search_vector := {VECTOR.format(config=CONFIG, row="NEW.")};
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER activities_article_search_vector BEFORE INSERT OR UPDATE ON activities_article
    FOR EACH ROW EXECUTE FUNCTION activities_article_search_vector()
    """,
    # The index before the backfill: built after an UPDATE in the same transaction, PostgreSQL would
    # mark it usable only by transactions younger than every one running then (indcheckxmin), and the
    # search would scan the table meanwhile.
    f"CREATE INDEX {INDEX_NAME} ON activities_article USING gin (search_vector)",
    f"UPDATE activities_article SET search_vector = {VECTOR.format(config=CONFIG, row='')}",
]

BACKWARDS = [
    f"DROP INDEX IF EXISTS {INDEX_NAME}",
    "DROP TRIGGER IF EXISTS activities_article_search_vector ON activities_article",
    "DROP FUNCTION IF EXISTS activities_article_search_vector()",
    # 0019's index on the expression, as it was.
    f"CREATE INDEX {INDEX_NAME} ON activities_article USING gin (({VECTOR.format(config=CONFIG, row='')}))",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("activities", "0020_merge_knowledge_base_quiet_since_backfill")]

    operations = [
        migrations.AddField(
            model_name="article",
            name="search_vector",
            field=django.contrib.postgres.search.SearchVectorField(editable=False, null=True),
        ),
        migrations.RunPython(_run(FORWARDS), _run(BACKWARDS)),
    ]
