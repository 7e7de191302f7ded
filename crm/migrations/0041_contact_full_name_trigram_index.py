# A trigram index on a contact's full name, as crm.duplicates compares it ("first last"), so the similar
# names of a contact are found through the index rather than by reading every contact. PostgreSQL only.

from django.db import migrations

# What Django compiles Upper(Concat("first_name", Value(" "), "last_name")) to on PostgreSQL; the
# planner uses the index only for this expression (tests/crm/test_duplicates.py checks the plan).
FULL_NAME = """UPPER((COALESCE("first_name", '') || COALESCE((COALESCE(' ', '') || COALESCE("last_name", '')), '')))"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "crm_contact_full_name_trgm" ON "crm_contact" USING gin (({FULL_NAME}) gin_trgm_ops)'
        )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('DROP INDEX IF EXISTS "crm_contact_full_name_trgm"')


class Migration(migrations.Migration):
    dependencies = [("crm", "0040_lead_reached_sequence")]

    operations = [migrations.RunPython(forward, backward)]
