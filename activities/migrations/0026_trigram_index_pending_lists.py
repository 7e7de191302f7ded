"""Every trigram index (the searches', the leads' search text, the duplicate rules') keeps 128 kB of
pending entries instead of PostgreSQL's 4 MB, which every search of the index reads
(crm.search_indexes.TRIGRAM_PENDING_LIST_KB). A setting of each index: nothing is rebuilt.

In this app, the last of the three, so that it runs after every migration that makes such an index;
those made later are made with the setting (crm.search_indexes.trigram_index_sql)."""

from django.db import migrations

from crm.search_indexes import trigram_pending_lists


class Migration(migrations.Migration):
    dependencies = [
        ("activities", "0025_agenda_open_activity_indexes"),
        ("crm", "0046_lead_search_text"),
        ("sales", "0026_won_from_lead_rollup"),
    ]

    operations = [trigram_pending_lists()]
