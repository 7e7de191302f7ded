"""The roles' permissions on email templates and sequences: CRM Admins and Sales Managers write
templates and sequences; every role enrolls the records it may change, stops enrollments and reads
the sent-email log (visibility still limits which records each sees)."""

from django.db import migrations

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
ALL = (VIEW, ADD, CHANGE, DELETE)
EVERYONE = {"sequenceenrollment": (VIEW, ADD, CHANGE), "enrollmentevent": (VIEW,), "outgoingemail": (VIEW,)}
AUTHORS = {"emailtemplate": ALL, "sequence": ALL, "sequencestep": ALL}
GRANTS = {
    "CRM Admin": {**AUTHORS, **EVERYONE},
    "Sales Manager": {**AUTHORS, **EVERYONE},
    "Sales Rep": {"emailtemplate": (VIEW,), "sequence": (VIEW,), "sequencestep": (VIEW,), **EVERYONE},
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
    dependencies = [
        ("crm", "0023_email_templates_and_sequences"),
        ("activities", "0007_roles_token_proxy_and_team_management"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
