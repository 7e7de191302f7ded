"""The roles' permissions on consent: every role reads and records consents and channel preferences
(of the records it may change); CRM Admins define the purposes and alone may delete a consent record
(the evidence: withdrawing is the way to end a consent)."""

from django.db import migrations

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
ALL = (VIEW, ADD, CHANGE, DELETE)
RECORDING = {
    "consentpurpose": (VIEW,),
    "consentrecord": (VIEW, ADD, CHANGE),
    "channelpreference": (VIEW, ADD, CHANGE),
}
GRANTS = {
    "CRM Admin": {"consentpurpose": ALL, "consentrecord": ALL, "channelpreference": ALL},
    "Sales Manager": RECORDING,
    "Sales Rep": RECORDING,
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
    dependencies = [("crm", "0032_consent_and_channel_preferences")]

    operations = [migrations.RunPython(forwards, backwards)]
