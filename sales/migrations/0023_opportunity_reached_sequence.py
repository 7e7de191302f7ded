"""How far each deal got in its pipeline (crm.reached), for the conversion funnel of deals."""

from django.db import migrations, models

from crm.reached import drop_reach_triggers, install_reach_triggers, reached_rebuild
from sales.rollups import OPPORTUNITY_REACH


def keep_and_fill(apps, schema_editor):
    install_reach_triggers(schema_editor.connection, [OPPORTUNITY_REACH])
    reached_rebuild(OPPORTUNITY_REACH, connection=schema_editor.connection)


def drop(apps, schema_editor):
    drop_reach_triggers(schema_editor.connection, [OPPORTUNITY_REACH])


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0040_lead_reached_sequence"),
        ("sales", "0022_next_actions_owner_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="opportunity",
            name="reached_sequence",
            field=models.IntegerField(
                blank=True,
                editable=False,
                help_text="The sequence of the furthest stage of its pipeline the deal has been in (crm.reached).",
                null=True,
            ),
        ),
        migrations.RunPython(keep_and_fill, drop),
    ]
