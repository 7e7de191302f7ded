# GIN trigram indexes for the activity search of the API and the admin (PostgreSQL only; see
# crm.search_indexes).

from django.db import migrations

from crm.search_indexes import create_trigram_indexes


class Migration(migrations.Migration):

    dependencies = [
        ("crm", "0009_search_trigram_indexes"),
        ("activities", "0004_owner_index_covered_by_composite"),
    ]

    operations = [
        create_trigram_indexes("activities_activity"),
    ]
