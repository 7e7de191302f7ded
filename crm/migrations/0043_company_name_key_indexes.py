# The key of a lead's company and of an account's name (crm.models.base.CompanyNameKey), indexed: the
# duplicate rule "same company name" looks the records of one company up instead of comparing trigrams.
# PostgreSQL only: the key is computed with regular expressions; other databases compare it in Python.

from django.db import migrations, models

from crm.models.base import CompanyNameKey

INDEXES = (("lead", "company_name", "crm_lead_company_name_key"), ("account", "name", "crm_account_name_key"))


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for model_name, field, name in INDEXES:
        model = apps.get_model("crm", model_name)
        schema_editor.add_index(model, models.Index(CompanyNameKey(models.F(field)), name=name))
    # The planner knows an expression's values only once the table is analyzed.
    schema_editor.execute("ANALYZE crm_lead, crm_account")


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for _model, _field, name in INDEXES:
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("crm", "0042_email_domain_and_phone_digits_indexes")]

    operations = [migrations.RunPython(forward, backward)]
