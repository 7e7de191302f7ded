"""SalesTeam comes from the sales app (record visibility depends on it). The table keeps its name, so
every team, membership and id stays; the content type sales.salesteam becomes crm.salesteam in place,
so its permissions keep their ids and every group and user holding them keeps them."""

import django.db.models.deletion
import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models


def _move_content_type(apps, old_label, new_label):
    ContentType = apps.get_model("contenttypes", "ContentType")
    old = ContentType.objects.filter(app_label=old_label, model="salesteam").first()
    if old is None:  # a database where the permissions were never made: post_migrate makes them
        return
    # One made for the new label meanwhile (a migrate interrupted half way) is empty: the old one wins.
    ContentType.objects.filter(app_label=new_label, model="salesteam").delete()
    old.app_label = new_label
    old.save(update_fields=["app_label"])
    ContentType.objects.clear_cache()


def forwards(apps, schema_editor):
    _move_content_type(apps, "sales", "crm")


def backwards(apps, schema_editor):
    _move_content_type(apps, "crm", "sales")


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0017_outbox_and_webhooks"),
        ("sales", "0011_salesteam_moves_to_crm"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="SalesTeam",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("name", models.CharField(max_length=120)),
                        ("description", models.TextField(blank=True)),
                        ("is_active", models.BooleanField(default=True)),
                        (
                            "manager",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="managed_teams",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "members",
                            models.ManyToManyField(
                                blank=True, related_name="sales_teams", to=settings.AUTH_USER_MODEL
                            ),
                        ),
                    ],
                    options={
                        "db_table": "sales_salesteam",
                        "ordering": ["name"],
                        "constraints": [
                            models.UniqueConstraint(
                                django.db.models.functions.text.Lower("name"),
                                name="sales_salesteam_name_ci_unique",
                                violation_error_code="team_name_taken",
                                violation_error_message="A team with this name already exists.",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
