"""Fill crm.Lead.last_activity_at from the activities already logged (the services keep it current from now on)."""

from django.db import migrations
from django.db.models import Exists, Max, OuterRef, Subquery


def backfill(apps, schema_editor):
    Lead = apps.get_model("crm", "Lead")
    Activity = apps.get_model("activities", "Activity")
    of_lead = Activity.objects.filter(lead_id=OuterRef("pk")).order_by()
    last = of_lead.values("lead_id").annotate(last=Max("created_at")).values("last")
    Lead.objects.filter(Exists(of_lead)).update(last_activity_at=Subquery(last))


class Migration(migrations.Migration):
    dependencies = [
        ("activities", "0007_roles_token_proxy_and_team_management"),
        ("crm", "0019_lead_last_activity_at"),
    ]

    # Backwards: nothing to undo here; reversing crm's migration drops the column.
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
