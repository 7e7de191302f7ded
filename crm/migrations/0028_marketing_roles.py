"""The roles' permissions on segments and campaigns: CRM Admins and Sales Managers define segments and
run campaigns; Sales Reps read them and may add the records they see to a campaign and set a member's
status (visibility still limits which records each sees)."""

from django.db import migrations

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
ALL = (VIEW, ADD, CHANGE, DELETE)
AUTHORS = {"segment": ALL, "campaign": ALL, "campaignmember": ALL}
GRANTS = {
    "CRM Admin": AUTHORS,
    "Sales Manager": AUTHORS,
    "Sales Rep": {"segment": (VIEW,), "campaign": (VIEW,), "campaignmember": (VIEW, ADD, CHANGE)},
}


def _permissions(apps, grants):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally made after all migrations ran; the roles need them now.
    app_config = apps.get_app_config("crm")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    codenames = [f"{action}_{model}" for model, actions in grants.items() for action in actions]
    Permission = apps.get_model("auth", "Permission")
    return list(Permission.objects.filter(content_type__app_label="crm", codename__in=codenames))


def forwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role, grants in GRANTS.items():
        group = Group.objects.filter(name=role).first()
        if group is not None:
            group.permissions.add(*_permissions(apps, grants))


def backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role, grants in GRANTS.items():
        group = Group.objects.filter(name=role).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, grants))


class Migration(migrations.Migration):
    dependencies = [("crm", "0027_segments_and_campaigns")]

    operations = [migrations.RunPython(forwards, backwards)]
