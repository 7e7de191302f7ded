# Starting weights for lead scoring, so scores mean something before an admin tunes them.

from django.db import migrations

DEFAULT_RULES = [
    ("rating", "hot", 25),
    ("rating", "warm", 10),
    ("priority", "urgent", 15),
    ("priority", "high", 10),
    ("source", "referral", 15),
    ("source", "partner", 10),
    ("source", "trade_show", 5),
    ("completeness", "contact_name", 5),
    ("completeness", "email", 5),
    ("completeness", "phone", 5),
    ("completeness", "company_name", 5),
    ("completeness", "job_title", 5),
    ("recent_activity", "7", 15),
    ("recent_activity", "30", 5),
    ("expected_revenue", "10000", 10),
    ("expected_revenue", "50000", 20),
]


def add_rules(apps, schema_editor):
    ScoringRule = apps.get_model("crm", "ScoringRule")
    for criterion, value, points in DEFAULT_RULES:
        ScoringRule.objects.get_or_create(criterion=criterion, value=value, defaults={"points": points})


def remove_rules(apps, schema_editor):
    ScoringRule = apps.get_model("crm", "ScoringRule")
    for criterion, value, _ in DEFAULT_RULES:
        ScoringRule.objects.filter(criterion=criterion, value=value).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0005_lead_scoring'),
    ]

    operations = [
        migrations.RunPython(add_rules, remove_rules),
    ]
