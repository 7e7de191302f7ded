"""A rollup of the opportunities by pipeline, stage and owner alone, for the boards' column headers."""

from django.db import migrations, models

from crm.rollups import drop_triggers, install_triggers, rollup_rebuild
from sales.rollups import OPPORTUNITY_BOARD_ROLLUP


def keep_and_fill(apps, schema_editor):
    """The triggers that keep the rollup from now on, then one recount of the rows already there."""
    install_triggers(schema_editor.connection, [OPPORTUNITY_BOARD_ROLLUP])
    rollup_rebuild(OPPORTUNITY_BOARD_ROLLUP, schema_editor.connection)


def drop(apps, schema_editor):
    drop_triggers(schema_editor.connection, [OPPORTUNITY_BOARD_ROLLUP])


class Migration(migrations.Migration):
    dependencies = [
        ("sales", "0020_rollups"),
    ]

    operations = [
        migrations.CreateModel(
            name="OpportunityBoardRollup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("pipeline_id", models.BigIntegerField()),
                ("stage_id", models.BigIntegerField()),
                ("owner_id", models.BigIntegerField(help_text="0: no owner.")),
                ("n", models.BigIntegerField(default=0)),
                ("amount_cents", models.BigIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("pipeline_id", "stage_id", "owner_id"), name="sales_opportunityboardrollup_key"
                    )
                ],
            },
        ),
        migrations.RunPython(keep_and_fill, drop),
    ]
