"""Every role saves, shares and picks its own views of the lists (which records a view shows still
depends on who opens it)."""

from django.db import migrations

ALL = ("view", "add", "change", "delete")
ROLES = ("CRM Admin", "Sales Manager", "Sales Rep")


def _permissions(apps):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally made after all migrations ran; the roles need them now.
    app_config = apps.get_app_config("crm")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    codenames = [f"{action}_savedview" for action in ALL]
    return list(Permission.objects.filter(content_type__app_label="crm", codename__in=codenames))


def forwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.add(*_permissions(apps))


def backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.remove(*_permissions(apps))


class Migration(migrations.Migration):
    dependencies = [("crm", "0032_saved_views")]

    operations = [migrations.RunPython(forwards, backwards)]
