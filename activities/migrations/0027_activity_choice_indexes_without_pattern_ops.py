"""The activities' type and status keep their B-tree index and lose the second one that ``db_index=True``
gives a CharField on PostgreSQL (``varchar_pattern_ops``, for ``LIKE 'prefix%'``): no query of a choice
uses it, and every insert kept it up. The B-tree is renamed (nothing rebuilt) where the database can;
SQLite, which cannot rename an index, makes it again."""

from django.db import migrations, models

# Django's names for the indexes db_index=True made (a hash of the table and column), by field.
OLD = {
    "activity_type": ("act_type", "activities_activity_activity_type_3d9935aa"),
    "status": ("act_status", "activities_activity_status_c7a76fd4"),
}


def _rename(schema_editor, model, *, forward: bool) -> None:
    table = model._meta.db_table
    for field, (new, old) in OLD.items():
        source, target = (old, new) if forward else (new, old)
        if schema_editor.connection.vendor == "postgresql":
            if forward:
                schema_editor.execute(f'DROP INDEX IF EXISTS "{old}_like"')
            schema_editor.execute(f'ALTER INDEX IF EXISTS "{source}" RENAME TO "{target}"')
            if not forward:
                column = model._meta.get_field(field).column
                schema_editor.execute(
                    f'CREATE INDEX IF NOT EXISTS "{old}_like" ON "{table}" ("{column}" varchar_pattern_ops)'
                )
        else:
            column = model._meta.get_field(field).column
            schema_editor.execute(f'DROP INDEX IF EXISTS "{source}"')
            schema_editor.execute(f'CREATE INDEX "{target}" ON "{table}" ("{column}")')


def forwards(apps, schema_editor):
    _rename(schema_editor, apps.get_model("activities", "Activity"), forward=True)


def backwards(apps, schema_editor):
    _rename(schema_editor, apps.get_model("activities", "Activity"), forward=False)


class Migration(migrations.Migration):
    dependencies = [("activities", "0026_trigram_index_pending_lists")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="activity",
                    name="activity_type",
                    field=models.CharField(
                        choices=[
                            ("call", "Call"),
                            ("meeting", "Meeting"),
                            ("task", "Task"),
                            ("email", "Email"),
                            ("note", "Note"),
                        ],
                        max_length=10,
                    ),
                ),
                migrations.AlterField(
                    model_name="activity",
                    name="status",
                    field=models.CharField(
                        choices=[
                            ("scheduled", "Scheduled"),
                            ("in_progress", "In progress"),
                            ("completed", "Completed"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="scheduled",
                        max_length=12,
                    ),
                ),
                migrations.AddIndex(
                    model_name="activity", index=models.Index(fields=["activity_type"], name="act_type")
                ),
                migrations.AddIndex(
                    model_name="activity", index=models.Index(fields=["status"], name="act_status")
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        )
    ]
