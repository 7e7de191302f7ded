"""How far each lead got in its pipeline (crm.reached), so the conversion funnel reads one column instead
of every lead's stage history; and the mark a pipeline gets when its stages' order changes."""

from django.db import migrations, models

from crm.reached import LEAD_REACH, drop_reach_triggers, install_reach_triggers, reached_rebuild


def keep_and_fill(apps, schema_editor):
    """The triggers that keep the column from now on, then one recount of the leads already there."""
    install_reach_triggers(schema_editor.connection, [LEAD_REACH])
    reached_rebuild(LEAD_REACH, connection=schema_editor.connection)


def drop(apps, schema_editor):
    drop_reach_triggers(schema_editor.connection, [LEAD_REACH])


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0039_next_actions_owner_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="lead",
            name="reached_sequence",
            field=models.IntegerField(
                blank=True,
                editable=False,
                help_text="The sequence of the furthest stage of its pipeline the lead has been in (crm.reached).",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="pipeline",
            name="reach_stale",
            field=models.BooleanField(
                default=False,
                editable=False,
                help_text="The stages' order changed since the records' furthest stages were counted (crm.reached).",
            ),
        ),
        migrations.RunPython(keep_and_fill, drop),
    ]
