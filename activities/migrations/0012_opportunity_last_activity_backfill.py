"""Each deal's last activity, from the activities already logged (the services keep it from now on)."""

from django.db import migrations
from django.db.models import Max, OuterRef, Subquery


def backfill(apps, schema_editor):
    Activity = apps.get_model("activities", "Activity")
    Opportunity = apps.get_model("sales", "Opportunity")
    last = (
        Activity.objects.filter(opportunity_id=OuterRef("pk"))
        .order_by()
        .values("opportunity_id")
        .annotate(last=Max("created_at"))
        .values("last")
    )
    touched = Activity.objects.filter(opportunity_id__isnull=False).values("opportunity_id")
    Opportunity.objects.filter(pk__in=touched).update(last_activity_at=Subquery(last))


class Migration(migrations.Migration):
    dependencies = [
        ("activities", "0011_merge_files_notes_and_owner_index"),
        ("sales", "0015_opportunity_last_activity_at"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
