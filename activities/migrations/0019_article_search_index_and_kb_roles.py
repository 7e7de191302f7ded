"""The knowledge base's full-text GIN index (PostgreSQL only: other databases search by scanning) and
who does what: CRM Admins and Sales Managers (the support managers) write articles and categories,
Sales Reps read the published ones; every role reads the satisfaction surveys of the tickets it sees."""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations

INDEX_NAME = "activities_article_search_gin"
CONFIG = "english"

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
READ = {"article": (VIEW,), "articlecategory": (VIEW,), "articleversion": (VIEW,), "satisfactionsurvey": (VIEW,)}
WRITE = {
    "article": (VIEW, ADD, CHANGE, DELETE),
    "articlecategory": (VIEW, ADD, CHANGE, DELETE),
    "articleversion": (VIEW,),
    "satisfactionsurvey": (VIEW,),
}
ROLES = {"Sales Rep": READ, "Sales Manager": WRITE, "CRM Admin": WRITE}


def _index():
    # The very expression of activities.service.kb.article_search_vector(): a search uses the index
    # only when its vector is the indexed one.
    vector = (
        SearchVector("title", weight="A", config=CONFIG)
        + SearchVector("keywords", weight="A", config=CONFIG)
        + SearchVector("body", weight="B", config=CONFIG)
    )
    return GinIndex(vector, name=INDEX_NAME)


def index_forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(apps.get_model("activities", "Article"), _index())


def index_backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("activities", "Article"), _index())


def _permissions(apps, models):
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("activities")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    codenames = [f"{action}_{model}" for model, actions in models.items() for action in actions]
    return list(Permission.objects.filter(content_type__app_label="activities", codename__in=codenames))


def roles_forwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name, models in ROLES.items():
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(*_permissions(apps, models))


def roles_backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name, models in ROLES.items():
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, models))


class Migration(migrations.Migration):
    dependencies = [("activities", "0018_knowledge_base_and_satisfaction_surveys")]

    operations = [
        migrations.RunPython(index_forwards, index_backwards),
        migrations.RunPython(roles_forwards, roles_backwards),
    ]
