"""The roles' permissions on commissions: every role reads the plans and the statements it may see (a
rep their own, a manager their teams'), CRM Admins keep plans and assignments and compute, approve and
lock statements."""

from django.db import migrations

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
ALL = (VIEW, ADD, CHANGE, DELETE)
READ = {
    "commissionplan": (VIEW,),
    "commissiontier": (VIEW,),
    "commissioncategoryrate": (VIEW,),
    "commissionstatement": (VIEW,),
}
GRANTS = {
    "Sales Rep": READ,
    "Sales Manager": {**READ, "commissionassignment": (VIEW,)},
    "CRM Admin": {
        "commissionplan": ALL,
        "commissiontier": ALL,
        "commissioncategoryrate": ALL,
        "commissionassignment": ALL,
        "commissionstatement": ALL,
    },
}
MODELS = [*GRANTS["CRM Admin"]]


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally made after all migrations ran; the groups need them now.
    config = apps.get_app_config("sales")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, models in GRANTS.items():
        group = Group.objects.filter(name=role).first()
        if group is None:
            continue
        codenames = [f"{action}_{model}" for model, actions in models.items() for action in actions]
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="sales", codename__in=codenames)
        )


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name__in=GRANTS):
        group.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="sales", content_type__model__in=MODELS
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("sales", "0017_commissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
