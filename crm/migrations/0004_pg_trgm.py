# The pg_trgm extension for duplicate detection's name similarity (crm.duplicates). A no-op on
# databases other than PostgreSQL, which use a fallback.

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0003_pipeline_lost_reason_required'),
    ]

    operations = [
        TrigramExtension(),
    ]
