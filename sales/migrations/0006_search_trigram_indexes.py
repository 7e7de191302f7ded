# GIN trigram indexes for the opportunity search of the API and the admin (PostgreSQL only; see
# crm.search_indexes). The account name it also searches is indexed by crm 0009.

from django.db import migrations

from crm.search_indexes import create_trigram_indexes


class Migration(migrations.Migration):

    dependencies = [
        ("crm", "0009_search_trigram_indexes"),
        ("sales", "0005_scale_indexes_for_lists_and_boards"),
    ]

    operations = [
        create_trigram_indexes("sales_opportunity"),
    ]
