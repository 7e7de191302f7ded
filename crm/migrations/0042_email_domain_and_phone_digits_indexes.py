# The domain of a lead's and a contact's address, and the digits of every phone the duplicate rules compare,
# indexed: crm.duplicates looks those records up instead of reading the table (a phone: 720 ms at a
# million leads; a domain through the trigram index: 90 ms).

import django.db.models.expressions
import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models


def analyze(apps, schema_editor):
    # The planner knows an expression index's values only once the table is analyzed; until then it
    # guessed that a phone matches thousands of leads and walked the newest first instead (0.5-1 s).
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ANALYZE crm_lead, crm_contact, crm_account")


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0041_contact_full_name_trigram_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='account',
            index=models.Index(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(models.F('phone'), models.Value(' '), models.Value('')), models.Value('-'), models.Value('')), models.Value('('), models.Value('')), models.Value(')'), models.Value('')), models.Value('.'), models.Value('')), models.Value('+'), models.Value('')), models.Value('/'), models.Value('')), name='crm_account_phone_digits'),
        ),
        migrations.AddIndex(
            model_name='contact',
            index=models.Index(django.db.models.functions.text.Lower(django.db.models.functions.text.Substr('email', django.db.models.expressions.CombinedExpression(django.db.models.functions.text.StrIndex('email', models.Value('@')), '+', models.Value(1)))), name='crm_contact_email_domain'),
        ),
        migrations.AddIndex(
            model_name='contact',
            index=models.Index(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(models.F('phone'), models.Value(' '), models.Value('')), models.Value('-'), models.Value('')), models.Value('('), models.Value('')), models.Value(')'), models.Value('')), models.Value('.'), models.Value('')), models.Value('+'), models.Value('')), models.Value('/'), models.Value('')), name='crm_contact_phone_digits'),
        ),
        migrations.AddIndex(
            model_name='contact',
            index=models.Index(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(models.F('mobile'), models.Value(' '), models.Value('')), models.Value('-'), models.Value('')), models.Value('('), models.Value('')), models.Value(')'), models.Value('')), models.Value('.'), models.Value('')), models.Value('+'), models.Value('')), models.Value('/'), models.Value('')), name='crm_contact_mobile_digits'),
        ),
        migrations.AddIndex(
            model_name='lead',
            index=models.Index(django.db.models.functions.text.Lower(django.db.models.functions.text.Substr('email', django.db.models.expressions.CombinedExpression(django.db.models.functions.text.StrIndex('email', models.Value('@')), '+', models.Value(1)))), name='crm_lead_email_domain'),
        ),
        migrations.AddIndex(
            model_name='lead',
            index=models.Index(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(models.F('phone'), models.Value(' '), models.Value('')), models.Value('-'), models.Value('')), models.Value('('), models.Value('')), models.Value(')'), models.Value('')), models.Value('.'), models.Value('')), models.Value('+'), models.Value('')), models.Value('/'), models.Value('')), name='crm_lead_phone_digits'),
        ),
        migrations.RunPython(analyze, migrations.RunPython.noop),
    ]
