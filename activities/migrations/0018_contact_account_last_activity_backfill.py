"""Fill crm.Contact.last_activity_at and crm.Account.last_activity_at from the activities already logged
(the activity services keep them current from now on)."""

from django.db import migrations
from django.db.models import Exists, Max, OuterRef, Subquery


def backfill(apps, schema_editor):
    Activity = apps.get_model("activities", "Activity")
    for model_name, link in (("Contact", "contact_id"), ("Account", "account_id")):
        model = apps.get_model("crm", model_name)
        of_record = Activity.objects.filter(**{link: OuterRef("pk")}).order_by()
        last = of_record.values(link).annotate(last=Max("created_at")).values("last")
        model.objects.filter(Exists(of_record)).update(last_activity_at=Subquery(last))


class Migration(migrations.Migration):
    dependencies = [
        ("activities", "0017_merge_tickets_mailboxes_last_activity"),
        ("crm", "0032_contact_account_last_activity_at"),
    ]

    # Backwards: nothing to undo here; reversing crm's migration drops the columns.
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
