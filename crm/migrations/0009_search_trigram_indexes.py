# GIN trigram indexes on UPPER(column::text), the expression Django's icontains searches, for the
# lead, account and contact searches of the API and the admin (PostgreSQL only; see crm.search_indexes).

from django.db import migrations

from crm.search_indexes import create_trigram_indexes


class Migration(migrations.Migration):

    dependencies = [
        ("crm", "0004_pg_trgm"),
        ("crm", "0008_scale_indexes_for_lists_and_boards"),
    ]

    operations = [
        create_trigram_indexes("crm_lead", "crm_account", "crm_contact"),
    ]
