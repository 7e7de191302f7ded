"""The three roles of the CRM as groups with their model permissions: Sales Rep, Sales Manager, CRM Admin.

Record visibility (a rep sees their own records, a manager their teams') is applied by the selectors;
these groups decide what each role may do with the records it sees.
"""

from django.db import migrations

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
ALL = (VIEW, ADD, CHANGE, DELETE)

ROLES = {
    "Sales Rep": {
        "crm.lead": (VIEW, ADD, CHANGE),
        "crm.account": (VIEW, ADD, CHANGE),
        "crm.contact": (VIEW, ADD, CHANGE),
        "sales.opportunity": (VIEW, ADD, CHANGE),
        "activities.activity": ALL,
        "crm.pipeline": (VIEW,),
        "crm.stage": (VIEW,),
        "crm.tag": (VIEW, ADD),
        "crm.lostreason": (VIEW,),
        "sales.salesteam": (VIEW,),
    },
    "Sales Manager": {
        "crm.lead": ALL,
        "crm.account": ALL,
        "crm.contact": ALL,
        "sales.opportunity": ALL,
        "activities.activity": ALL,
        "crm.pipeline": (VIEW,),
        "crm.stage": (VIEW,),
        "crm.tag": ALL,
        "crm.lostreason": (VIEW, ADD, CHANGE),
        "sales.salesteam": (VIEW, CHANGE),
    },
    "CRM Admin": {
        "crm.lead": ALL,
        "crm.account": ALL,
        "crm.contact": ALL,
        "sales.opportunity": ALL,
        "activities.activity": ALL,
        "crm.pipeline": ALL,
        "crm.stage": ALL,
        "crm.tag": ALL,
        "crm.lostreason": ALL,
        "sales.salesteam": ALL,
        "authtoken.token": ALL,
        "auth.user": (VIEW,),
    },
}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally made after all migrations ran; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, grants in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        codenames = []
        for label, actions in grants.items():
            app_label, model = label.split(".")
            codenames.extend((app_label, f"{action}_{model}") for action in actions)
        perms = [
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in codenames
        ]
        group.permissions.set(perms)


def delete_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("activities", "0001_initial"),
        ("sales", "0002_salesteam"),
        ("crm", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
