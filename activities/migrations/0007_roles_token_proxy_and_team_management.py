"""The CRM Admin role manages API tokens through the admin's token page, which is for the TokenProxy
model (its own permissions, not the Token model's); team management is for CRM Admins only, so the
Sales Manager role keeps viewing its teams but no longer changes them."""

from django.db import migrations

TOKEN_PROXY = ("view_tokenproxy", "add_tokenproxy", "delete_tokenproxy")


def _permissions(apps, app_label, codenames):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally made after all migrations ran; the roles need them now.
    app_config = apps.get_app_config(app_label)
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    return list(Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))


def forwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    admin = Group.objects.filter(name="CRM Admin").first()
    if admin is not None:
        admin.permissions.add(*_permissions(apps, "authtoken", TOKEN_PROXY))
    manager = Group.objects.filter(name="Sales Manager").first()
    if manager is not None:
        manager.permissions.remove(*_permissions(apps, "sales", ["change_salesteam"]))


def backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    admin = Group.objects.filter(name="CRM Admin").first()
    if admin is not None:
        admin.permissions.remove(*_permissions(apps, "authtoken", TOKEN_PROXY))
    manager = Group.objects.filter(name="Sales Manager").first()
    if manager is not None:
        manager.permissions.add(*_permissions(apps, "sales", ["change_salesteam"]))


class Migration(migrations.Migration):
    dependencies = [
        ("activities", "0006_history_change_reason_text"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("sales", "0010_stage_change_record_index_covered"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
