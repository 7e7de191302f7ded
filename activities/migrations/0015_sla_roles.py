"""SLA configuration: CRM Admins keep the working calendars and SLA policies; the other roles read them
(a ticket's deadlines depend on them)."""

from django.db import migrations

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
SLA_MODELS = ("workingcalendar", "workinghours", "holiday", "slapolicy")
SLA_READ = {model: (VIEW,) for model in SLA_MODELS}
ROLES = {
    "Sales Rep": SLA_READ,
    "Sales Manager": SLA_READ,
    "CRM Admin": {model: (VIEW, ADD, CHANGE, DELETE) for model in SLA_MODELS},
}


def _permissions(apps, models):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally made after all migrations ran; the roles need them now.
    app_config = apps.get_app_config("activities")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    codenames = [f"{action}_{model}" for model, actions in models.items() for action in actions]
    return list(Permission.objects.filter(content_type__app_label="activities", codename__in=codenames))


def forwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name, models in ROLES.items():
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(*_permissions(apps, models))


def backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name, models in ROLES.items():
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, models))


class Migration(migrations.Migration):
    dependencies = [("activities", "0014_sla_calendars_policies_and_ticket_clock")]

    operations = [migrations.RunPython(forwards, backwards)]
